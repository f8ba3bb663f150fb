"""The app's one conversation history: what is saved and what the model is sent come from here.

`History` owns the open `Conversation` (its turns and system prompt: what autosave writes and
Markdown export prints) and is the only thing that changes it: sending, a finished reply,
regenerating, taking back the last exchange, a new chat, reopening a saved one, the system
prompt, and rolling back after an engine error all go through its methods, on the UI thread.

What the model is sent is derived from the same turns each time (`request_messages`): an
immutable snapshot (a tuple of read-only mappings) that a worker thread can read while the UI
keeps changing the history. The only extra state is `context_start`: how many of the oldest
turns the model's context had to drop (the saved transcript keeps them all), which advances
when a reply that needed trimming finishes, so the next prompt starts where that one did and
the KV cache keeps its prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from tui_gen.app.transcripts.store import Conversation, Turn, now_iso
from tui_gen.engine.protocol import ChatMessage


@dataclass(frozen=True)
class Checkpoint:
    """What the history goes back to if a request fails."""

    turns: tuple[Turn, ...]
    context_start: int


class History:
    """The open conversation, and the messages for the model derived from it."""

    def __init__(self, conversation: Conversation) -> None:
        self._conversation = conversation
        self._context_start = 0

    @property
    def conversation(self) -> Conversation:
        """The conversation as saved (read it; change it through this class)."""
        return self._conversation

    @property
    def turns(self) -> Sequence[Turn]:
        return self._conversation.turns

    @property
    def system(self) -> str | None:
        return self._conversation.system

    @property
    def context_start(self) -> int:
        return self._context_start

    # --- what the model is sent ----------------------------------------------------------------
    def request_messages(self) -> tuple[ChatMessage, ...]:
        """The turns the model's context still holds, as an immutable snapshot."""
        return tuple(
            MappingProxyType({"role": t.role, "content": t.content})
            for t in self._conversation.turns[self._context_start :]
        )

    # --- changes -------------------------------------------------------------------------------
    def add_user(self, text: str) -> Turn:
        turn = Turn("user", text, now_iso())
        self._conversation.turns.append(turn)
        return turn

    def add_reply(self, turn: Turn, dropped: int = 0) -> None:
        """A finished reply; `dropped`: oldest turns its prompt had to leave out."""
        self._context_start = min(self._context_start + dropped, len(self._conversation.turns))
        self._conversation.turns.append(turn)
        self._conversation.updated = turn.created

    def take_reply(self) -> Turn | None:
        """Remove the last reply (to generate it again)."""
        turns = self._conversation.turns
        if not turns or turns[-1].role != "assistant":
            return None
        return self._truncate(len(turns) - 1)[0]

    def unbranch(self) -> Turn | None:
        """Put back the reply the last reply was branched from; return it (None: the last
        turn is not a branched reply)."""
        turns = self._conversation.turns
        if not turns or turns[-1].role != "assistant" or turns[-1].branch is None:
            return None
        original = turns[-1].branch.original
        turns[-1] = original
        return original

    def take_back_last_exchange(self) -> tuple[str, int] | None:
        """Remove the last user message and what followed it; (its text, turns removed)."""
        turns = self._conversation.turns
        index = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)
        if index is None:
            return None
        removed = self._truncate(index)
        return removed[0].content, len(removed)

    def unsend_last(self) -> str | None:
        """Remove the last message if it was never answered; return its text."""
        turns = self._conversation.turns
        if turns and turns[-1].role == "user":
            return self._truncate(len(turns) - 1)[0].content
        return None

    def _truncate(self, index: int) -> list[Turn]:
        turns = self._conversation.turns
        removed = turns[index:]
        del turns[index:]
        self._context_start = min(self._context_start, len(turns))
        return removed

    def set_system(self, value: str | None) -> None:
        """The system prompt for the next reply (each request reads it afresh)."""
        self._conversation.system = value

    def start_new(self, model: str) -> None:
        """A new, empty conversation (the system prompt stays)."""
        self.replace(Conversation.new(model, self._conversation.system))

    def replace(self, conversation: Conversation) -> None:
        """Open another conversation (a reopened transcript)."""
        self._conversation = conversation
        self._context_start = 0

    def forget_saved(self, model: str) -> None:
        """The saved file was deleted: empty, under a new id, so it is never written back."""
        self._conversation.id = Conversation.new(model).id
        self._truncate(0)

    def set_model(self, model: str) -> None:
        self._conversation.model = model

    def checkpoint(self, drop_last: bool = False) -> Checkpoint:
        """The history as it is (`drop_last`: as it was before the last turn was added)."""
        turns = tuple(self._conversation.turns)
        if drop_last and turns:
            turns = turns[:-1]
        return Checkpoint(turns, min(self._context_start, len(turns)))

    def restore(self, checkpoint: Checkpoint) -> None:
        self._conversation.turns = list(checkpoint.turns)
        self._context_start = checkpoint.context_start
