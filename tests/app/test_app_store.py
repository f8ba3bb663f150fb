"""Transcripts (atomic JSON, Markdown export, corrupt files), settings and theme files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tui_gen.app import atomic, themes
from tui_gen.app.settings import Settings
from tui_gen.app.transcripts.store import (
    Conversation,
    TranscriptError,
    TranscriptStore,
    Turn,
    export_markdown,
    to_markdown,
)

REPO = Path(__file__).resolve().parents[2]


def sample(created: str = "2025-03-01T18:04:05+01:00") -> Conversation:
    conv = Conversation.new("cooking", system="You are a chef.", created=created)
    conv.turns += [
        Turn("user", "How do I make \x1b[31mpancakes[/red]?", created),
        Turn(
            "assistant",
            "Mix:\n\n- flour\n- eggs\n\n```python\nprint('flip')\n```",
            created,
            finish_reason="eos",
            params={"temperature": 0.7, "top_k": 40, "top_p": 0.9, "min_p": 0.0,
                    "repetition_penalty": 1.1, "max_new_tokens": 256, "seed": 3},
            stats={"generated_tokens": 17, "decode_tokens_per_second": 42.5,
                   "time_to_first_token": 0.25},
            model="cooking",
        ),
        Turn("user", "And crêpes?", created),
        Turn("assistant", "Thinner batt", created, finish_reason="cancelled", model="cooking"),
    ]  # fmt: skip
    return conv


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path)
    conv = sample()
    path = store.save(conv)
    assert path == tmp_path / f"{conv.id}.json"
    assert store.load(conv.id) == conv
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left behind


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "t.json"
    atomic.atomic_write_text(target, "old")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["t.json"]


def test_scan_skips_corrupt_files_without_deleting_them(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path)
    good = sample()
    store.save(good)
    (tmp_path / "broken.json").write_text('{"id": "broken", "turns": [')
    (tmp_path / "alien.json").write_text('{"hello": "world"}')
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "wrongid.json").write_text(json.dumps({**good.to_dict(), "id": "other"}))
    summaries, problems = store.scan()
    assert [s.id for s in summaries] == [good.id]
    assert summaries[0].title == "How do I make pancakes[/red]?"
    assert summaries[0].turns == 4
    assert len(problems) == 4 and all(".json" in p for p in problems)
    assert {p.name for p in tmp_path.iterdir()} >= {"broken.json", "alien.json", "binary.json"}


def test_scan_sorts_newest_first(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path)
    old, new = sample("2024-01-01T10:00:00+00:00"), sample("2025-01-01T10:00:00+00:00")
    store.save(old)
    store.save(new)
    assert [s.id for s in store.scan()[0]] == [new.id, old.id]


def test_delete_moves_to_trash(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path)
    conv = sample()
    store.save(conv)
    moved = store.delete(conv.id)
    assert moved.parent.name == ".trash" and moved.exists()
    assert store.scan() == ([], [])


def test_ids_cannot_escape_the_folder(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError):
        TranscriptStore(tmp_path).load("../../etc/passwd")


def test_markdown_export_has_title_model_params_stats_and_turns(tmp_path: Path) -> None:
    conv = sample()
    out = export_markdown(conv, tmp_path / "chat.md")
    md = out.read_text()
    assert md.startswith("# How do I make pancakes[/red]?\n")
    assert "- **Model:** cooking" in md
    assert "- **Date:** 2025-03-01 18:04" in md
    assert "- **System prompt:** You are a chef." in md
    # escape removed, markup literal
    assert "## You\n\n````text\nHow do I make pancakes[/red]?" in md
    assert "```python\nprint('flip')\n```" in md
    assert (
        "> temperature 0.70 · top-k 40 · top-p 0.90 · min-p 0.00 · repetition penalty 1.10 · "
        "max new tokens 256 · seed 3 — 17 tokens · 42.5 tok/s · first token 0.25 s · finished"
    ) in md
    assert "Thinner batt\n````\n\n> stopped by the user" in md
    assert "\x1b" not in md
    assert md == to_markdown(conv)


def test_settings_round_trip_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    s = Settings.load(path)
    assert s.theme is None and s.problems == []
    s.theme, s.sampling, s.keymap = "basil", {"temperature": 0.3}, {"stop": "f9"}
    s.extra["future_key"] = 1
    s.save()
    again = Settings.load(path)
    assert (again.theme, again.sampling, again.keymap) == (
        "basil",
        {"temperature": 0.3},
        {"stop": "f9"},
    )
    assert again.extra == {"future_key": 1}  # unknown keys survive a save
    path.write_text(json.dumps({"sampling": {"top_k": 999, "temperature": "hot"}, "keymap": 3}))
    odd = Settings.load(path)
    assert odd.sampling == {"top_k": 200} and odd.keymap == {} and odd.problems


def test_corrupt_settings_are_set_aside_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{ my precious keymap")
    s = Settings.load(path)
    assert s.problems and "not valid JSON" in s.problems[0]
    s.save()
    assert (tmp_path / "settings.json.bad").read_text() == "{ my precious keymap"
    assert json.loads(path.read_text())["theme"] is None


def test_shipped_themes_load_and_include_light_and_dark() -> None:
    found, problems = themes.load_themes([REPO / "themes"])
    assert problems == []
    assert len(found) >= 3
    assert themes.DEFAULT_THEME in found
    assert {t.dark for t in found.values()} == {True, False}
    assert themes.shipped_theme_dirs()[0] == REPO / "themes"


def test_broken_theme_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "a"\nprimary = "not-a-colour"\n')
    (tmp_path / "b.toml").write_text('name = "b"\n')
    (tmp_path / "c.toml").write_text("this is = = not toml")
    (tmp_path / "d.toml").write_text('name = "d"\nprimary = "#123456"\nsparkle = true\n')
    (tmp_path / "ok.toml").write_text('name = "ok"\nprimary = "#123456"\ndark = false\n')
    found, problems = themes.load_themes([tmp_path])
    assert list(found) == ["ok"] and not found["ok"].dark
    assert len(problems) == 4
    assert any("not a colour" in p for p in problems)
    assert any("'primary'" in p for p in problems)
    assert any("sparkle" in p for p in problems)
