"""Widgets and pyqtgraph pieces shared by several panels (axes, heatmaps, exports, layout, token strip)."""
