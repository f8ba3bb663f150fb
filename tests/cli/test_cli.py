"""The real `tui-gen` console script in a subprocess, on tiny models.

Each run that loads a model costs a torch import (~2 s), so cases share runs where they can;
the bad-input cases that fail before torch is imported cost ~0.1 s each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_gen.sanitize import sanitize

TUI_GEN = str(Path(sys.executable).parent / "tui-gen")
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
RECORD_FIELDS = {
    "index",
    "sequence",
    "prompt",
    "reply",
    "finish_reason",
    "prompt_tokens",
    "generated_tokens",
    "time_to_first_token",
    "tokens_per_second",
    "chat",
    "sampling",
}


def run(*args: str | Path, stdin: str | None = None, timeout: float = 120):
    return subprocess.run(
        [TUI_GEN, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def ok(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    r = run(*args, stdin=stdin)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def without_timing(recs: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in ("time_to_first_token", "tokens_per_second")}
        for r in recs
    ]


def chat_reply(gen, prompt: str, max_new_tokens: int) -> str:
    """The greedy reply of the in-process engine to `prompt` in the model's chat format."""
    from tui_gen.engine.chat import ChatSession

    session = ChatSession(gen)
    session.messages.append({"role": "user", "content": prompt})
    ids, _ = session.prompt_ids(max_new_tokens)
    return gen.generate(ids, do_sample=False, max_new_tokens=max_new_tokens)


@pytest.mark.slow
def test_one_prompt_streamed_no_stream_stdin_and_json(tiny_llama: Path) -> None:
    flags = ["--greedy", "--max-new-tokens", "24"]
    streamed = ok(tiny_llama, "--prompt", "The quick brown", *flags).stdout
    assert streamed.endswith("\n")
    [rec] = records(
        ok(tiny_llama, "--prompt", "-", "--json", *flags, stdin="The quick brown\n").stdout
    )
    assert set(rec) >= RECORD_FIELDS
    assert rec["prompt"] == "The quick brown"  # the newline `echo` adds is not part of it
    # streaming prints the reply in order, made terminal-safe (JSON keeps the exact text)
    assert sanitize(rec["reply"]) + "\n" == streamed
    assert rec["generated_tokens"] == 24 and rec["finish_reason"] == "length"
    assert rec["prompt_tokens"] > 3  # the chat template was applied (the model has one)
    assert rec["chat"] is True
    assert rec["sampling"]["greedy"] is True and rec["sampling"]["max_new_tokens"] == 24
    assert rec["time_to_first_token"] > 0 and rec["tokens_per_second"] > 0
    # the in-process engine with the same template gives the same tokens
    from tui_gen.engine.generator import Generator

    gen = Generator.load(tiny_llama, device="cpu")
    assert chat_reply(gen, "The quick brown", 24) == rec["reply"]


@pytest.mark.slow
def test_prompt_files_batches_seeds_and_return_sequences(tiny_gpt2: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "The quick brown fox", "id": "fox"},
        {"prompt": "Preheat", "max_new_tokens": 3, "temperature": 0.5},
        {"prompt": "Numbers: 0 1 2", "greedy": True, "num_return_sequences": 1},
        {"prompt": "def add", "num_beams": 3, "num_return_sequences": 2, "length_penalty": 0.5},
        {"prompt": "", "stop": ["e"], "seed": 99, "system": "Be brief."},
    ]
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    common = ["--json", "--seed", "7", "--max-new-tokens", "10", "--num-return-sequences", "2"]
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    r = ok(tiny_gpt2, "--prompts", jsonl, "--output", out1, *common)
    assert r.stdout == ""
    assert "replies" in r.stderr and "tok/s" in r.stderr  # the summary line
    ok(tiny_gpt2, "--prompts", jsonl, "--output", out2, "--batch-size", "1", *common)
    recs = records(out1.read_text())
    # seeded: the same replies, whether decoded 8 at a time or one by one
    assert without_timing(recs) == without_timing(records(out2.read_text()))
    assert [(r["index"], r["sequence"]) for r in recs] == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0), (3, 1), (4, 0), (4, 1),
    ]  # fmt: skip
    for rec in recs:
        assert set(rec) >= RECORD_FIELDS
        assert rec["line"] == rec["index"] + 1
    fox = [r for r in recs if r["index"] == 0]
    assert all(r["id"] == "fox" for r in fox)
    assert [r["sampling"]["seed"] for r in fox] == [7, 8]  # reply j reproduces with seed + j
    assert fox[0]["reply"] != fox[1]["reply"]
    assert all(r["generated_tokens"] <= 3 for r in recs if r["index"] == 1)
    assert all(r["sampling"]["temperature"] == 0.5 for r in recs if r["index"] == 1)
    assert recs[4]["sampling"]["greedy"] is True
    beams = [r for r in recs if r["index"] == 3]
    assert all(r["sampling"]["num_beams"] == 3 for r in beams)
    assert beams[0]["score"] >= beams[1]["score"]
    assert all("e" not in r["reply"] for r in recs if r["index"] == 4)
    assert [r["sampling"]["seed"] for r in recs if r["index"] == 4] == [99, 100]

    # plain format from stdin: one output line per reply, in order, newlines escaped
    plain = "The quick brown fox\n\nPreheat the oven\nNumbers: 0 1 2\n"
    out = ok(tiny_gpt2, "--prompts", "-", "--greedy", "--max-new-tokens", "6", stdin=plain).stdout
    replies = out.split("\n")[:-1]
    assert len(replies) == 3  # the blank line is skipped
    from tui_gen.engine.generator import Generator

    gen = Generator.load(tiny_gpt2, device="cpu")
    for prompt, reply in zip([p for p in plain.splitlines() if p], replies):
        text = chat_reply(gen, prompt, 6)
        assert reply == text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


@pytest.mark.slow
def test_return_sequences_text_and_raw(tiny_llama: Path) -> None:
    r = ok(tiny_llama, "--prompt", "Hi", "--raw", "--seed", "3", "--num-return-sequences", "2",
           "--max-new-tokens", "5", "--temperature", "1.5", "--top-k", "0")  # fmt: skip
    assert r.stdout.startswith("[1/2]\n") and "\n[2/2]\n" in r.stdout


@pytest.mark.slow
def test_ctrl_c_keeps_the_partial_reply(tiny_root: Path) -> None:
    from tiny_models import make_model  # (conftest puts tests/ on the path)

    long_model = make_model(tiny_root / "long-llama", "llama", max_position_embeddings=65536)
    # No eos anywhere, so the random model cannot finish on its own before the Ctrl+C.
    for name, key in (("config.json", "eos_token_id"), ("generation_config.json", "eos_token_id"),
                      ("tokenizer_config.json", "eos_token")):  # fmt: skip
        data = json.loads((long_model / name).read_text())
        data.pop(key, None)
        (long_model / name).write_text(json.dumps(data))
    p = subprocess.Popen(
        [TUI_GEN, str(long_model), "--prompt", "hi", "--max-new-tokens", "100000",
         "--max-context", "65536"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )  # fmt: skip
    try:
        first = os.read(p.stdout.fileno(), 1)  # the reply has started streaming
        assert first
        time.sleep(0.3)
        assert p.poll() is None  # still generating: output came out before the end
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=60)
    finally:
        p.kill()
    out = (first + rest).decode("utf-8", errors="replace")
    assert p.returncode == 130
    assert len(out) > 1 and out.endswith("\n")
    assert "Traceback" not in err.decode()
    assert "interrupted" in err.decode()


BAD_BEFORE_TORCH = [
    (["--bogus"], "unrecognized arguments"),
    (["--prompt", "x", "--temperature", "hot"], "--temperature"),
    (["--prompt", "x", "--top-p", "1.5"], "top-p"),
    (["--prompt", "x", "--temperature", "nan"], "temperature"),
    (["--prompt", "x", "--max-new-tokens", "-1"], "max-new-tokens"),
    (["--prompt", "x", "--batch-size", "0"], "batch-size"),
    (["--prompt", "x", "--seed", "1e3"], "seed"),
    (["--prompt", "x", "--early-stopping", "maybe"], "early-stopping"),
    (["--prompt", "x", "--chat", "--raw"], "not allowed with"),
    (["--prompt", "x", "--prompts", "f.txt"], "cannot be used together"),
    (["--prompts", "missing.txt"], "no such prompts file"),
    (["--prompts", "bad.jsonl"], "bad.jsonl:2: not valid JSON"),
    (["--prompts", "typo.jsonl"], "did you mean 'temperature'"),
    (["--prompts", "range.jsonl"], "range.jsonl:1: top_k must be"),
    (["--prompts", "noprompt.jsonl"], 'missing the "prompt" field'),
    (["--prompts", "empty.txt"], "no prompts"),
    (["--prompts", "f.txt", "--output", "f.txt"], "is the prompts file"),
    (["--prompts", "f.txt", "--output", "no/such/dir/out"], "cannot be written"),
    (["--prompt", "x", "--num-beams", "2", "--num-return-sequences", "3"], "more than"),
    (["--prompt", "x", "--num-beams", "2", "--top-k", "5"], "beam search"),
    (["--prompt", "x", "--greedy", "--num-return-sequences", "2"], "identical"),
    (["--prompt", "x", "--raw", "--system", "s"], "--system"),
    (["--prompt", "caf\udce9"], "not UTF-8"),  # the byte 0xe9 of Latin-1, as argv keeps it
]


def _assert_one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert needle in r.stderr, r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args,needle", BAD_BEFORE_TORCH, ids=[" ".join(a) for a, _ in BAD_BEFORE_TORCH]
)
def test_bad_input_fails_fast_with_one_line(
    tiny_llama: Path, tmp_path, monkeypatch, args, needle
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("f.txt").write_text("hello\n")
    Path("bad.jsonl").write_text('{"prompt": "a"}\n{"prompt": \n')
    Path("typo.jsonl").write_text('{"prompt": "a", "temprature": 1}\n')
    Path("range.jsonl").write_text('{"prompt": "a", "top_k": -3}\n')
    Path("noprompt.jsonl").write_text('{"id": "a"}\n')
    Path("empty.txt").write_text("\n  \n")
    r = run(tiny_llama, *args)
    _assert_one_line_error(r, needle)


def test_missing_model_fails_fast(tmp_path: Path) -> None:
    _assert_one_line_error(run(tmp_path / "nope", "--prompt", "x"), "no such file or directory")
    _assert_one_line_error(run("info", tmp_path / "nope"), "no such file or directory")


@pytest.mark.slow
def test_bad_input_found_after_loading(tiny_byte: Path) -> None:
    """An error only the loaded model can reveal: still one line and exit 2."""
    _assert_one_line_error(run(tiny_byte, "--prompt", "x", "--system", "s"), "chat template")
