"""Saved conversations: one JSON file per conversation, written atomically, and Markdown export.

Files live in ``<data dir>/transcripts`` (``--transcripts DIR`` overrides it), named
``<id>.json`` where the id starts with the creation time, so ``ls`` sorts them by date. Every
write goes through atomic_write_text: a crash or a kill leaves the previous version, never half
a file. Reading is defensive: a file that does not parse or does not look like a transcript is
reported and skipped, never deleted, and never stops the listing. "Deleting" from the browser
moves the file to ``.trash/`` inside the folder, so a slip of the finger can be undone by hand.

The JSON holds the text exactly as the engine produced it; everything that puts it on a screen
or in a Markdown file sanitizes it first.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tui_gen.app import tokens as token_data
from tui_gen.app.atomic import atomic_write_text, why
from tui_gen.app.params import BY_NAME
from tui_gen.app.tokens import ReplyToken
from tui_gen.app.transcripts.token_table import token_table
from tui_gen.sanitize import sanitize

#: 1: the first format. Later fields (a reply's "tokens" and "branch") are optional, so a
#: file of either kind loads in both directions; the number is kept.
SCHEMA_VERSION = 1
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TRASH = ".trash"


class TranscriptError(ValueError):
    """A transcript that cannot be read or written; the message names the file."""


def now_iso() -> str:
    """Local time with its UTC offset, to the second (what transcripts record)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def new_id(created: str) -> str:
    """A file-name-safe id that sorts by creation time: 2025-01-31T18-04-05-3fa9c1."""
    stamp = created[:19].replace(":", "-")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass
class Branch:
    """Where a reply was branched: at token `index`, `chosen` (id, text) replaced `replaced`,
    and `original` is the reply as it was (itself perhaps a branch: one level per branch)."""

    index: int
    chosen: tuple[int, str]
    replaced: tuple[int, str]
    original: Turn

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "chosen": {"id": self.chosen[0], "text": self.chosen[1]},
            "replaced": {"id": self.replaced[0], "text": self.replaced[1]},
            "original": self.original.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Branch:
        if not isinstance(d, dict) or isinstance(d.get("index"), bool):
            raise TypeError("'branch' is not an object")
        index = d.get("index")
        if not isinstance(index, int) or index < 0:
            raise TypeError("'branch' has no token index")
        pairs = []
        for key in ("chosen", "replaced"):
            v = d.get(key)
            if not (isinstance(v, dict) and isinstance(v.get("id"), int)
                    and isinstance(v.get("text"), str)):  # fmt: skip
                raise TypeError(f"'branch' has no {key!r} token")
            pairs.append((int(v["id"]), str(v["text"])))
        return cls(index, pairs[0], pairs[1], Turn.from_dict(d.get("original"), "original"))


@dataclass
class Turn:
    """One message. Replies also record how they were made (sampling values, stats, reason),
    and, when the engine sent them, their tokens with what the model weighed (tokens.py);
    a reply regenerated from one of its tokens records the branch point and the original."""

    role: str  # "user" | "assistant"
    content: str
    created: str = ""
    finish_reason: str | None = None  # eos | stop | length | cancelled | error
    params: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    model: str | None = None
    tokens: tuple[ReplyToken, ...] | None = None
    branch: Branch | None = None

    @property
    def stopped(self) -> bool:
        return self.finish_reason == "cancelled"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content, "created": self.created}
        for key in ("finish_reason", "params", "stats", "model"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.tokens is not None:
            d["tokens"] = token_data.to_json(self.tokens)
        if self.branch is not None:
            d["branch"] = self.branch.to_dict()
        return d

    @classmethod
    def from_dict(cls, t: Any, where: str) -> Turn:
        """Validate and build; raise TypeError naming the turn and what is wrong."""
        if not isinstance(t, dict) or t.get("role") not in ("user", "assistant"):
            raise TypeError(f"{where} has no valid role")
        if not isinstance(t.get("content"), str):
            raise TypeError(f"{where} has no text")
        known = {k: t[k] for k in _TURN_TYPES if k in t}
        for key, kinds in _TURN_TYPES.items():
            if key in known and not isinstance(known[key], kinds):
                raise TypeError(f"{where}: {key!r} is a {type(known[key]).__name__}")
        turn = cls(t["role"], t["content"], **known)
        if t.get("tokens") is not None:
            try:
                turn.tokens = token_data.from_json(t["tokens"])
            except (TypeError, ValueError, KeyError) as e:
                raise TypeError(f"{where}: its token data is broken ({e})") from None
        if t.get("branch") is not None:
            turn.branch = Branch.from_dict(t["branch"])
        return turn


@dataclass
class Conversation:
    """A conversation as saved: the full history, even turns the model's context had to drop."""

    id: str
    model: str
    created: str
    updated: str
    system: str | None = None
    turns: list[Turn] = field(default_factory=list)
    title: str = ""

    @classmethod
    def new(cls, model: str, system: str | None = None, created: str | None = None) -> Conversation:
        """An empty conversation with a fresh, time-sortable id."""
        created = created or now_iso()
        return cls(new_id(created), model, created, created, system)

    def display_title(self) -> str:
        """The stored title, else the first line of the first prompt (short, one line, safe)."""
        if self.title:
            return _one_line(self.title)
        for t in self.turns:
            if t.role == "user" and t.content.strip():
                return _one_line(t.content)
        return "New conversation"

    def messages(self) -> list[dict[str, str]]:
        """The turns as ChatSession messages."""
        return [{"role": t.role, "content": t.content} for t in self.turns]

    def last(self, role: str) -> Turn | None:
        for t in reversed(self.turns):
            if t.role == role:
                return t
        return None

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in ("id", "model", "created", "updated", "system")}
        d["turns"] = [t.to_dict() for t in self.turns]
        d["title"] = self.title
        d["schema"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "<transcript>") -> Conversation:
        """Validate and build; raise TranscriptError naming what is wrong."""
        if not isinstance(data, dict):
            raise TranscriptError(f"{source}: not a JSON object")
        try:
            turns_raw = data.get("turns", [])
            if not isinstance(turns_raw, list):
                raise TypeError("'turns' is not a list")
            turns = [Turn.from_dict(t, f"turn {i}") for i, t in enumerate(turns_raw)]
            for key in ("id", "model", "created", "updated", "title", "system"):
                value = data.get(key)
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{key!r} is a {type(value).__name__}, not text")
            conv = cls(
                id=str(data["id"]),
                model=str(data.get("model", "")),
                created=str(data.get("created", "")),
                updated=str(data.get("updated", data.get("created", ""))),
                system=data.get("system") if isinstance(data.get("system"), str) else None,
                turns=turns,
                title=str(data.get("title") or ""),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise TranscriptError(f"{source}: not a tui-gen transcript ({e})") from None
        if not _ID.match(conv.id):
            raise TranscriptError(f"{source}: invalid id {conv.id!r}")
        return conv


#: what each optional field of a saved turn must be (a hand-edited file may say "stats": 5)
_TURN_TYPES: dict[str, type | tuple[type, ...]] = {
    "created": str,
    "finish_reason": (str, type(None)),
    "params": (dict, type(None)),
    "stats": (dict, type(None)),
    "model": (str, type(None)),
}


@dataclass(frozen=True)
class Summary:
    """What the browser lists for a transcript, without keeping every turn in memory."""

    id: str
    title: str
    model: str
    created: str
    updated: str
    turns: int
    path: Path


class TranscriptStore:
    """The transcripts folder: save, list, load, export and (recoverably) delete."""

    def __init__(self, folder: str | os.PathLike[str], *, save_tokens: bool = True) -> None:
        self.folder = Path(folder).expanduser()
        #: write each reply's token data (the inspector's) too; off, transcripts hold text only
        self.save_tokens = save_tokens

    def path_for(self, conv_id: str) -> Path:
        if not _ID.match(conv_id):
            raise TranscriptError(f"invalid transcript id {conv_id!r}")
        return self.folder / f"{conv_id}.json"

    def dumps(self, conv: Conversation) -> str:
        """The transcript's JSON, indented for people, except each reply's token data, which is
        written compact (one line per reply): indenting thousands of small lists would make
        autosave, which runs this on the UI thread, a visible stall."""
        d = conv.to_dict()
        compact: dict[str, str] = {}
        nonce = secrets.token_hex(8)
        for i, (turn, node) in enumerate(zip(conv.turns, d["turns"])):
            depth = 0
            current: Turn | None = turn
            while current is not None:  # the reply, then the originals it branched from
                if not self.save_tokens:
                    node.pop("tokens", None)
                elif current.tokens is not None:
                    key = f"@tokens-{nonce}-{i}-{depth}@"
                    compact[json.dumps(key)] = token_data.to_json_text(current.tokens)
                    node["tokens"] = key
                if current.branch is None:
                    break
                current, node = current.branch.original, node["branch"]["original"]
                depth += 1
        text = json.dumps(d, ensure_ascii=False, indent=2)
        for key, value in compact.items():
            text = text.replace(key, value, 1)
        return text + "\n"

    def save(self, conv: Conversation) -> Path:
        """Write the conversation atomically."""
        return self.save_text(conv.id, self.dumps(conv))

    def save_text(self, conv_id: str, text: str) -> Path:
        """Write a dumps() made earlier (e.g. on the UI thread, while this runs on another)."""
        path = self.path_for(conv_id)
        try:
            return atomic_write_text(path, text)
        except OSError as e:
            raise TranscriptError(f"cannot save {path}: {why(e)}") from None

    def load(self, conv_id: str) -> Conversation:
        return self.load_path(self.path_for(conv_id))

    @staticmethod
    def load_path(path: Path) -> Conversation:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TranscriptError(f"{path}: no such transcript") from None
        except OSError as e:
            raise TranscriptError(f"{path}: unreadable ({why(e)})") from None
        except (UnicodeDecodeError, ValueError) as e:
            raise TranscriptError(f"{path}: unreadable ({e})") from None
        conv = Conversation.from_dict(data, str(path))
        if conv.id != path.stem:
            raise TranscriptError(f"{path}: its id {conv.id!r} does not match the file name")
        return conv

    def scan(self) -> tuple[list[Summary], list[str]]:
        """Every readable transcript, newest first, and one line per file that was skipped."""
        summaries: list[Summary] = []
        problems: list[str] = []
        if not self.folder.is_dir():
            return summaries, problems
        for path in self.folder.glob("*.json"):
            try:
                conv = self.load_path(path)
            except TranscriptError as e:
                problems.append(str(e))
                continue
            summaries.append(
                Summary(
                    conv.id,
                    conv.display_title(),
                    _one_line(conv.model),
                    conv.created,
                    conv.updated,
                    len(conv.turns),
                    path,
                )
            )
        summaries.sort(key=lambda s: (s.updated, s.id), reverse=True)
        return summaries, problems

    def delete(self, conv_id: str) -> Path:
        """Move the transcript to .trash/ (recoverable); return where it went."""
        src = self.path_for(conv_id)
        trash = self.folder / TRASH
        try:
            trash.mkdir(parents=True, exist_ok=True)
            dst = trash / src.name
            if dst.exists():
                dst = trash / f"{src.stem}-{secrets.token_hex(2)}.json"
            os.replace(src, dst)
        except OSError as e:
            raise TranscriptError(f"cannot delete {src}: {why(e)}") from None
        return dst

    def export_path(self, conv: Conversation) -> Path:
        return self.folder / "exports" / f"{conv.id}.md"


# --- Markdown export ---------------------------------------------------------------------------


def _one_line(text: str, width: int = 60) -> str:
    line = " ".join(sanitize(text).split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def _date(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def params_line(params: dict[str, Any] | None) -> str:
    """Sampling values as one readable line, e.g. 'temperature 0.80 · top-k 40 · ...'."""
    if not params:
        return ""
    parts = []
    for name, spec in BY_NAME.items():
        if name in params and isinstance(params[name], (int, float)):
            parts.append(f"{spec.label.lower()} {spec.format(params[name])}")
    if params.get("seed") is not None:
        parts.append(f"seed {params['seed']}")
    if params.get("do_sample") is False:
        parts.append("greedy")
    return " · ".join(parts)


_REASONS = {
    "eos": "finished",
    "stop": "stop string",
    "length": "hit the token limit",
    "cancelled": "stopped by the user",
    "error": "cut off by an error",
}


def stats_line(turn: Turn) -> str:
    """Reply statistics as one readable line, e.g. '87 tokens · 41.2 tok/s · first token ...'."""
    parts = []
    s = turn.stats or {}
    if "generated_tokens" in s:
        parts.append(f"{s['generated_tokens']} tokens")
    if s.get("decode_tokens_per_second"):
        parts.append(f"{float(s['decode_tokens_per_second']):.1f} tok/s")
    if s.get("time_to_first_token"):
        parts.append(f"first token {float(s['time_to_first_token']):.2f} s")
    if turn.finish_reason:
        parts.append(_REASONS.get(turn.finish_reason, turn.finish_reason))
    return " · ".join(parts)


#: the info string of a fenced turn says whose it is: a prompt is text, a reply is Markdown
_FENCE_ROLES = {"text": "user", "markdown": "assistant"}
_FENCE = re.compile(r"^(`{4,})(text|markdown)$")


def _fenced(content: str, info: str, fence: bool = True) -> list[str]:
    """A turn's text in a fence longer than any backtick run in it: its headings cannot be
    taken for turn headings, its line breaks survive, and it reads back exactly."""
    text = sanitize(content).rstrip("\n")
    if not fence:
        return [text.rstrip() or "*(no text)*"]
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(4, longest + 1)
    return [f"{ticks}{info}", *text.split("\n"), ticks]


def turns_from_markdown(markdown: str) -> list[tuple[str, str]]:
    """The (role, text) of every turn of a to_markdown() document (the inverse of the export)."""
    turns: list[tuple[str, str]] = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        end = lines.index(m.group(1), i + 1)
        turns.append((_FENCE_ROLES[m.group(2)], "\n".join(lines[i + 1 : end])))
        i = end + 1
    return turns


def to_markdown(conv: Conversation, *, fence: bool = True, tokens: bool = False) -> str:
    """The conversation as a Markdown document: title, model, date, then every turn (fenced:
    a reply's own headings stay inside it), each reply followed by the sampling values and
    statistics it was made with. `fence=False` (the browser's preview, read on screen and
    never parsed) shows the turns' Markdown rendered instead. `tokens` adds each reply's
    per-token probability table (token_table.py) after it."""
    lines = [f"# {conv.display_title()}", ""]
    lines.append(f"- **Model:** {_one_line(conv.model, 200)}")
    lines.append(f"- **Date:** {_date(conv.created)}")
    if conv.updated and conv.updated != conv.created:
        lines.append(f"- **Last reply:** {_date(conv.updated)}")
    if conv.system:
        lines.append(f"- **System prompt:** {_one_line(conv.system, 500)}")
    lines.append(f"- **Turns:** {len(conv.turns)}")
    lines += ["", "---", ""]
    for turn in conv.turns:
        if turn.role == "user":
            lines += ["## You", "", *_fenced(turn.content, "text", fence), ""]
            continue
        who = _one_line(turn.model or conv.model or "Assistant", 80)
        lines += [f"## {who}", "", *_fenced(turn.content, "markdown", fence), ""]
        meta = [x for x in (params_line(turn.params), stats_line(turn)) if x]
        if meta:
            lines += [f"> {' — '.join(meta)}", ""]
        if turn.branch is not None:
            b = turn.branch
            lines += [
                f"> branched at token {b.index + 1}: {_one_line(repr(b.chosen[1]), 40)} "
                f"instead of {_one_line(repr(b.replaced[1]), 40)}",
                "",
            ]
        table = (
            token_table(turn.tokens, turn.branch.index if turn.branch else None)
            if (tokens and turn.tokens)
            else []
        )
        if table:
            lines += ["<details><summary>Token probabilities</summary>", "", *table, "",
                      "</details>", ""]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def export_markdown(
    conv: Conversation, path: str | os.PathLike[str], *, tokens: bool = False
) -> Path:
    """Write to_markdown(conv, tokens=tokens) to `path` atomically."""
    try:
        return atomic_write_text(Path(path).expanduser(), to_markdown(conv, tokens=tokens))
    except OSError as e:
        raise TranscriptError(f"cannot write {path}: {why(e)}") from None
