"""Start Transformer Explorer: ``python main.py [--checkpoint FILE] [--prompt TEXT] …`` (see --help)."""
from explorer.app import main

raise SystemExit(main())
