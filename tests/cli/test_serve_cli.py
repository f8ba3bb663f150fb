"""`tui-gen serve` and `tui-gen bench-serve` on the command line: bad input is one line and
exit 2 before anything loads; the real command serves the cooking model in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tui_gen.cli import main
from tui_gen.cli.stream_clients import LevelResult, percentile

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_serve_without_the_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    assert main(["serve", str(tmp_path)]) == 2  # the missing extra is named first
    line = one_error_line(capsys)
    assert "uvicorn" in line and "pip install 'tui-gen[serve]'" in line


def test_serve_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "no such file" in one_error_line(capsys)
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch must be at least 1" in one_error_line(capsys)


def test_serve_on_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text("{}")  # never loaded: the bind fails first
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", str(tmp_path), "--port", str(port)]) == 2
    line = one_error_line(capsys)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_a_model_that_fails_to_load_stops_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text("{not json")
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "tui-gen: error:" in err.splitlines()[-1]


def test_bench_serve_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-serve", "http://127.0.0.1:9/v1", "--clients", "1,x"]) == 2
    assert "--clients must be integers" in one_error_line(capsys)
    assert main(["bench-serve", "ftp://127.0.0.1/v1", "--model", "m", "--clients", "1"]) == 2
    assert "needs an http(s) URL" in one_error_line(capsys)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["bench-serve", f"http://127.0.0.1:{port}/v1", "--clients", "1"]) == 2
    assert "cannot reach" in one_error_line(capsys)
    # with --model there is no GET /models first: the requests themselves find nobody there
    argv = ["bench-serve", f"http://127.0.0.1:{port}/v1", "--model", "m", "--clients", "2"]
    assert main(argv) == 2
    assert "every request to" in one_error_line(capsys)


def test_bench_serve_goes_on_when_only_some_requests_fail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A level with tokens and some errors is a result (exit 1, errors listed), not a stop."""
    from tui_gen.cli import bench_serve

    def some_failed(url: str, model: str, clients: int, *a: Any, **k: Any) -> LevelResult:
        return LevelResult(clients, requests=1, tokens=64, seconds=1.0, errors=["HTTP 400"])

    monkeypatch.setattr(bench_serve, "run_level", some_failed)
    argv = ["bench-serve", "http://127.0.0.1:9/v1", "--model", "m", "--clients", "1"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "64 tokens, 1 errors" in out and "error: HTTP 400" in err


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([5.0], 99) == 5.0


def test_bench_serve_against_our_server(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("uvicorn")
    from tui_gen.engine.generator import Generator
    from tui_gen.server.app import ServerState
    from tui_gen.server.run import Server

    state = ServerState("tiny")
    state.ready(Generator.load(tiny_llama, device="cpu"))
    server = Server(state).start()
    # the server logs a request just after its last byte reaches the client: capture until the
    # server has stopped (which waits for its request tasks), or the last lines can be missed
    with caplog.at_level(logging.INFO, logger="tui_gen.server"):
        try:
            args = ["bench-serve", server.url, "--clients", "1,3", "--requests", "2"]
            assert main([*args, "--max-tokens", "4", "--json"]) == 0
            chat = capsys.readouterr().out
            assert main([*args, "--max-tokens", "3", "--json", "--endpoint", "completions"]) == 0
            raw = capsys.readouterr().out
        finally:
            server.stop()
    lines = [r.getMessage() for r in caplog.records]
    for path in ("/v1/chat/completions", "/v1/completions"):
        posts = [m for m in lines if m.startswith(f"POST {path} ")]
        assert len(posts) == 8 and all(m.startswith(f"POST {path} 200 ") for m in posts), lines
    for out, n in ((chat, 4), (raw, 3)):
        rows = [json.loads(line) for line in out.splitlines()]
        assert [r["clients"] for r in rows] == [1, 3]
        # ignore_eos: every reply n tokens, 2 requests per client
        assert [r["completion_tokens"] for r in rows] == [2 * n, 6 * n]
        assert all(r["model"] == "tiny" and r["errors"] == 0 for r in rows)
        assert all(0 < r["ttft_p50"] <= r["ttft_p99"] for r in rows)


@pytest.mark.slow
def test_the_serve_command_end_to_end(cooking_dir: Path) -> None:
    """The console script: it says where it listens, /health turns 200, a chat completion
    works, and it stops on SIGINT."""
    httpx = pytest.importorskip("httpx")
    cmd = [sys.executable, "-m", "tui_gen", "serve", str(cooking_dir), "--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", first)
        assert m, first
        url = m.group(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if httpx.get(url.removesuffix("/v1") + "/health").status_code == 200:
                break
            time.sleep(0.2)
        r = httpx.post(
            f"{url}/chat/completions",
            json={
                "model": "cooking",
                "messages": [{"role": "user", "content": "Soup?"}],
                "max_tokens": 5,
            },
            timeout=60,
        )
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
        proc.send_signal(2)
        assert proc.wait(30) in (0, 130)
        log = proc.stderr.read()
        assert "POST /v1/chat/completions 200" in log
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_rounds_alternate_the_levels_and_report_each_over_all_its_rounds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui_gen.cli import bench_serve, main
    from tui_gen.cli.stream_clients import LevelResult

    calls: list[int] = []
    rates = iter([100.0, 400.0, 50.0, 300.0])  # round 1: levels 1, 8; round 2: levels 1, 8

    def fake_level(url: str, model: str, clients: int, *a: Any, **k: Any) -> Any:
        calls.append(clients)
        r = LevelResult(clients, requests=clients, tokens=100, ttft=[0.01])
        r.seconds = 100 / next(rates)
        return r

    monkeypatch.setattr(bench_serve, "run_level", fake_level)
    monkeypatch.setattr(bench_serve, "first_model", lambda client, url: "m")
    argv = ["bench-serve", "http://127.0.0.1:9/v1", "--clients", "1,8", "--rounds", "2"]
    assert main([*argv, "--json"]) == 0
    assert calls == [1, 8, 1, 8]
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    one, eight = rows
    assert one["rounds"] == 2 and one["completion_tokens"] == 200
    assert one["tokens_per_second"] == pytest.approx(200 / 3.0, abs=0.01)  # 1 s + 2 s
    assert (one["tokens_per_second_min"], one["tokens_per_second_max"]) == (50.0, 100.0)
    assert (eight["tokens_per_second_min"], eight["tokens_per_second_max"]) == (300.0, 400.0)
    calls.clear()
    rates = iter([100.0, 400.0, 100.0, 400.0])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(4.00x of the first level)" in out and "(rounds 400..400)" in out
