"""What the user can do, listed once for the help screen and the command palette.

Every binding has an id (the name to use in the settings file's keymap); `binding_rows` shows
them as currently mapped. `chat_commands` is the palette's list for the chat screen; each entry
names its key, so the palette also teaches the shortcuts.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding, BindingType

from tui_gen.app.codeblocks import code_blocks
from tui_gen.app.screens.transcripts import TranscriptBrowser
from tui_gen.app.widgets.inspector import InspectorPanel
from tui_gen.app.widgets.prompt import PromptInput
from tui_gen.app.widgets.slider import Slider
from tui_gen.sanitize import sanitize

if TYPE_CHECKING:
    from tui_gen.app.app import TuiGenApp


def binding_sources(app_bindings: list[BindingType]) -> list[tuple[str, list[BindingType]]]:
    """Every place that defines bindings with ids, app first."""
    return [
        ("app", app_bindings),
        ("prompt", PromptInput.BINDINGS),
        ("slider", Slider.BINDINGS),
        ("inspector", InspectorPanel.BINDINGS),
        ("transcripts", TranscriptBrowser.BINDINGS),
    ]


def binding_ids(app_bindings: list[BindingType]) -> list[str]:
    return [
        b.id
        for _, bindings in binding_sources(app_bindings)
        for b in bindings
        if isinstance(b, Binding) and b.id
    ]


def binding_rows(
    app_bindings: list[BindingType], keymap: dict[str, str]
) -> list[tuple[str, str, str]]:
    """(binding id, keys as currently mapped, what it does) for every binding with an id."""
    rows = []
    for _, bindings in binding_sources(app_bindings):
        for b in bindings:
            if isinstance(b, Binding) and b.id:
                rows.append((b.id, keymap.get(b.id, b.key), b.description or b.action))
    return rows


def _key(app: TuiGenApp, binding_id: str) -> str:
    for b in app.BINDINGS:
        if isinstance(b, Binding) and b.id == binding_id:
            return app.settings.keymap.get(binding_id, b.key)
    return ""


def chat_commands(app: TuiGenApp) -> Iterable[SystemCommand]:
    """The chat screen's palette entries (besides Textual's own: theme, quit, keys...)."""

    def cmd(title: str, help: str, binding_id: str, callback) -> SystemCommand:
        key = _key(app, binding_id)
        return SystemCommand(title, f"{help} ({key})" if key else help, callback)

    yield cmd("Stop generating", "Stop the reply, keep what it wrote", "stop", app.action_stop)
    yield cmd(
        "New conversation", "Clear the chat and the model's KV cache", "reset", app.action_reset
    )
    yield cmd("Regenerate", "Generate the last reply again", "regenerate", app.action_regenerate)
    yield cmd(
        "Edit last prompt", "Take back the last message to edit and resend it", "edit_last",
        app.action_edit_last,
    )  # fmt: skip
    yield cmd("Copy last reply", "Copy it to the clipboard", "copy_reply", app.action_copy_reply)
    turn = app.conversation.last("assistant")
    for i, block in enumerate(code_blocks(sanitize(turn.content)) if turn else []):
        yield SystemCommand(
            f"Copy code block {i + 1}",
            f"From the last reply: {block.describe()}",
            partial(app.action_copy_code, i),
        )
    yield cmd(
        "Export to Markdown", "Save the conversation as a .md file", "export", app.action_export
    )
    yield SystemCommand(
        "Export to Markdown with token probabilities",
        "The conversation as a .md file, a table of every reply's tokens after it",
        partial(app.action_export, "", True),
    )
    yield cmd(
        "Toggle heat map", "Shade each reply's tokens by their probability", "heatmap",
        app.action_toggle_heatmap,
    )  # fmt: skip
    yield cmd(
        "Token inspector", "Step through the last reply's tokens and their alternatives",
        "inspector", app.action_toggle_inspector,
    )  # fmt: skip
    yield cmd(
        "Back to the original reply", "Undo the last branch from a token", "unbranch",
        app.action_unbranch,
    )  # fmt: skip
    yield cmd(
        "Transcripts", "Browse, reopen or delete saved conversations", "transcripts",
        app.action_transcripts,
    )  # fmt: skip
    yield cmd(
        "Toggle sampling panel", "Show or hide the sliders", "toggle_panel",
        app.action_toggle_panel,
    )  # fmt: skip
    yield SystemCommand(
        "Reset sampling", "Put the sliders back to the model's defaults", app.reset_sampling
    )
    yield cmd("Help", "Keys and slash commands", "help", app.action_help)
