"""Keep full garbage collections out of the middle of a streaming reply.

With torch loaded the heap holds hundreds of thousands of objects, and a full (generation 2)
collection scans them all: a pause of tens to hundreds of milliseconds, felt as a stutter in
the streaming text and in typing. Three measures, all reversible:

* `freeze_startup_objects()` after the model has loaded: everything alive then (torch, the
  model, Textual) lives for the whole session, so it moves to the permanent generation and is
  never scanned again;
* `defer_full_collections()` while a reply streams: young generations are still collected
  (cheap, and they reclaim most cycles), full collections wait;
* `restore()` when the reply ends; the app then runs one full collection a moment later, while
  the user reads.
"""

from __future__ import annotations

import gc

#: generation-2 threshold while streaming: effectively "not now"
_DEFERRED = 1_000_000
_saved: tuple[int, int, int] | None = None


def freeze_startup_objects() -> None:
    """Move every object alive now to the permanent generation (once per process: what
    lives after the first model load is what lives for the session)."""
    if gc.get_freeze_count() == 0:
        gc.freeze()


def defer_full_collections() -> None:
    """Raise the generation-2 threshold until restore() (idempotent)."""
    global _saved
    if _saved is None:
        _saved = gc.get_threshold()
        gc.set_threshold(_saved[0], _saved[1], _DEFERRED)


def restore() -> None:
    """Put the thresholds back as they were (idempotent)."""
    global _saved
    if _saved is not None:
        gc.set_threshold(*_saved)
        _saved = None


def collect() -> None:
    """A full collection now (call it when nothing is streaming)."""
    gc.collect()
