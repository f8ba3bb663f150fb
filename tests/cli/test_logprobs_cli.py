"""`--logprobs N` in the JSON records, `--score FILE`, and their one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tui_gen.cli import main
from tui_gen.cli.bench import main as bench_main


def _records(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


def test_json_records_carry_raw_and_sampled_logprobs(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui_gen.engine.events import TokenEvent
    from tui_gen.engine.generator import Generator

    argv = [str(tiny_llama), "--prompt", "Hello", "--raw", "--max-new-tokens", "6", "--json"]
    assert main([*argv, "--greedy", "--logprobs", "3"]) == 0
    [rec] = _records(capsys)
    raw, sampled = rec["logprobs"], rec["sampled_logprobs"]
    assert len(raw) == len(sampled) == rec["generated_tokens"] == 6
    gen = Generator.load(tiny_llama, device="cpu")
    evs = [
        e
        for e in gen.stream_events("Hello", do_sample=False, max_new_tokens=6, logprobs=3)
        if isinstance(e, TokenEvent) and e.logprobs is not None
    ]
    for entry, s_entry, ev in zip(raw, sampled, evs):
        lp = ev.logprobs
        assert lp is not None
        assert entry["id"] == ev.token_id and entry["token"] == lp.text
        assert abs(entry["logprob"] - lp.logprob) <= 1e-5
        assert [a["id"] for a in entry["top_logprobs"]] == [a.token_id for a in lp.top]
        assert len(entry["top_logprobs"]) == 3
        assert set(entry["top_logprobs"][0]) == {"token", "id", "logprob"}
        # greedy: the sampled distribution is all on the chosen token
        assert s_entry["logprob"] == 0.0 and s_entry["top_logprobs"] == [
            {"token": lp.text, "id": ev.token_id, "logprob": 0.0}
        ]


def test_sampled_records_keep_only_what_the_samplers_kept(
    tiny_gpt2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tiny_gpt2), "--prompt", "Hello", "--raw", "--max-new-tokens", "5", "--json"]
    assert main([*argv, "--seed", "7", "--top-k", "2", "--logprobs", "4"]) == 0
    [rec] = _records(capsys)
    for raw, sampled in zip(rec["logprobs"], rec["sampled_logprobs"]):
        assert len(raw["top_logprobs"]) == 4
        assert 1 <= len(sampled["top_logprobs"]) <= 2  # top-k 2 removed the rest
        assert sampled["id"] == raw["id"]
        assert {a["id"] for a in sampled["top_logprobs"]} <= {a["id"] for a in raw["top_logprobs"]}
        total = sum(math.exp(a["logprob"]) for a in sampled["top_logprobs"])
        assert total <= 1 + 1e-5
        # the chosen token is among the kept ones, so it has a finite sampled logprob
        assert sampled["logprob"] is not None and sampled["logprob"] <= 0


def test_a_prompts_file_and_beams_with_logprobs(
    tiny_gpt2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "p.jsonl"
    lines = [
        {"prompt": "first", "logprobs": 2},
        {"prompt": "second"},
        {"prompt": "third", "logprobs": 1, "num_beams": 2},
    ]
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    argv = [str(tiny_gpt2), "--prompts", str(prompts), "--json", "--raw", "--greedy"]
    assert main([*argv, "--max-new-tokens", "3"]) == 0
    first, second, third = _records(capsys)
    assert len(first["logprobs"]) == first["generated_tokens"]
    assert all(len(e["top_logprobs"]) == 2 for e in first["logprobs"])
    assert "logprobs" not in second and "sampled_logprobs" not in second
    assert len(third["logprobs"]) == third["generated_tokens"] > 0
    assert all(len(e["top_logprobs"]) == 1 for e in third["logprobs"])


def test_bad_logprobs_are_one_line_and_exit_2(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [str(tiny_llama), "--prompt", "Hi"]
    assert main([*base, "--json", "--logprobs", "21"]) == 2
    _one_line_error(capsys, "--logprobs", "0 to 20")
    assert main([*base, "--json", "--logprobs", "x"]) == 2
    _one_line_error(capsys, "--logprobs")
    assert main([*base, "--logprobs", "3"]) == 2
    _one_line_error(capsys, "--logprobs", "--json")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a", "logprobs": 3}\n')
    assert main([str(tiny_llama), "--prompts", str(prompts)]) == 2
    _one_line_error(capsys, "p.jsonl:1", "logprobs", "--json")
    prompts.write_text('{"prompt": "a", "logprobs": 99}\n')
    assert main([str(tiny_llama), "--prompts", str(prompts), "--json"]) == 2
    _one_line_error(capsys, "p.jsonl:1", "logprobs")


def test_score_prints_surprisal_and_perplexity(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui_gen.engine.generator import Generator

    text = "The quick brown fox jumps over the lazy dog."
    f = tmp_path / "t.txt"
    f.write_text(text)
    res = Generator.load(tiny_llama, device="cpu").score(text)
    assert main([str(tiny_llama), "--score", str(f)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["surprisal", "token"]
    assert len(lines) == len(res.tokens) + 2
    assert lines[1].split()[0] == "-"  # the first token has no prediction
    for line, tok in zip(lines[2:], res.tokens[1:]):
        assert tok.surprisal is not None
        assert float(line.split()[0]) == pytest.approx(tok.surprisal, abs=0.006)
        assert line.lstrip().split("  ", 1)[1] == json.dumps(tok.text, ensure_ascii=False)
    assert res.perplexity is not None
    assert lines[-1].startswith(f"perplexity {res.perplexity:.3f} over {res.predicted}")

    assert main([str(tiny_llama), "--score", str(f), "--json", "--logprobs", "2"]) == 0
    [rec] = _records(capsys)
    assert rec["perplexity"] == pytest.approx(res.perplexity, rel=1e-5)
    assert [t["id"] for t in rec["tokens"]] == res.token_ids
    assert rec["tokens"][0]["logprob"] is None and rec["tokens"][0]["surprisal"] is None
    assert all(len(t["top_logprobs"]) == 2 for t in rec["tokens"][1:])
    assert rec["predicted_tokens"] == len(res.tokens) - 1


def test_score_errors_are_one_line(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tiny_llama), "--score", str(tmp_path / "missing.txt")]) == 2
    _one_line_error(capsys, "missing.txt", "no such file to score")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main([str(tiny_llama), "--score", str(empty)]) == 2
    _one_line_error(capsys, "nothing to score")
    assert main([str(tiny_llama), "--score", str(empty), "--prompt", "hi"]) == 2
    _one_line_error(capsys, "--score", "--prompt")
    assert main([str(tmp_path / "nomodel"), "--score", str(empty)]) == 2
    _one_line_error(capsys, "nomodel", "no such file or directory")
    long = tmp_path / "long.txt"
    long.write_text("word " * 200)
    assert main([str(tiny_llama), "--score", str(long), "--max-context", "32"]) == 2
    _one_line_error(capsys, "more than the context holds (32)", "--max-context")


def test_bench_times_decoding_with_and_without_logprobs(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--repeats", "1", "--max-new-tokens", "8", "--recompute", "--json"]
    assert bench_main([str(tiny_llama), *flags, "--logprobs", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    for mode in ("greedy", "sampled"):
        r = data[f"logprobs_{mode}"]
        assert r["off_tok_s"] > 0 and r["on_tok_s"] > 0 and r["overhead"] is not None
        assert len(r["runs_off"]) == len(r["runs_on"]) == 5  # alternating runs, at least 5
        best = max(r["runs_off"]) / max(r["runs_on"]) - 1
        assert r["best_overhead"] == pytest.approx(best)
        # the work timed alone, as a share of the fastest logprobs-off step
        assert r["read_seconds"] > 0
        assert r["read_share"] == pytest.approx(r["read_seconds"] * max(r["runs_off"]))
    assert bench_main([str(tiny_llama), *flags[:-1], "--logprobs", "3"]) == 0
    text = capsys.readouterr().out
    assert "decode tok/s greedy, logprobs 0 / 3" in text and "best runs" in text
    assert "reading them, timed alone (sampled)" in text and "of the fastest step" in text
    with pytest.raises(SystemExit) as e:
        bench_main([str(tiny_llama), "--logprobs", "0"])
    assert e.value.code == 2
    _one_line_error(capsys, "--logprobs", "1 to 20")
