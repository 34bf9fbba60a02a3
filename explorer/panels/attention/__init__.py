"""The attention panel: one head, all heads at once, or BertViz-style lines."""
