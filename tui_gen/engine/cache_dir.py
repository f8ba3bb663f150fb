"""Where tui-gen keeps what it derives from other files and can always derive again: built
native kernels and tokenizer merges. One rule for every such file: $TUI_GEN_CACHE_DIR when
set (the tests point it at a temporary directory), else the platform's user cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """The directory for one kind of derived file (not created here)."""
    env = os.environ.get("TUI_GEN_CACHE_DIR")
    if env:
        return Path(env) / kind
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tui-gen")) / kind
