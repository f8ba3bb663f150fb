"""The prompt box: a multi-line TextArea where Enter sends and Ctrl+J adds a newline.

Terminals cannot always tell Shift+Enter from Enter, so the newline key is Ctrl+J (which every
terminal sends as a line feed) and Shift+Enter where the terminal supports it. Up and Down walk
through the prompts sent before, like a shell: when the box is empty, or when the cursor is on
the first (last) line of a recalled prompt; otherwise they move the cursor as usual. The text
typed before browsing is kept and comes back after the newest entry.

The box does not clear itself on Enter: it posts Submitted, and the owner calls `accept()` when
it took the text (so a prompt sent while the model is busy is not lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea

from tui_gen.sanitize import sanitize

HISTORY_LIMIT = 500


class PromptInput(TextArea):
    """Multi-line prompt with Enter to send, Ctrl+J for a newline, and Up/Down history."""

    DEFAULT_CSS = """
    PromptInput {
        height: auto;
        min-height: 3;
        max-height: 12;
        border: tall $border-blurred;
        padding: 0 1;
        background: $surface;
        &:focus { border: tall $primary; }
        & .text-area--cursor-line { background: transparent; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # not a priority binding: those run as the key arrives at the app, before the keys
        # queued ahead of it reach the box, so a fast typist or tmux send-keys lost text
        Binding("enter", "submit", "Send", id="send"),
        Binding("ctrl+j,shift+enter", "newline", "Newline", key_display="^j", id="newline"),
        Binding("up", "history_previous", "Previous prompt", show=False, id="history_previous"),
        Binding("down", "history_next", "Next prompt", show=False, id="history_next"),
    ]

    @dataclass
    class Submitted(Message):
        """Enter was pressed with some text in the box."""

        prompt: PromptInput
        text: str

        @property
        def control(self) -> PromptInput:
            return self.prompt

    def __init__(
        self,
        *,
        placeholder: str = "",
        history: list[str] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            id=id,
            classes=classes,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder=placeholder,
        )
        self.prompt_history: list[str] = list(history or [])[-HISTORY_LIMIT:]
        self._index: int | None = None  # position in history while browsing
        self._draft = ""

    # --- typing ----------------------------------------------------------------------------
    async def _on_key(self, event: events.Key) -> None:
        """Keys bound here (Enter: send) run in order with the typed text, before TextArea
        would insert them; everything else is TextArea's."""
        bindings = self._bindings.copy()
        if self.app._keymap:  # the settings file may remap "send" (as Textual's chain does)
            bindings.apply_keymap(self.app._keymap)
        for binding in bindings.key_to_bindings.get(event.key, ()):
            if binding.action in ("submit", "newline"):
                event.stop()
                event.prevent_default()
                await self.run_action(binding.action)
                return
        await super()._on_key(event)

    async def _on_paste(self, event: events.Paste) -> None:
        """Pasted text is made terminal-safe first: an escape sequence in the clipboard must
        not scramble the box (or reach the model)."""
        text = sanitize(event.text)
        event.stop()
        event.prevent_default()
        if (
            text
            and not self.read_only
            and (result := self._replace_via_keyboard(text, *self.selection))
        ):
            self.move_cursor(result.end_location)
            self.focus()

    # --- sending ---------------------------------------------------------------------------
    def action_submit(self) -> None:
        if self.text.strip():
            self.post_message(self.Submitted(self, self.text))

    def accept(self) -> None:
        """The owner took the text: remember it and clear the box."""
        self.remember(self.text)
        self.clear()

    def remember(self, text: str) -> None:
        if text.strip() and (not self.prompt_history or self.prompt_history[-1] != text):
            self.prompt_history.append(text)
            del self.prompt_history[:-HISTORY_LIMIT]
        self._index = None
        self._draft = ""

    def set_text(self, text: str) -> None:
        """Replace the text and put the cursor at its end (e.g. for editing a prompt)."""
        self.load_text(text)
        self.move_cursor(self.document.end)

    def action_newline(self) -> None:
        self.insert("\n")

    # --- history -----------------------------------------------------------------------------
    @property
    def browsing(self) -> bool:
        return self._index is not None

    def action_history_previous(self) -> None:
        at_top = self.cursor_at_first_line
        if self.prompt_history and (not self.text or (self.browsing and at_top)):
            if self._index is None:
                self._draft = self.text
                self._index = len(self.prompt_history)
            if self._index > 0:
                self._index -= 1
                self.set_text(self.prompt_history[self._index])
            return
        self.action_cursor_up()

    def action_history_next(self) -> None:
        if self._index is not None and self.cursor_at_last_line:
            self._index += 1
            if self._index >= len(self.prompt_history):
                self._index = None
                self.set_text(self._draft)
            else:
                self.set_text(self.prompt_history[self._index])
            return
        self.action_cursor_down()
