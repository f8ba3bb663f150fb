"""Autosave: conversations are written as they go, off the UI thread, newest snapshot winning.

The UI thread takes the snapshot (JSON text, cheap) so the conversation can keep changing; a
worker thread writes it atomically (fsync can take milliseconds on a busy disk, which the event
loop must not wait for). Writes for one conversation are serialised by a lock and versioned: a
snapshot older than the one already on disk is dropped, so a slow thread can never put an
older version back. Different conversations do not block each other's newest version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tui_gen.app.transcripts.store import (
    Conversation,
    TranscriptError,
    TranscriptStore,
    Turn,
    now_iso,
)


class AutoSaver:
    """Saves conversations through `run_in_thread`; reports failures with `on_error`."""

    def __init__(
        self,
        store: TranscriptStore,
        run_in_thread: Callable[[Callable[[], None]], Any],
        on_error: Callable[[str], None],
    ) -> None:
        self.store = store
        self._run_in_thread = run_in_thread
        self._on_error = on_error
        self._lock = threading.Lock()
        self._version = 0
        self._on_disk: dict[str, int] = {}

    def _snapshot(self, conv: Conversation, partial_reply: str | None) -> tuple[str, int]:
        if partial_reply is not None:
            # a reply still streaming: saved as "interrupted", so a crash or kill keeps it
            conv = Conversation(**{**conv.__dict__, "turns": list(conv.turns)})
            conv.turns.append(
                Turn("assistant", partial_reply, now_iso(), "interrupted", model=conv.model)
            )
        self._version += 1
        return self.store.dumps(conv), self._version

    def save(self, conv: Conversation, partial_reply: str | None = None) -> bool:
        """Queue a write of `conv` (empty conversations are not saved); True if queued."""
        if not conv.turns:
            return False
        text, version = self._snapshot(conv, partial_reply)

        def write() -> None:
            error = self._write(conv.id, text, version)
            if error:
                self._on_error(error)

        self._run_in_thread(write)
        return True

    def save_now(self, conv: Conversation) -> str | None:
        """Write `conv` on this thread (on quit); return an error message, or None."""
        if not conv.turns:
            return None
        text, version = self._snapshot(conv, None)
        return self._write(conv.id, text, version)

    def _write(self, conv_id: str, text: str, version: int) -> str | None:
        with self._lock:
            if version < self._on_disk.get(conv_id, 0):
                return None  # a newer snapshot of this conversation is already on disk
            try:
                self.store.save_text(conv_id, text)
            except TranscriptError as e:
                return str(e)
            self._on_disk[conv_id] = version
            return None
