"""Prompt files for `tui-gen MODEL --prompts FILE`: plain lines or JSONL objects.

    Plain:  one prompt per line; blank lines are skipped.
    JSONL:  one object per line (chosen when the first non-blank line starts with "{"):
            {"prompt": "...", "temperature": 0.2, "max_new_tokens": 50, "id": "q17"}

Per-prompt fields override the command-line values for that prompt only. Every line is checked
before the model loads (no torch here), so a typo on line 9,000 fails in milliseconds, not after
an hour of generation; the error names the file and line.
"""

from __future__ import annotations

import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_gen import options
from tui_gen.errors import TuiGenError

#: JSONL field -> SamplingParams name (a few accept a friendlier spelling too)
SAMPLING_FIELDS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "max_new_tokens": "max_new_tokens",
    "seed": "seed",
    "stop": "stop_strings",
    "stop_strings": "stop_strings",
    "do_sample": "do_sample",
    "logprobs": "logprobs",
}
OTHER_FIELDS = (
    "prompt",
    "id",
    "system",
    "greedy",
    "num_return_sequences",
    "num_beams",
    "length_penalty",
    "early_stopping",
)
KNOWN_FIELDS = (*OTHER_FIELDS, *SAMPLING_FIELDS)


@dataclass
class PromptSpec:
    """One prompt and what it overrides."""

    prompt: str
    line: int  # 1-based line in the file (0 for --prompt)
    id: Any = None
    system: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams names
    num_return_sequences: int | None = None
    num_beams: int | None = None
    length_penalty: float | None = None
    early_stopping: bool | str | None = None


def check_value(name: str, v: Any) -> Any:
    """`v` if it is allowed for the field `name` (tui_gen.options' rule), else ValueError."""
    if name in ("prompt", "system"):
        if not isinstance(v, str):
            raise ValueError(f"{name} must be a string, got {type(v).__name__}")
        return v
    return options.check_value(
        SAMPLING_FIELDS.get(name, "do_sample" if name == "greedy" else name), v
    )


def _spec_from_object(obj: Any, line: int) -> PromptSpec:
    if not isinstance(obj, dict):
        raise ValueError(f'expected a JSON object with a "prompt" field, got {type(obj).__name__}')
    unknown = [k for k in obj if k not in KNOWN_FIELDS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], KNOWN_FIELDS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(KNOWN_FIELDS)}"
        raise ValueError(f"unknown field {unknown[0]!r}; {hint}")
    if "prompt" not in obj:
        raise ValueError('missing the "prompt" field')
    values = {k: check_value(k, v) for k, v in obj.items()}
    spec = PromptSpec(prompt=values["prompt"], line=line, id=values.get("id"))
    spec.system = values.get("system")
    for key, name in SAMPLING_FIELDS.items():
        if key in values:
            spec.sampling[name] = values[key]
    if values.get("greedy"):
        spec.sampling["do_sample"] = False
    spec.num_return_sequences = values.get("num_return_sequences")
    spec.num_beams = values.get("num_beams")
    spec.length_penalty = values.get("length_penalty")
    spec.early_stopping = values.get("early_stopping")
    return spec


def parse_prompts(text: str, source: str) -> list[PromptSpec]:
    """Prompts of a file's text; raise TuiGenError naming `source:line` on the first bad line."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    specs: list[PromptSpec] = []
    if not first.lstrip().startswith("{"):
        for i, ln in enumerate(lines, 1):
            if ln.strip():
                specs.append(PromptSpec(prompt=ln, line=i))
    else:
        for i, ln in enumerate(lines, 1):
            if not ln.strip():
                continue
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError as e:
                raise TuiGenError(
                    f"{source}:{i}: not valid JSON ({e.msg}, column {e.colno})"
                ) from None
            try:
                specs.append(_spec_from_object(obj, i))
            except ValueError as e:
                raise TuiGenError(f"{source}:{i}: {e}") from None
    if not specs:
        raise TuiGenError(f"{source}: no prompts (the file is empty or only has blank lines)")
    return specs


def check_utf8(text: str, where: str) -> str:
    """Bytes that are not UTF-8 (stdin and argv keep them as lone surrogates) are a user error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TuiGenError(f"{where} is not UTF-8 text (bad byte at character {e.start})") from None
    return text


def read_stdin() -> str:
    """All of stdin as UTF-8 text."""
    closed = TuiGenError(
        "stdin is closed, so '-' has nothing to read; pipe the prompt in "
        "(echo TEXT | tui-gen MODEL --prompt -) or give it as --prompt TEXT"
    )
    if sys.stdin is None or sys.stdin.closed:  # started with stdin closed (`<&-`)
        raise closed
    try:
        return check_utf8(sys.stdin.read(), "stdin")
    except UnicodeDecodeError as e:
        raise TuiGenError(f"stdin is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError:  # "I/O operation on closed file"
        raise closed from None
    except OSError as e:  # a descriptor that cannot be read (EBADF, EIO, a directory)
        raise TuiGenError(
            f"stdin cannot be read ({e.strerror}); pipe the prompt in or give --prompt TEXT"
        ) from None


def read_prompts(path: str) -> list[PromptSpec]:
    """Read and check a prompt file ('-' = stdin)."""
    if path == "-":
        return parse_prompts(read_stdin(), "<stdin>")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TuiGenError(f"{path}: no such prompts file") from None
    except IsADirectoryError:
        raise TuiGenError(f"{path}: is a directory; --prompts needs a text or JSONL file") from None
    except UnicodeDecodeError:
        raise TuiGenError(f"{path}: not UTF-8 text; --prompts needs a text or JSONL file") from None
    except OSError as e:
        raise TuiGenError(f"{path}: cannot be read ({e.strerror})") from None
    return parse_prompts(text, path)
