"""Browse saved conversations: list, preview, reopen (and continue), export or delete.

The folder is scanned on a thread (it may hold thousands of files). Files that cannot be read
are reported in one notice and left exactly where they are. Deleting asks first and moves the
file to the folder's .trash/, from where it can be restored by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Markdown, Static

from tui_gen.app.screens.confirm import ConfirmScreen
from tui_gen.app.transcripts.store import (
    Summary,
    TranscriptError,
    TranscriptStore,
    export_markdown,
    to_markdown,
)
from tui_gen.app.widgets.chat_view import markdown_parser

TITLE_WIDTH = 32


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso[:16]


class TranscriptBrowser(ModalScreen[str | None]):
    """Dismisses with the id of the conversation to reopen, or None. Modal, so the chat's keys
    (reset, regenerate...) do not act on the conversation hidden behind it."""

    DEFAULT_CSS = """
    TranscriptBrowser {
        background: $background;
        & > .browser--title { dock: top; height: 1; padding: 0 1; background: $panel;
                              color: $foreground-muted; }
        & > Horizontal { height: 1fr; }
        & DataTable { width: 3fr; height: 1fr; border: tall $border-blurred; }
        & DataTable:focus { border: tall $primary; }
        & #transcript-preview { width: 2fr; height: 1fr; border: tall $border-blurred;
                                padding: 0 1; background: $surface; }
        & #transcript-preview Markdown { background: transparent; }
        & .browser--empty { padding: 2 4; color: $foreground-muted; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", id="transcripts.open", priority=True),
        Binding("d,delete", "delete", "Delete", id="transcripts.delete"),
        Binding("e", "export", "Export .md", id="transcripts.export"),
        Binding("r", "rescan", "Refresh", id="transcripts.refresh"),
        Binding("escape,q", "close", "Back", id="transcripts.close"),
    ]

    @dataclass
    class Deleted(Message):
        """A transcript was moved to the trash (the app forgets it if it is the open one)."""

        conv_id: str

    def __init__(self, store: TranscriptStore, current_id: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.current_id = current_id
        self.summaries: list[Summary] = []
        self.problems: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Transcripts in {self.store.folder}"), classes="browser--title")
        with Horizontal():
            table: DataTable[str | Text] = DataTable(
                id="transcript-list", cursor_type="row", zebra_stripes=True
            )
            table.add_columns("Conversation", "Model", "Turns", "Last change")
            yield table
            with VerticalScroll(id="transcript-preview"):
                yield Markdown("", parser_factory=markdown_parser, open_links=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.rescan()

    # --- listing -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="transcript-scan")
    def rescan(self) -> None:
        summaries, problems = self.store.scan()
        self.app.call_from_thread(self._show, summaries, problems)

    def action_rescan(self) -> None:
        self.rescan()

    def _show(self, summaries: list[Summary], problems: list[str]) -> None:
        self.summaries, self.problems = summaries, problems
        table = self.query_one(DataTable)
        table.clear()
        for s in summaries:
            mark = "● " if s.id == self.current_id else ""
            title = Text(mark + s.title, overflow="ellipsis", no_wrap=True)
            title.truncate(TITLE_WIDTH, overflow="ellipsis")
            table.add_row(title, Text(s.model[:16]), str(s.turns), _when(s.updated), key=s.id)
        if problems:
            names = ", ".join(p.split(":", 1)[0].rsplit("/", 1)[-1] for p in problems[:3])
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            self.notify(
                f"Skipped {len(problems)} unreadable file(s), left untouched: {names}{more}",
                title="Transcripts",
                severity="warning",
                timeout=8,
                markup=False,
            )
        if not summaries:
            self.query_one(Markdown).update("*No saved conversations yet.*")
        else:
            self._preview(summaries[0].id)

    def _selected(self) -> Summary | None:
        table = self.query_one(DataTable)
        if not self.summaries or table.cursor_row < 0:
            return None
        return self.summaries[min(table.cursor_row, len(self.summaries) - 1)]

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self._preview(event.row_key.value)

    def _preview(self, conv_id: str) -> None:
        try:
            text = to_markdown(self.store.load(conv_id), fence=False)
        except TranscriptError as e:
            text = f"*Cannot read this transcript:* `{e}`"
        self.query_one(Markdown).update(text)

    # --- actions -----------------------------------------------------------------------------
    def action_open(self) -> None:
        s = self._selected()
        if s is not None:
            self.dismiss(s.id)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_export(self) -> None:
        s = self._selected()
        if s is None:
            return
        try:
            conv = self.store.load(s.id)
            path = export_markdown(conv, self.store.export_path(conv))
        except TranscriptError as e:
            self.notify(str(e), severity="error", markup=False)
            return
        self.notify(f"Exported to {path}", title="Markdown", markup=False)

    def action_delete(self) -> None:
        s = self._selected()
        if s is None:
            return

        def done(yes: bool | None) -> None:
            if not yes:
                return
            try:
                where = self.store.delete(s.id)
            except TranscriptError as e:
                self.notify(str(e), severity="error", markup=False)
                return
            self.post_message(self.Deleted(s.id))
            self.notify(f"Moved to {where.parent}", title="Deleted", markup=False)
            self.rescan()

        self.app.push_screen(
            ConfirmScreen(f"Delete “{s.title}”?\nIt moves to the .trash folder.", "Delete"), done
        )
