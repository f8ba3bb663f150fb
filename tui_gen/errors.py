"""Errors a user can cause, as opposed to bugs.

Everything a user can get wrong (a missing file, a corrupt checkpoint, a bad flag) raises a
subclass of :class:`TuiGenError`. The command line catches exactly this type, prints its message
as one line and exits with code 2, so the message must name the problem *and* the fix. Anything
else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class TuiGenError(Exception):
    """Base class for user-facing errors: one line, names the problem and the fix."""

    exit_code: int = 2


class ModelLoadError(TuiGenError):
    """A model directory or file cannot be opened (missing, malformed, unsupported)."""


class UnsupportedModelError(ModelLoadError):
    """The checkpoint is readable but its architecture or tensor type is not supported."""


class ContextOverflowError(TuiGenError, ValueError):
    """Writing past the end of the KV cache was attempted."""
