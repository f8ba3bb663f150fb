"""Fixtures of the command-line tests: `serve`, a loopback HTTP server of raw replies."""

from loopback_http import serve  # noqa: F401  (a fixture: pytest finds it here)
