"""The heat map, the token inspector and branching: the app's side of "what was the model
choosing between" (a base class of TuiGenApp, like GenerationMixin, so app.py stays small).

Who owns what:

* the reply's tokens (id, text, what the model weighed) belong to the History, on the reply's
  Turn (the transcript saves them); the running generation holds the ones still streaming;
* the view (heat map on or off, inspector open or closed) is here, as two flags;
* the inspector's cursor is the InspectorPanel's; the heat map only draws it;
* the slider values are the app's `sampling`; the inspector is told when they change and
  recomputes its marks (sampler_marks) at once.

The inspector looks at the last reply: that is the one a branch can regenerate (a branch of an
earlier reply would have to throw away what followed it). Branching asks the backend to continue
the reply after the kept tokens and the chosen alternative (ChatBackend.stream_reply's
`prefix_ids`); the new reply records the branch point and the original (Turn.branch), and
"back to the original" puts the original back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui_gen.app.generation import GenerationMixin
from tui_gen.app.tokens import Alternative, chosen, has_data
from tui_gen.app.transcripts.store import Branch, stats_line
from tui_gen.app.widgets.chat_view import ChatView, ReplyTurn
from tui_gen.app.widgets.heatmap import TokenHeatmap
from tui_gen.app.widgets.inspector import InspectorPanel

if TYPE_CHECKING:
    from tui_gen.app.settings import Settings


class InspectionMixin(GenerationMixin):
    """Heat map and inspector toggles, the cursor, branching and going back."""

    settings: Settings
    heatmap_on: bool = False
    inspector_on: bool = False

    @property
    def inspector(self) -> InspectorPanel:
        return self.query_one(InspectorPanel)

    def _logprobs_wanted(self) -> int:
        n = self.settings.logprobs
        wanted = self.settings.logprobs_always or self.heatmap_on or self.inspector_on
        return n if wanted else 0

    def _apply_view(self) -> None:
        self.chat_view.show_heatmap(self.heatmap_on or self.inspector_on)

    def _no_data_note(self) -> str:
        if not self.settings.logprobs:
            return 'Token data is off (settings: "logprobs": 0).'
        return "No reply has token data yet: the next one will."

    # --- toggles -------------------------------------------------------------------------------
    def action_toggle_heatmap(self) -> None:
        """Shade every reply's tokens by their probability (or go back to Markdown)."""
        self.heatmap_on = not self.heatmap_on
        self._apply_view()
        if self.heatmap_on and not any(
            has_data(t.tokens) for t in self.conversation.turns if t.role == "assistant"
        ):
            self.notify(self._no_data_note(), title="Heat map", timeout=4)

    def action_toggle_inspector(self) -> None:
        """Open the inspector on the last reply (its last token), or close it."""
        if self.inspector_on:
            self.close_inspector()
        else:
            self.open_inspector()

    def open_inspector(self, index: int | None = None) -> None:
        panel = self.inspector
        reply = self.chat_view.last_reply()
        tokens = reply.heatmap.tokens if reply is not None else ()
        self.inspector_on = True
        panel.set_sampling(self.sampling)
        panel.set_tokens(tokens, len(tokens) - 1 if index is None else index)
        panel.display = True
        self._apply_view()
        self._draw_cursor()
        panel.focus()
        if not has_data(tokens):
            self.notify(self._no_data_note(), title="Inspector", timeout=4)

    def close_inspector(self) -> None:
        self.inspector_on = False
        panel = self.inspector
        panel.display = False
        for reply in self.chat_view.query(ReplyTurn):
            reply.heatmap.cursor = None
        self._apply_view()
        if self.focused is None or self.focused is panel:
            self.prompt.focus()

    def _draw_cursor(self, reply: ReplyTurn | None = None) -> None:
        reply = reply or self.chat_view.last_reply()
        if reply is not None and self.inspector_on:
            reply.heatmap.cursor = self.inspector.index if reply.heatmap.tokens else None

    # --- what the inspector follows ------------------------------------------------------------
    def _reply_tokens_arrived(self, reply: ReplyTurn) -> None:
        """(`reply` is the one being generated: always the last.)"""
        if not self.inspector_on:
            return
        panel = self.inspector
        tokens = reply.heatmap.tokens
        if panel.tokens is not tokens:
            panel.set_tokens(tokens, panel.index)
        else:
            panel.refresh()  # the same, growing list: "token i/n" changes, not the height
        self._draw_cursor(reply)

    def on_chat_view_turns_changed(self, message: ChatView.TurnsChanged) -> None:
        """A new chat, a reopened one, a reply taken back or started: follow the last reply
        (a branch and going back point the inspector themselves, at the branch point)."""
        if not self.inspector_on:
            return
        reply = self.chat_view.last_reply()
        tokens = reply.heatmap.tokens if reply is not None else ()
        if self.inspector.tokens is not tokens:
            self.inspector.set_tokens(tokens, len(tokens) - 1)
            self._draw_cursor(reply)

    def _sampling_changed(self) -> None:
        """A slider moved: the removed-by-sampler marks follow at once."""
        if self.inspector_on:
            self.inspector.set_sampling(self.sampling)

    def on_inspector_panel_cursor_moved(self, message: InspectorPanel.CursorMoved) -> None:
        self._draw_cursor()

    def on_token_heatmap_clicked(self, message: TokenHeatmap.Clicked) -> None:
        reply = self.chat_view.last_reply()
        if reply is None or message.heatmap is not reply.heatmap:
            self.notify("The inspector looks at the last reply.", timeout=3)
            return
        if not self.inspector_on:
            self.open_inspector(message.index)
        else:
            self.inspector.index = message.index
            self.inspector.focus()

    # --- branching -----------------------------------------------------------------------------
    async def on_inspector_panel_branch(self, message: InspectorPanel.Branch) -> None:
        await self.branch_from(message.index, message.alternative)

    async def branch_from(self, index: int, alternative: Alternative) -> bool:
        """Regenerate the last reply from token `index`, with `alternative` in its place (the
        text before it is kept)."""
        if self.generating:
            self.notify("A reply is on its way; Esc stops it first.", severity="warning")
            return False
        turns = self.conversation.turns
        turn = turns[-1] if turns else None
        if self.chat is None or turn is None or turn.role != "assistant" or not turn.tokens:
            self.notify("There is no reply with token data to branch from.", severity="warning")
            return False
        if not 0 <= index < len(turn.tokens):
            return False
        tokens = turn.tokens
        prefix = (*tokens[:index], chosen(tokens, index, alternative))
        branch = Branch(
            index,
            (alternative.token_id, alternative.text),
            (tokens[index].token_id, tokens[index].label),
            turn,
        )
        await self._start("branch", prefix=prefix, branch=branch)
        if self.inspector_on:
            reply = self.chat_view.last_reply()
            if reply is not None:
                self.inspector.set_tokens(reply.heatmap.tokens, index)
                self._draw_cursor()
        return True

    async def action_unbranch(self) -> None:
        """Back to the reply as it was before the last branch (Ctrl+Z; once per branch)."""
        if not await self._stop_and_wait():
            return
        turns = self.conversation.turns
        branch = turns[-1].branch if turns else None
        original = self.history.unbranch()
        if original is None:
            self.notify("The last reply is not a branch: nothing to go back to.", timeout=3)
            return
        view = self.chat_view
        await view.remove_last(1)
        await view.add_reply(
            original.model or self.conversation.model,
            original.content,
            stats_line(original),
            stopped=original.stopped,
            tokens=original.tokens or (),
        )
        view.scroll_end(animate=False)
        if self.inspector_on:
            reply = view.last_reply()
            if reply is not None:
                index = branch.index if branch is not None else None
                self.inspector.set_tokens(reply.heatmap.tokens, index)
                self._draw_cursor()
        self.notify("Back to the original reply.", timeout=3)
        self._save()
