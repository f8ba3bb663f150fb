"""Adversarial input for the command line (issue #19): what models and files can do to the
terminal, files the program writes, closed stdin, max_new_tokens 0, and the single-prompt path.

Every test here failed before the fix it covers.
"""

from __future__ import annotations

import errno
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tui_gen.cli import main
from tui_gen.engine.events import FinishEvent, GenerationStats, TokenEvent
from tui_gen.engine.generator import Generator
from tui_gen.sanitize import sanitize

#: a clipboard write (OSC 52), a window title (OSC 2), a C1 CSI and a bell, split over tokens
EVIL_PIECES = ["Hi ", "\x1b]52;c;cm0gLXJm", "IH4=\x07 the", "re\x1b]2;pwned\x1b", "\\ \x9b31m!\x07"]
EVIL = "".join(EVIL_PIECES)


def no_controls(text: str) -> bool:
    return not any(c in text for c in "\x1b\x07\x9b")


@pytest.fixture
def evil_model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Generator.stream_events replies with EVIL (in pieces); returns the calls' paths."""
    calls: list[str] = []

    def stream_events(self: Generator, prompt: Any, params: Any = None, **_: Any) -> Iterator[Any]:
        calls.append("stream_events")
        for i, piece in enumerate(EVIL_PIECES):
            yield TokenEvent(i, piece)
        stats = GenerationStats(prompt_tokens=3, generated_tokens=len(EVIL_PIECES))
        yield FinishEvent("length", EVIL, list(range(len(EVIL_PIECES))), stats)

    monkeypatch.setattr(Generator, "stream_events", stream_events)
    return calls


# --- model output -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["streamed", "no-stream"])
def test_a_reply_with_escape_sequences_reaches_stdout_harmless(
    tiny_llama: Path, evil_model: list[str], capsys: pytest.CaptureFixture[str], mode: list[str]
) -> None:
    assert main([str(tiny_llama), "--prompt", "hi", "--greedy", *mode]) == 0
    out = capsys.readouterr().out
    assert no_controls(out)
    assert out == "Hi  there \ufffd31m!␇\n"  # sequences removed, lone controls made visible


def test_json_keeps_the_exact_reply_with_every_control_escaped(
    tiny_llama: Path, evil_model: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tiny_llama), "--prompt", "hi", "--greedy", "--json"]) == 0
    out = capsys.readouterr().out
    assert no_controls(out) and "\\u009b" in out
    assert json.loads(out)["reply"] == EVIL  # data stays data


def test_a_prompts_file_reply_is_sanitized_too(
    tiny_llama: Path, evil_model: list[str], tmp_path: Path
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    out = tmp_path / "out.txt"
    assert main([str(tiny_llama), "--prompts", str(prompts), "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(no_controls(ln) for ln in lines)


def test_an_error_line_quoting_a_file_name_is_one_safe_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = str(tmp_path / "no\x1b]52;c;eA==\x07such\nfile.txt")
    assert main([str(tmp_path), "--prompts", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tui-gen: error: ") and err.count("\n") == 1 and no_controls(err)


def test_info_shows_strings_from_model_files_harmless(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_llama, model)
    gc_path = model / "generation_config.json"
    gc = json.loads(gc_path.read_text()) if gc_path.exists() else {}
    gc["note"] = "\x1b]2;pwned\x07\x9b2J"
    gc_path.write_text(json.dumps(gc))
    (model / "evil\x1b[31m.txt").write_text("x")
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "generation_config.json" in out and no_controls(out)
    assert main(["info", str(model), "--json"]) == 0
    out = capsys.readouterr().out
    assert no_controls(out)
    assert json.loads(out)["generation_config"]["note"] == gc["note"]


# --- files the program writes ---------------------------------------------------------------


class FullDisk(io.TextIOWrapper):
    """A real file that raises ENOSPC once `room` characters were written (a full disk)."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(open(path, "wb"), encoding="utf-8")  # noqa: SIM115
        self.room = room

    def write(self, s: str) -> int:
        self.room -= len(s)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(s)


def test_output_on_a_full_disk_is_one_line_and_leaves_no_file(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import tui_gen.cli.headless as headless

    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(headless, "_open_output", lambda args: FullDisk(out, 10))
    argv = [str(tiny_gpt2), "--prompt", "hi", "--greedy", "--max-new-tokens", "3", "--json"]
    assert main([*argv, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "--output" in err
    assert not out.exists()


def test_stdout_on_dev_full_is_one_line(
    tiny_gpt2: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    full = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115
    monkeypatch.setattr(sys, "stdout", full)
    try:
        code = main([str(tiny_gpt2), "--prompt", "hi", "--greedy", "--max-new-tokens", "3"])
    finally:
        monkeypatch.undo()
        full.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err


@pytest.mark.slow
def test_the_console_script_on_dev_full_prints_no_traceback(tiny_gpt2: Path) -> None:
    tui_gen = shutil.which("tui-gen") or pytest.skip("tui-gen is not installed")
    for argv in (
        [str(tiny_gpt2), "--prompt", "hi", "--max-new-tokens", "3"],
        ["info", str(tiny_gpt2)],
    ):
        with open("/dev/full", "w") as full:
            p = subprocess.run([tui_gen, *argv], stdout=full, stderr=subprocess.PIPE, text=True)
        assert p.returncode == 2 and "Traceback" not in p.stderr and "Exception" not in p.stderr
        assert p.stderr.count("\n") == 1 and "No space left" in p.stderr


class _Infos:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


class FakeCheckpoint:
    """What import_gguf reads from a GGUF file (the writing path is what is tested)."""

    def __init__(self) -> None:
        from tui_gen.models.llama_gguf import FORMAT

        self.format = FORMAT  # the family's GGUF rules (GPT-2's transposed Conv1D, ...)
        self.config = {"model_type": "llama"}
        self.generation_config: dict[str, Any] = {}
        self.tokenizer_config: dict[str, Any] = {}

    class tokenizer:
        @staticmethod
        def to_str(pretty: bool = False) -> str:
            return "{}"

        @staticmethod
        def save(path: str) -> None:
            Path(path).write_text("{}")

    def hf_tensor_infos(self) -> Iterator[tuple[str, _Infos]]:
        yield from (("a", _Infos((64, 64))), ("b", _Infos((64,))))

    def tensors(self, dtype: Any = None) -> Iterator[tuple[str, Any]]:
        import torch

        yield "a", torch.zeros(64, 64)
        yield "b", torch.zeros(64)


def test_import_onto_a_full_disk_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import tui_gen.engine.loading.gguf_reader as reader

    monkeypatch.setattr(reader, "open_gguf", lambda path: FakeCheckpoint())
    real_open = Path.open

    def open_(self: Path, mode: str = "r", *a: Any, **k: Any) -> Any:
        f = real_open(self, mode, *a, **k)
        if "w" in mode and "b" in mode:  # the tensors fill the disk
            f.write = lambda data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left"))
        return f

    monkeypatch.setattr(Path, "open", open_)
    out = tmp_path / "imported"
    assert main(["import", str(tmp_path / "x.gguf"), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left" in err
    assert not out.exists()  # no model.safetensors.tmp, no directory of half a model
    monkeypatch.setattr(Path, "open", real_open)
    assert main(["import", str(tmp_path / "x.gguf"), str(out)]) == 0  # the fake is importable
    assert (out / "model.safetensors").exists()


def test_import_into_a_place_that_cannot_be_written_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import tui_gen.engine.loading.gguf_reader as reader

    monkeypatch.setattr(reader, "open_gguf", lambda path: FakeCheckpoint())
    assert main(["import", str(tmp_path / "x.gguf"), "/proc/tui-gen-import-test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the imported model" in err


# --- closed stdin, max_new_tokens 0 ---------------------------------------------------------


@pytest.mark.parametrize("stdin", ["none", "closed"])
def test_prompt_dash_with_stdin_closed_is_one_line(
    tiny_gpt2: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, stdin: str
) -> None:
    f = io.StringIO("x")
    f.close()
    monkeypatch.setattr(sys, "stdin", None if stdin == "none" else f)
    assert main([str(tiny_gpt2), "--prompt", "-"]) == 2
    assert main([str(tiny_gpt2), "--prompts", "-"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("stdin is closed" in ln for ln in err)


def test_the_console_script_with_stdin_closed(tiny_gpt2: Path) -> None:
    tui_gen = shutil.which("tui-gen") or pytest.skip("tui-gen is not installed")
    p = subprocess.run(
        ["sh", "-c", f'"{tui_gen}" "{tiny_gpt2}" --prompt - <&-'], capture_output=True, text=True
    )
    assert p.returncode == 2 and "stdin is closed" in p.stderr and "Traceback" not in p.stderr


def test_max_new_tokens_zero_is_refused_everywhere(tmp_path: Path, capsys: Any) -> None:
    from tui_gen.app.params import BY_NAME
    from tui_gen.options import InvalidParameterError, SamplingParams

    assert main([str(tmp_path), "--prompt", "x", "--max-new-tokens", "0"]) == 2
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x", "max_new_tokens": 0}\n')
    assert main([str(tmp_path), "--prompts", str(prompts)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "max-new-tokens" in err[0] and "p.jsonl:1: max_new_tokens" in err[1]
    with pytest.raises(InvalidParameterError):
        SamplingParams(max_new_tokens=0)
    assert BY_NAME["max_new_tokens"].minimum == 1  # the app's slider: the same rule


# --- the fast path -------------------------------------------------------------------------


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which decode path each generation took (spies on Generator)."""
    seen: list[str] = []
    events, batch = Generator.stream_events, Generator.stream_batch

    def spy_events(self: Generator, *a: Any, **k: Any) -> Iterator[Any]:
        seen.append("single")
        return events(self, *a, **k)

    def spy_batch(self: Generator, *a: Any, **k: Any) -> Iterator[Any]:
        seen.append("batch")
        return batch(self, *a, **k)

    monkeypatch.setattr(Generator, "stream_events", spy_events)
    monkeypatch.setattr(Generator, "stream_batch", spy_batch)
    return seen


@pytest.mark.parametrize("mode", [["--no-stream"], ["--json"], ["--json", "--batch-size", "4"]])
def test_one_prompt_takes_the_single_sequence_path_whatever_the_output(
    tiny_llama: Path, paths: list[str], capsys: Any, mode: list[str]
) -> None:
    argv = [str(tiny_llama), "--prompt", "The quick", "--greedy", "--max-new-tokens", "6"]
    assert main([*argv, *mode]) == 0
    assert paths == ["single"]
    out = capsys.readouterr().out
    assert main(argv) == 0  # streamed: the same reply
    streamed = capsys.readouterr().out
    reply = json.loads(out)["reply"] if "--json" in mode else out
    assert sanitize(reply).strip() == streamed.strip()


def test_a_prompts_file_batch_of_one_runs_prompt_by_prompt(
    tiny_llama: Path, paths: list[str], tmp_path: Path, capsys: Any
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("The quick\nOnce upon\n")
    argv = [str(tiny_llama), "--prompts", str(prompts), "--greedy", "--max-new-tokens", "5"]
    assert main([*argv, "--batch-size", "1"]) == 0
    assert paths == ["single", "single"]
    one_by_one = capsys.readouterr().out
    paths.clear()
    assert main([*argv, "--batch-size", "2"]) == 0
    assert paths == ["batch"]  # a real batch still batches, with the same replies
    assert capsys.readouterr().out == one_by_one
