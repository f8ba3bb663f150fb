"""The help screen: every key binding (as currently mapped) and every slash command."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown, Static

from tui_gen.app.slash import COMMANDS


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def help_markdown(
    rows: Iterable[tuple[str, str, str]],
    settings_path: str = "",
    commands: dict[str, tuple[str, str]] | None = None,
) -> str:
    """The help text: (binding id, keys, description) rows, then the slash commands
    (`commands`: COMMANDS with this model's ranges)."""
    lines = [
        "## Keys",
        "",
        "| Keys | Action | Binding id |",
        "| --- | --- | --- |",
    ]
    for binding_id, keys, description in rows:
        lines.append(f"| `{_cell(keys)}` | {_cell(description)} | `{binding_id}` |")
    lines += [
        "",
        "Remap keys with a `keymap` object in the settings file (binding id → keys, e.g. "
        '`"regenerate": "f5"`)' + (f": `{settings_path}`" if settings_path else "") + ".",
        "",
        "## Slash commands",
        "",
        "| Command | What it does |",
        "| --- | --- |",
    ]
    for name, (args, description) in (commands or COMMANDS).items():
        command = _cell(f"/{name} {args}".rstrip())  # "/system [TEXT | -]" has a pipe
        lines.append(f"| `{command}` | {_cell(description)} |")
    lines += ["", "Start a message with `//` to send a literal `/`."]
    return "\n".join(lines) + "\n"


class HelpScreen(ModalScreen[None]):
    """Keys and commands; Escape, F1 or q closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > Vertical {
            width: 90%;
            max-width: 110;
            height: 90%;
            border: thick $primary 70%;
            background: $surface;
        }
        & .help--title { dock: top; padding: 0 1; background: $primary 20%; text-style: bold; }
        & VerticalScroll { padding: 0 1; }
        & Markdown { background: transparent; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss", "Close", id="help.close"),
    ]

    def __init__(
        self,
        rows: list[tuple[str, str, str]],
        settings_path: str = "",
        commands: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        super().__init__()
        self._text = help_markdown(rows, settings_path, commands)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("tui-gen help", classes="help--title")
            with VerticalScroll():
                yield Markdown(self._text, open_links=False)
        yield Footer(compact=True)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
