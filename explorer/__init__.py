"""Transformer Explorer's desktop face (PySide6 + pyqtgraph): windows, panels and workers.

The only package that knows Qt; it drives the Qt-free ``model`` package through a Session and an
inference worker thread.
"""
__version__ = "0.1.0"
