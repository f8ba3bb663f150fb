"""Colour themes: TOML files of textual.theme.Theme fields, loaded at start-up.

Where themes come from, later folders overriding earlier ones by name:

1. the shipped themes: the top-level ``themes/`` folder of a source checkout or editable install
   (found next to the package, recognised by its ``pyproject.toml``); from a wheel, which
   installs them as data files (pyproject.toml, [tool.setuptools.data-files]), in
   ``<sys.prefix>/share/tui-gen/themes`` (or the user base's, after ``pip install --user``);
   ``tui_gen/app/themes/`` is also looked at, for packagers who prefer package data;
2. the user's own: ``<config dir>/themes/*.toml`` (see settings.config_dir).

The repository keeps one copy of each file, in ``themes/``; nothing is copied or symlinked.

A theme file::

    name = "saffron"            # what --theme and the palette use
    dark = true
    primary = "#E8A33D"          # required; any colour Textual can parse
    secondary = "#C2571A"        # optional: accent, foreground, background, surface, panel,
                                 #   boost, warning, error, success
    [variables]                  # optional Textual design variables
    "footer-key-foreground" = "#E8A33D"

A broken file is skipped with a one-line problem report; it never stops the app.
"""

from __future__ import annotations

import site
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from tui_gen.app.settings import config_dir

DEFAULT_THEME = "tui-gen"
_COLOR_FIELDS = (
    "primary", "secondary", "warning", "error", "success", "accent",
    "foreground", "background", "surface", "panel", "boost",
)  # fmt: skip
_ALLOWED = {f.name for f in fields(Theme)}


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file and the problem."""


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the tomli backport (a dependency there)
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    return tomllib.loads(text)


def shipped_theme_dirs() -> list[Path]:
    """Folders that may hold the themes shipped with tui-gen (only existing ones)."""
    here = Path(__file__).resolve().parent
    candidates = []
    checkout = here.parents[1]
    if (checkout / "pyproject.toml").is_file():
        candidates.append(checkout / "themes")
    candidates.append(here / "themes")
    for base in (sys.prefix, site.getuserbase()):  # pip install, pip install --user
        candidates.append(Path(base) / "share" / "tui-gen" / "themes")
    return [d for d in candidates if d.is_dir()][:1]


def user_theme_dir() -> Path:
    return config_dir() / "themes"


def parse_theme(text: str, source: str = "<theme>") -> Theme:
    """Build a Theme from TOML text; raise ThemeFileError naming the problem."""
    try:
        data = _toml_loads(text)
    except Exception as e:  # tomllib.TOMLDecodeError, or tomli missing
        raise ThemeFileError(f"{source}: not valid TOML ({e})") from None
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise ThemeFileError(f"{source}: unknown field(s) {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ThemeFileError(f"{source}: 'name' (a string) is required")
    if "primary" not in data:
        raise ThemeFileError(f"{source}: 'primary' (a colour) is required")
    for key in _COLOR_FIELDS:
        if key in data:
            try:
                Color.parse(data[key])
            except (ColorParseError, TypeError, ValueError):
                raise ThemeFileError(f"{source}: {key}={data[key]!r} is not a colour") from None
    if "dark" in data and not isinstance(data["dark"], bool):
        raise ThemeFileError(f"{source}: 'dark' must be true or false")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeFileError(f"{source}: [variables] must map names to strings")
    try:
        return Theme(**data)
    except (TypeError, ValueError) as e:
        raise ThemeFileError(f"{source}: {e}") from None


def load_themes(folders: list[Path] | None = None) -> tuple[dict[str, Theme], list[str]]:
    """Every theme in `folders` (default: shipped, then the user's), and the problems found."""
    if folders is None:
        folders = [*shipped_theme_dirs(), user_theme_dir()]
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = parse_theme(path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError) as e:
                problems.append(f"{path}: cannot read ({e})")
                continue
            except ThemeFileError as e:
                problems.append(str(e))
                continue
            themes[theme.name] = theme
    return themes, problems
