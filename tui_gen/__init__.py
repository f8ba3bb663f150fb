"""tui-gen: chat with local language models in the terminal, from a script, or from Python.

The public API is imported lazily so that `tui-gen` can paint its first screen before torch is
imported (importing torch alone takes about a second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "FinishEvent",
    "GenerationResult",
    "Generator",
    "SamplingParams",
    "TokenEvent",
    "TuiGenError",
    "__version__",
]

_LAZY = {
    "Generator": "tui_gen.engine.generator",
    "GenerationResult": "tui_gen.engine.events",
    "TokenEvent": "tui_gen.engine.events",
    "FinishEvent": "tui_gen.engine.events",
    "SamplingParams": "tui_gen.options",
    "TuiGenError": "tui_gen.errors",
}

if TYPE_CHECKING:
    from tui_gen.engine.events import FinishEvent, GenerationResult, TokenEvent
    from tui_gen.engine.generator import Generator
    from tui_gen.errors import TuiGenError
    from tui_gen.options import SamplingParams


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tui_gen' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
