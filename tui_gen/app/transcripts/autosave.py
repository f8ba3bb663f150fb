"""Autosave: conversations are written as they go, off the UI thread, newest snapshot winning.

The UI thread takes the snapshot (JSON text, cheap) so the conversation can keep changing; a
worker thread writes it atomically (fsync can take milliseconds on a busy disk, which the event
loop must not wait for). Writes for one conversation are serialised by a lock and versioned: a
snapshot older than the one already on disk is dropped, so a slow thread can never put an
older version back. Different conversations do not block each other's newest version.

An empty conversation is not written; if an earlier version of it is on disk (the user took
back its only exchange), that file moves to the trash, so the transcript always agrees with
the conversation (and a new chat started next does not leave a stale copy behind).
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
        return self.store.dumps(conv), self._next_version()

    def save(self, conv: Conversation, partial_reply: str | None = None) -> bool:
        """Queue a write of `conv` (an empty one only removes an older version of itself)."""
        conv_id = conv.id
        if conv.turns:
            text: str | None
            text, version = self._snapshot(conv, partial_reply)
        elif self._maybe_on_disk(conv.id):
            text, version = None, self._next_version()
        else:
            return False

        def write() -> None:
            error = self._write(conv_id, text, version)
            if error:
                self._on_error(error)

        self._run_in_thread(write)
        return True

    def save_now(self, conv: Conversation, partial_reply: str | None = None) -> str | None:
        """Write `conv` on this thread (on quit); return an error message, or None."""
        if conv.turns:
            text, version = self._snapshot(conv, partial_reply)
            return self._write(conv.id, text, version)
        if self._maybe_on_disk(conv.id):
            return self._write(conv.id, None, self._next_version())
        return None

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _maybe_on_disk(self, conv_id: str) -> bool:
        """Written in this session, or a file of that name exists (a reopened conversation)."""
        if conv_id in self._on_disk:
            return True
        try:
            return self.store.path_for(conv_id).exists()
        except (TranscriptError, OSError):
            return False

    def _write(self, conv_id: str, text: str | None, version: int) -> str | None:
        """Write `text` (None: move the file to the trash) unless a newer version is there."""
        with self._lock:
            if version < self._on_disk.get(conv_id, 0):
                return None  # a newer snapshot of this conversation is already on disk
            try:
                if text is not None:
                    self.store.save_text(conv_id, text)
                elif self.store.path_for(conv_id).exists():
                    self.store.delete(conv_id)
            except TranscriptError as e:
                return str(e)
            self._on_disk[conv_id] = version
            return None
