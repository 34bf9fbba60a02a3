"""The architecture panel: the model drawn from its description, with live values per block."""
