"""The full-screen chat (Textual). Importing this package does not import torch: the screen is
up, with a loading indicator, while the model loads on a worker thread."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui_gen.app.config import AppConfig

__all__ = ["run_app"]


def run_app(config: AppConfig) -> int:
    """Run the app; return the exit code (2 if the model could not be loaded, after printing
    why)."""
    from tui_gen.app.app import TuiGenApp

    app = TuiGenApp(config)
    code = app.run()
    if app.load_error:
        print(f"tui-gen: error: {app.load_error}", file=sys.stderr)
    code = code if isinstance(code, int) else 0
    if app.engine_stuck:
        # the conversation is saved; a generation thread that ignores its cancel event would
        # keep the interpreter from exiting (threads are joined at exit), so do not wait for it
        print("tui-gen: the model was still busy; quit without waiting for it", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
