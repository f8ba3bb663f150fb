"""The headless modes in this process (the fast tier's view of them; tests/cli/test_cli.py runs
the real console script in a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui_gen.cli import main


def test_one_prompt_as_json_is_the_engines_greedy_reply(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui_gen.engine.chat import ChatSession
    from tui_gen.engine.generator import Generator

    flags = ["--greedy", "--max-new-tokens", "8", "--json"]
    assert main([str(tiny_llama), "--prompt", "The quick brown", *flags]) == 0
    [rec] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rec["prompt"] == "The quick brown" and rec["chat"] is True
    assert rec["generated_tokens"] == 8 and rec["finish_reason"] == "length"
    gen = Generator.load(tiny_llama, device="cpu")
    session = ChatSession(gen)
    session.messages.append({"role": "user", "content": "The quick brown"})
    ids, _ = session.prompt_ids(8)
    assert rec["reply"] == gen.generate(ids, do_sample=False, max_new_tokens=8)


def test_a_prompts_file_writes_one_record_per_prompt(tiny_gpt2: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first prompt\nsecond prompt\n")
    out = tmp_path / "out.jsonl"
    argv = [str(tiny_gpt2), "--prompts", str(prompts), "--output", str(out), "--json"]
    assert main([*argv, "--greedy", "--max-new-tokens", "3"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in recs] == ["first prompt", "second prompt"]
    assert all(r["generated_tokens"] <= 3 for r in recs)


def test_activations_flag_reaches_the_engine(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--activations precise is handed to Generator.load; a value outside the choices is one
    usage line and exit 2."""
    from tui_gen.engine.generator import Generator

    seen: list[str] = []
    real = Generator.load.__func__  # type: ignore[attr-defined]

    def spy(cls, *a, **kw):
        seen.append(kw.get("activations", "fast"))
        return real(cls, *a, **kw)

    monkeypatch.setattr(Generator, "load", classmethod(spy))
    argv = [str(tiny_llama), "--prompt", "Hi", "--greedy", "--max-new-tokens", "2"]
    assert main([*argv, "--quantize", "int4", "--activations", "precise"]) == 0
    assert seen == ["precise"]
    capsys.readouterr()
    assert main([*argv, "--activations", "exact"]) == 2
    assert "--activations" in capsys.readouterr().err
