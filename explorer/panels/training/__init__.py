"""The training dock: set up a run, train it in the background, watch it learn, use the result."""
