"""`tui-gen http://HOST:PORT/v1 ...`: every headless mode against a fake OpenAI-compatible
server on 127.0.0.1, the key's sources, flags that make no sense remotely, and failures as one
line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, openai_server

from tui_gen.cli import main
from tui_gen.cli.dispatch import app_config
from tui_gen.cli.parser import build_main_parser
from tui_gen.remote import API_KEY_ENV

__all__ = ["openai_server"]
Server = Callable[..., FakeOpenAI]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)


def test_prompt_streams_the_reply(openai_server: Server, capsys: pytest.CaptureFixture) -> None:
    server = openai_server()
    assert main([server.url, "--prompt", "pancakes?", "--system", "Be brief."]) == 0
    out = capsys.readouterr()
    assert out.out == server.reply + "\n" and out.err == ""
    body = server.chat_requests[0]["body"]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1] == {"role": "user", "content": "pancakes?"}


def test_json_records_the_model_and_endpoint(
    openai_server: Server, capsys: pytest.CaptureFixture
) -> None:
    server = openai_server(models=("a", "b"))
    argv = [server.url, "--model", "b", "--prompt", "hi", "--json", "--greedy"]
    assert main([*argv, "--max-new-tokens", "3", "--seed", "5"]) == 0
    [rec] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rec["model"] == "b" and rec["endpoint"] == server.url
    assert rec["reply"] == "".join(server.pieces(3)) and rec["finish_reason"] == "length"
    assert rec["generated_tokens"] == 3 and rec["prompt_tokens"] == 11
    assert rec["sampling"]["greedy"] is True and rec["sampling"]["seed"] == 5
    body = server.chat_requests[0]["body"]
    assert body["model"] == "b" and body["temperature"] == 0.0 and body["max_tokens"] == 3


def test_a_prompts_file_writes_records_in_input_order(
    openai_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    server = openai_server()
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "one", "id": "q1", "max_new_tokens": 2},
        {"prompt": "two", "id": "q2", "temperature": 0.2, "system": "Short."},
        {"prompt": "three", "id": "q3", "num_return_sequences": 2, "seed": 10},
    ]
    prompts.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.jsonl"
    argv = [server.url, "--prompts", str(prompts), "--output", str(out), "--json"]
    assert main([*argv, "--batch-size", "2"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["sequence"]) for r in recs] == [("q1", 0), ("q2", 0), ("q3", 0), ("q3", 1)]
    assert recs[0]["generated_tokens"] == 2 and recs[1]["sampling"]["temperature"] == 0.2
    assert [r["sampling"]["seed"] for r in recs[2:]] == [10, 11]  # reply j: seed + j
    assert len(server.chat_requests) == 4
    assert "4 replies" in capsys.readouterr().err
    # plain-text output: one line per reply
    assert main([server.url, "--prompts", str(prompts), "--output", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "".join(server.pieces(2))


def test_the_key_comes_from_the_flag_or_our_variable_only(
    openai_server: Server, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = openai_server(api_key="sk-test-4242")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-4242")  # another tool's: never read
    assert main([server.url, "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tui-gen: error: ") and "401" in err and "TUI_GEN_API_KEY" in err
    assert err.count("\n") == 1 and "sk-test" not in err
    assert main([server.url, "--prompt", "hi", "--api-key", "sk-test-4242"]) == 0
    monkeypatch.setenv(API_KEY_ENV, "sk-test-4242")
    assert main([server.url, "--prompt", "hi", "--json"]) == 0
    out = capsys.readouterr().out
    assert "sk-test" not in out and json.loads(out.splitlines()[-1])["reply"] == server.reply
    auth = {r["headers"].get("Authorization") for r in server.chat_requests}
    assert auth == {"Bearer sk-test-4242"}


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"mode": "fail"}, "the server failed (500: CUDA out of memory)"),
        ({"mode": "reject"}, "rejected the request (400: temperature must be at most 2"),
        ({"mode": "json"}, "does not stream replies"),
    ],
)
def test_server_failures_exit_2_with_one_line(
    openai_server: Server, capsys: pytest.CaptureFixture, options: dict, words: str
) -> None:
    server = openai_server(**options)
    assert main([server.url, "--prompt", "hi", "--json"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_cut_stream_prints_what_came_then_the_error(
    openai_server: Server, capsys: pytest.CaptureFixture
) -> None:
    server = openai_server(mode="cut", cut_after=2)
    assert main([server.url, "--prompt", "hi"]) == 2
    out = capsys.readouterr()
    assert out.out == "".join(server.pieces()[:2]) + "\n"
    assert "was cut off" in out.err and out.err.count("\n") == 1


def test_an_unknown_model_and_an_unreachable_server(
    openai_server: Server, capsys: pytest.CaptureFixture
) -> None:
    server = openai_server()
    assert main([server.url, "--model", "nope", "--prompt", "hi"]) == 2
    assert "404 for model 'nope'" in capsys.readouterr().err
    url = server.url
    server.stop()
    assert main([url, "--prompt", "hi"]) == 2
    assert "cannot reach" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags",
    [
        ["--device", "cuda"],
        ["--dtype", "float16"],
        ["--quantize", "int8"],
        ["--num-beams", "2"],
        ["--length-penalty", "2"],
        ["--early-stopping", "true"],
    ],
)
def test_flags_that_make_no_sense_remotely_are_one_line(
    flags: list[str], capsys: pytest.CaptureFixture
) -> None:
    # checked before any connection: the URL need not answer
    assert main(["http://127.0.0.1:9/v1", "--prompt", "hi", *flags]) == 2
    err = capsys.readouterr().err
    assert flags[0] in err and "remote model" in err and err.count("\n") == 1


def test_remote_flags_with_a_local_model_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(tmp_path), "--prompt", "hi", "--api-key", "k"]) == 2
    err = capsys.readouterr().err
    assert "--api-key is for a remote endpoint" in err and err.count("\n") == 1


def test_the_app_config_carries_the_endpoint_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "sk-env")
    args = build_main_parser().parse_args(["http://h.invalid:1/v1", "--model", "m"])
    config = app_config(args)
    assert config.remote_model == "m" and config.api_key == "sk-env"
    assert "sk-env" not in repr(config)
    local = app_config(build_main_parser().parse_args(["models/cooking"]))
    assert local.api_key is None and local.remote_model is None


def test_a_remote_prompt_never_imports_torch(openai_server: Server) -> None:
    server = openai_server()
    code = (
        "import sys; from tui_gen.cli import main; "
        f"code = main([{server.url!r}, '--prompt', 'hi']); "
        "print('torch' in sys.modules, 'textual' in sys.modules, code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.stdout.splitlines()[-1] == "False False 0", out.stderr
    # the app's way in: the backend it opens for an endpoint does not import torch either
    code = (
        "import sys; from tui_gen.app.config import AppConfig; "
        "from tui_gen.app.worker import open_backend; "
        f"engine, info, chat = open_backend(AppConfig(model={server.url!r})); "
        "print('torch' in sys.modules, engine, info.name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.stdout.splitlines()[-1] == f"False None fake-chef @ {server.url}", out.stderr


def test_the_app_command_checks_the_endpoint_before_the_screen_opens(
    openai_server: Server, capsys: pytest.CaptureFixture
) -> None:
    server = openai_server(api_key="sk-app")
    assert main([server.url]) == 2  # refused key: said before any screen
    err = capsys.readouterr().err
    assert "401" in err and err.count("\n") == 1
    # a good endpoint passes the check; under pytest there is no terminal, so the app says so
    assert main([server.url, "--api-key", "sk-app"]) == 2
    assert "needs a terminal" in capsys.readouterr().err


def test_raw_sends_plain_text_to_completions(
    openai_server: Server, capsys: pytest.CaptureFixture
) -> None:
    server = openai_server()
    assert main([server.url, "--prompt", "Once upon a time", "--raw", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["reply"] == server.reply and rec["chat"] is False
    [req] = server.requests[-1:]
    assert req["path"] == "/v1/completions" and req["body"]["prompt"] == "Once upon a time"
    assert main([server.url, "--prompt", "x", "--raw", "--system", "s"]) == 2
    assert "--system needs the chat format" in capsys.readouterr().err


def test_info_describes_an_endpoint(openai_server: Server, capsys: pytest.CaptureFixture) -> None:
    server = openai_server(models=("a", "b"), max_model_len=2048, tokenize="vllm")
    assert main(["info", server.url, "--model", "b"]) == 0
    out = capsys.readouterr().out
    assert f"endpoint      {server.url}" in out and "model         b" in out
    assert "2048 tokens (/v1/models max_model_len)" in out and "from the server (vllm)" in out
    assert main(["info", server.url, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["models"] == ["a", "b"] and d["model"] == "a" and d["token_counting"] == "vllm"
    assert main(["info", server.url, "--quantize", "int8"]) == 2
    assert "--quantize does not apply to a remote model" in capsys.readouterr().err
