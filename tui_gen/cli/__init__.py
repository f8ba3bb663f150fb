"""The command line: argument parsing, the headless modes, prompt files, `info`, `bench`.

Nothing here imports torch or Textual at module level: `--help` and argument errors are instant,
and the app paints before torch loads.
"""

from __future__ import annotations

from tui_gen.cli.dispatch import main

__all__ = ["main"]
