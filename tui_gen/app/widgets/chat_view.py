"""The conversation pane: user turns as literal text, replies as Markdown, streamed live.

A reply streams through Textual's MarkdownStream, which merges fragments when the widget cannot
keep up, so a fast model never makes the UI lag. When the reply finishes, the final text
replaces the streamed one (they differ only in whitespace the session strips). The pane is
anchored to the bottom while a reply streams and lets go as soon as the user scrolls up.

Everything shown passes through sanitize(): user text is a rich Text (never console markup),
replies are Markdown (which does not interpret console markup either).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from markdown_it import MarkdownIt
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Label, LoadingIndicator, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from tui_gen.app.tokens import ReplyToken, has_data
from tui_gen.app.widgets.heatmap import TokenHeatmap
from tui_gen.app.widgets.reply_markdown import ReplyMarkdown
from tui_gen.sanitize import sanitize

#: how long a streamed fragment waits before it is drawn: about 15 frames a second, slower
#: (up to MAX_STREAM_INTERVAL) while the event loop is late, i.e. busy, so that drawing never
#: crowds out the user's typing
STREAM_INTERVAL = 1 / 15
MAX_STREAM_INTERVAL = 0.5


def markdown_parser() -> MarkdownIt:
    """GitHub-flavoured Markdown with raw HTML shown as text: a model writing "<br>" or
    "<div>" in prose should be seen, not silently dropped."""
    return MarkdownIt("gfm-like", {"html": False})


class UserTurn(Static):
    """What the user sent, shown exactly as typed."""

    DEFAULT_CSS = """
    UserTurn {
        margin: 1 0 0 6;
        padding: 0 1;
        background: $boost;
        border-left: outer $secondary;
        color: $foreground;
        height: auto;
    }
    """

    def __init__(self, content: str) -> None:
        super().__init__(Text(sanitize(content)), markup=False)
        self.text = content


class ReplyTurn(Vertical):
    """One reply: who wrote it, the Markdown body (streamed), and how it ended; with the
    heat map on (and token data to show) the body is its TokenHeatmap instead."""

    DEFAULT_CSS = """
    ReplyTurn {
        height: auto;
        margin: 1 4 0 0;
        padding: 0 1;
        border-left: outer $primary;
        & > .reply--who { color: $primary; text-style: bold; }
        & > Markdown { margin: 0; padding: 0; background: transparent; }
        /* the stats line wraps (at its spaces) on a narrow screen rather than being cut */
        & > .reply--meta { color: $foreground-muted; width: 1fr; height: auto; }
        & > .reply--who.-generating { color: $accent; }
        &.-stopped { border-left: outer $warning; }
        & > .reply--meta.-stopped { color: $warning; }
        &.-heatmap > Markdown { display: none; }
        &.-heatmap > TokenHeatmap { display: block; }
    }
    """

    def __init__(
        self,
        model: str,
        content: str = "",
        meta: str = "",
        stopped: bool = False,
        tokens: Sequence[ReplyToken] = (),
        heatmap: bool = False,
    ) -> None:
        super().__init__()
        self._tokens = tokens
        self._heatmap_wanted = heatmap
        self.model = model
        self._initial = sanitize(content)
        self._meta = meta
        self._stream: MarkdownStream | None = None
        self._pending: list[str] = []
        self._flush_timer: Timer | None = None
        self._flush_due = 0.0
        self._interval = STREAM_INTERVAL
        self._stopped = stopped
        self.set_class(stopped, "-stopped")

    def compose(self) -> ComposeResult:
        yield Label(Text(sanitize(self.model) or "Assistant"), classes="reply--who")
        yield ReplyMarkdown(self._initial, parser_factory=markdown_parser, open_links=False)
        yield TokenHeatmap(self._tokens)
        yield Label(
            Text(self._meta), classes="reply--meta -stopped" if self._stopped else "reply--meta"
        )

    def on_mount(self) -> None:
        self._sync_heatmap()

    @property
    def body(self) -> Markdown:
        return self.query_one(Markdown)

    @property
    def heatmap(self) -> TokenHeatmap:
        return self.query_one(TokenHeatmap)

    def show_heatmap(self, on: bool) -> None:
        """Draw the reply as its heat map (when it has token data) or as Markdown."""
        self._heatmap_wanted = on
        self._sync_heatmap()

    def _sync_heatmap(self) -> None:
        on = self._heatmap_wanted and has_data(self.heatmap.tokens)
        self.set_class(on, "-heatmap")
        if not on and self._pending and self._flush_timer is None:  # text held while hidden
            self._flush_due = time.monotonic() + self._interval
            self._flush_timer = self.set_timer(self._interval, self._flush)

    def add_tokens(self, tokens: Sequence[ReplyToken]) -> None:
        """Token data of a streaming reply (the heat map draws it when it is shown)."""
        had = has_data(self.heatmap.tokens)
        self.heatmap.extend(tokens)
        if not had and self._heatmap_wanted:
            self._sync_heatmap()

    def set_tokens(self, tokens: Sequence[ReplyToken]) -> None:
        self.heatmap.set_tokens(tokens)
        self._sync_heatmap()

    @property
    def source(self) -> str:
        """The Markdown source shown so far (streamed fragments included)."""
        return self.body.source

    def start(self) -> None:
        """Mark the reply as being generated (a live 'generating' look, no text yet).

        Classes go on the small labels, not on the reply: a class change on a container
        restyles every Markdown block inside it, which is a visible hitch on a long reply."""
        self.query_one(".reply--who").add_class("-generating")
        self.set_meta("generating…")

    async def append(self, text: str) -> None:
        """Add streamed (already sanitized) text. Text is handed to the MarkdownStream at most
        every STREAM_INTERVAL seconds: each hand-over re-lays out the pane, and a model faster
        than the screen must not turn every batch into a full repaint."""
        if not text:
            return
        self._pending.append(text)
        if self.has_class("-heatmap"):
            return  # the Markdown is hidden: it gets the text when shown again, or at the end
        if self._flush_timer is None:
            self._flush_due = time.monotonic() + self._interval
            self._flush_timer = self.set_timer(self._interval, self._flush)

    async def _flush(self) -> None:
        self._flush_timer = None
        late = time.monotonic() - self._flush_due
        if late > 0.02:  # the loop is busy: draw less often
            self._interval = min(MAX_STREAM_INTERVAL, self._interval * 1.5 + late)
        else:
            self._interval = max(STREAM_INTERVAL, self._interval * 0.8)
        if not self._pending or self.has_class("-heatmap"):
            return  # (hidden under the heat map: _sync_heatmap flushes when it is shown)
        text = "".join(self._pending)
        self._pending.clear()
        if self._stream is None:
            self._stream = Markdown.get_stream(self.body)
        await self._stream.write(text)

    @property
    def streamed_text(self) -> str:
        """Everything appended so far, shown or still waiting for the next frame."""
        return self.body.source + "".join(self._pending)

    async def finish(self, text: str, meta: str, stopped: bool = False) -> None:
        """Show the final text (sanitized here) and how the reply ended."""
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        if self._pending:
            text_so_far = "".join(self._pending)
            self._pending.clear()
            if self._stream is None:
                self._stream = Markdown.get_stream(self.body)
            await self._stream.write(text_so_far)
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        final = sanitize(text)
        if self.body.source != final:
            await self.body.update(final)
        self.query_one(".reply--who").remove_class("-generating")
        if stopped:  # rare: only then is the whole reply restyled (its border)
            self.add_class("-stopped")
        self.set_meta(meta, stopped)

    def set_meta(self, meta: str, stopped: bool = False) -> None:
        self._meta = meta
        for label in self.query(".reply--meta").results(Label):
            label.update(Text(meta))
            label.set_class(stopped, "-stopped")


class Welcome(Vertical):
    """What the empty conversation shows: a loading indicator, then how to start."""

    DEFAULT_CSS = """
    Welcome {
        height: auto;
        margin: 2 4;
        padding: 1 2;
        border: round $primary 50%;
        & > LoadingIndicator { height: 1; color: $accent; }
        & > Static { color: $foreground-muted; }
        & > .welcome--title { color: $foreground; text-style: bold; }
    }
    """

    def __init__(self, title: str, body: str, loading: bool = False) -> None:
        super().__init__()
        self._title, self._body, self._loading = title, body, loading

    def compose(self) -> ComposeResult:
        yield Static(Text(self._title), classes="welcome--title")
        if self._loading:
            yield LoadingIndicator()
        yield Static(Text(self._body), classes="welcome--body")

    def show(self, title: str, body: str, loading: bool = False) -> None:
        self._title, self._body = title, body
        self.query_one(".welcome--title", Static).update(Text(title))
        self.query_one(".welcome--body", Static).update(Text(body))
        if loading != self._loading:
            self._loading = loading
            if loading:
                self.mount(LoadingIndicator(), after=0)
            else:
                self.query(LoadingIndicator).remove()


class ChatView(VerticalScroll):
    """The turns of the conversation, newest at the bottom. Posts TurnsChanged when turns come
    or go (the inspector follows the last reply)."""

    class TurnsChanged(Message):
        """A turn was added or removed."""

    DEFAULT_CSS = """
    ChatView {
        height: 1fr;
        padding: 0 1 1 1;
        background: $background;
        scrollbar-size-vertical: 1;
        /* a focus stop (arrows and PageUp/PageDown scroll) must look like one */
        &:focus { background-tint: $primary 8%; scrollbar-color: $primary; }
    }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, can_focus=True)

    def compose(self) -> ComposeResult:
        yield Welcome("Loading model…", "The screen is ready; the model is loading.", loading=True)

    @property
    def welcome(self) -> Welcome:
        return self.query_one(Welcome)

    @property
    def turns(self) -> list[UserTurn | ReplyTurn]:
        return [w for w in self.children if isinstance(w, (UserTurn, ReplyTurn))]

    def last_reply(self) -> ReplyTurn | None:
        for w in reversed(self.children):  # not a query: that walks every Markdown block
            if isinstance(w, ReplyTurn):
                return w
        return None

    def _sync_welcome(self) -> None:
        self.welcome.display = not self.turns
        self.post_message(self.TurnsChanged())

    async def add_user(self, content: str) -> UserTurn:
        turn = UserTurn(content)
        await self.mount(turn)
        self._sync_welcome()
        self.anchor()
        return turn

    #: replies are drawn as heat maps (the app's toggle; new replies follow it)
    heatmap_on = False

    def show_heatmap(self, on: bool) -> None:
        self.heatmap_on = on
        for turn in self.query(ReplyTurn):
            turn.show_heatmap(on)

    async def add_reply(
        self,
        model: str,
        content: str = "",
        meta: str = "",
        stopped: bool = False,
        tokens: Sequence[ReplyToken] = (),
    ) -> ReplyTurn:
        turn = ReplyTurn(model, content, meta, stopped, tokens, self.heatmap_on)
        await self.mount(turn)
        self._sync_welcome()
        self.anchor()
        return turn

    async def remove_last(self, count: int = 1) -> None:
        """Remove the newest `count` turns (regenerate, edit and resend)."""
        turns = self.turns
        if count > 0 and turns:
            await self.remove_children(turns[-count:])
        self._sync_welcome()

    async def clear_turns(self) -> None:
        await self.remove_children(self.turns)
        self._sync_welcome()
