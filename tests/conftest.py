"""Test-wide settings: Qt without a display, torch on one thread (CI machines are shared)."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402

torch.set_num_threads(1)
