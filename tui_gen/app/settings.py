"""What the app remembers between runs: theme, slider values, keymap, panel visibility.

Stored as JSON in ``platformdirs.user_config_dir("tui-gen")/settings.json`` (the
TUI_GEN_CONFIG_DIR environment variable overrides the folder, for tests and portable setups).
The file is meant to be hand-editable: unknown keys are kept, bad values are ignored one by one,
and a file that is not JSON at all is set aside (renamed ``settings.json.bad``) rather than
overwritten, so a typo never silently destroys a user's keymap.

Example::

    {
      "theme": "saffron",
      "sampling": {"temperature": 0.7, "top_k": 40},
      "keymap": {"stop": "escape,ctrl+c", "regenerate": "f5"},
      "side_panel": true,
      "logprobs": 10, "logprobs_always": true, "save_tokens": true, "export_tokens": false
    }

The last four are the token inspector's: how many alternatives per token to ask the engine for
(0: none, which turns the heat map and inspector off), whether to ask for every reply (true:
any reply can be inspected later; the engine measures the cost at under 5% of a step) or only
while the heat map or inspector is open, whether transcripts keep the token data, and whether
the Markdown export adds a per-token probability table.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_gen.app.atomic import atomic_write_text, why
from tui_gen.app.params import Number, clean_values
from tui_gen.options import MAX_LOGPROBS

APP_NAME = "tui-gen"
CONFIG_ENV = "TUI_GEN_CONFIG_DIR"
DATA_ENV = "TUI_GEN_DATA_DIR"


def config_dir() -> Path:
    """The settings folder: $TUI_GEN_CONFIG_DIR, else the platform's config folder."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """The data folder (transcripts live below it): $TUI_GEN_DATA_DIR, else the platform's."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


@dataclass
class Settings:
    """The remembered values; `problems` lists what was wrong with the file, for a notice."""

    path: Path
    theme: str | None = None
    sampling: dict[str, Number] = field(default_factory=dict)
    keymap: dict[str, str] = field(default_factory=dict)
    side_panel: bool = True
    logprobs: int = 10
    logprobs_always: bool = True
    save_tokens: bool = True
    export_tokens: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _set_aside: bool = False

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read the settings file; a missing file gives defaults, a broken one is reported."""
        path = path or config_dir() / "settings.json"
        s = cls(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return s
        except OSError as e:
            s.problems.append(f"cannot read {path}: {why(e)}; using defaults")
            return s
        try:
            data = json.loads(raw.decode("utf-8"))  # UnicodeDecodeError is a ValueError
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            s.problems.append(f"{path} is not valid JSON ({e}); using defaults")
            s._set_aside = True
            return s
        theme = data.pop("theme", None)
        if isinstance(theme, str) or theme is None:
            s.theme = theme
        else:
            s.problems.append("settings: 'theme' must be a string")
        sampling = data.pop("sampling", {})
        if isinstance(sampling, dict):
            s.sampling = clean_values(sampling)
        keymap = data.pop("keymap", {})
        if isinstance(keymap, dict):
            s.keymap = {str(k): v for k, v in keymap.items() if isinstance(v, str) and v.strip()}
            bad = sorted(set(keymap) - set(s.keymap))
            if bad:
                s.problems.append(f"settings: ignored keymap entries {', '.join(bad)}")
        else:
            s.problems.append("settings: 'keymap' must be an object of binding id -> keys")
        panel = data.pop("side_panel", True)
        s.side_panel = panel if isinstance(panel, bool) else True
        logprobs = data.pop("logprobs", s.logprobs)
        if isinstance(logprobs, int) and not isinstance(logprobs, bool):
            s.logprobs = max(0, min(MAX_LOGPROBS, logprobs))
        else:
            s.problems.append(f"settings: 'logprobs' must be an integer from 0 to {MAX_LOGPROBS}")
        for key in ("logprobs_always", "save_tokens", "export_tokens"):
            value = data.pop(key, getattr(s, key))
            if isinstance(value, bool):
                setattr(s, key, value)
            else:
                s.problems.append(f"settings: {key!r} must be true or false")
        s.extra = data
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "theme": self.theme,
            "sampling": dict(self.sampling),
            "keymap": dict(self.keymap),
            "side_panel": self.side_panel,
            "logprobs": self.logprobs,
            "logprobs_always": self.logprobs_always,
            "save_tokens": self.save_tokens,
            "export_tokens": self.export_tokens,
        }

    def save(self) -> None:
        """Write atomically; a file that could not be parsed is kept as settings.json.bad."""
        if self._set_aside and self.path.exists():
            os.replace(self.path, self.path.with_name(self.path.name + ".bad"))
            self._set_aside = False
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2) + "\n")
