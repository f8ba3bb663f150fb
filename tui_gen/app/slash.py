"""Slash commands typed in the prompt box: parsing only (pure), the app runs them.

    /temp 0.7   /top_k 40   /top_p 0.9   /min_p 0.05   /rep 1.1   /max_tokens 512
    /system TEXT   (/system alone shows it, /system - clears it)
    /reset   /save [FILE.md]   /theme NAME   /help

A message that really starts with "/" is typed with two: "//etc/hosts is ..." sends
"/etc/hosts is ...".
"""

from __future__ import annotations

from dataclasses import dataclass

from tui_gen.app.params import BY_SLASH, Number

#: command -> (argument synopsis, what it does); the help screen and /help list these
COMMANDS: dict[str, tuple[str, str]] = {
    **{
        spec.slash: (
            f"[{spec.format(spec.minimum)}-{spec.format(spec.maximum)}]",
            f"set {spec.label.lower()} for the next reply (no value: show it)",
        )
        for spec in BY_SLASH.values()
    },
    "system": ("[TEXT | -]", "set the system prompt (no text: show it; -: clear it)"),
    "reset": ("", "start a new conversation (clears the model's KV cache)"),
    "save": ("[FILE.md]", "export the conversation to Markdown"),
    "theme": ("[NAME]", "switch colour theme (no name: list them)"),
    "help": ("", "show keys and commands"),
}


class SlashError(ValueError):
    """A malformed command; the message is one line and says what would work."""


@dataclass(frozen=True)
class SlashCommand:
    """A parsed command. For the sampling commands `param` and `value` are set."""

    name: str
    arg: str = ""
    param: str | None = None
    value: Number | None = None


def is_command(text: str) -> bool:
    """True when the prompt is a command rather than a message."""
    stripped = text.lstrip()
    return stripped.startswith("/") and not stripped.startswith("//")


def message_text(text: str) -> str:
    """The message to send for a prompt that is not a command ("//x" sends "/x")."""
    stripped = text.lstrip()
    if stripped.startswith("//"):
        return stripped[1:]
    return text


def parse(text: str) -> SlashCommand:
    """Parse "/name arg..."; raise SlashError for an unknown command or a bad value."""
    stripped = text.strip()
    if not is_command(stripped):
        raise SlashError("not a command: commands start with /")
    head, _, arg = stripped[1:].partition(" ")
    name = head.strip().lower().replace("-", "_")
    arg = arg.strip()
    if name not in COMMANDS:
        raise SlashError(
            f"unknown command /{head}; /help lists the commands (start a message with // "
            "to send a literal /)"
        )
    spec = BY_SLASH.get(name)
    if spec is not None:
        if not arg:
            return SlashCommand(name, param=spec.name)
        try:
            value = spec.parse(arg)
        except ValueError as e:
            raise SlashError(str(e)) from None
        return SlashCommand(name, arg, param=spec.name, value=value)
    if name in ("reset", "help") and arg:
        raise SlashError(f"/{name} takes no argument")
    return SlashCommand(name, arg)
