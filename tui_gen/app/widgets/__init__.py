"""Reusable widgets of the tui-gen app, each with its own DEFAULT_CSS."""
