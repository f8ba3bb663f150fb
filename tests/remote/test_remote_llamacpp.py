"""A real peer (opt-in): llama-cpp-python's OpenAI server on SmolLM2's GGUF, and the remote
backend against it. `tui-gen http://127.0.0.1:PORT/v1 --prompt ... --greedy` must print what
llama.cpp itself answers (llama_cpp.Llama on the same file, same messages, temperature 0).

Needs llama-cpp-python with its server extra (`pip install 'llama-cpp-python[server]'`, which
builds llama.cpp from source) and the SmolLM2 GGUF (tests/smollm2.py); skipped cleanly
without either. The server runs as a subprocess on a free loopback port and is stopped by the
test; the wait for it to load is bounded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from smollm2 import require_gguf

from tui_gen.sanitize import sanitize

pytestmark = [pytest.mark.smollm2, pytest.mark.llamacpp]
REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 180.0
MAX_TOKENS = 40
#: both sides: one thread (the same float reductions), the same context
LLAMA_ARGS = {"n_threads": 1, "n_ctx": 2048}
PROMPTS = ["How long should I boil an egg?", "Name three herbs that go well with tomatoes."]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    gguf = require_gguf()
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python lacks its [server] extra")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    for name, value in LLAMA_ARGS.items():
        cmd += [f"--{name}", str(value)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"llama_cpp.server exited ({proc.returncode}): {log.read_text()[-2000:]}"
                )
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {START_SECONDS:g} s")
            time.sleep(0.5)
        yield url, gguf
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def _llama_cpp_answers(gguf: Path, prompts: list[str], raw: str) -> tuple[list[str], str]:
    """What llama.cpp answers in this process: each prompt as a chat message, and `raw`'s
    plain-text continuation."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), verbose=False, **LLAMA_ARGS)
    greedy = {"temperature": 0.0, "max_tokens": MAX_TOKENS, "repeat_penalty": 1.0}  # as sent
    out = []
    for prompt in prompts:
        answer = llm.create_chat_completion([{"role": "user", "content": prompt}], **greedy)
        out.append(answer["choices"][0]["message"]["content"])
    text = llm.create_completion(raw, **greedy)["choices"][0]["text"]
    return out, text


def _tui_gen(url: str, *flags: str) -> str:
    cmd = [sys.executable, "-m", "tui_gen", url, *flags, "--max-new-tokens", str(MAX_TOKENS)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_the_remote_backend_prints_what_llama_cpp_answers(llama_server) -> None:
    url, gguf = llama_server
    raw = "The best way to store fresh basil is"
    expected, continuation = _llama_cpp_answers(gguf, PROMPTS, raw)
    for prompt, reference in zip(PROMPTS, expected):
        assert reference.strip()  # a real answer, not an empty one
        assert _tui_gen(url, "--prompt", prompt, "--greedy") == sanitize(reference) + "\n"
    # --raw: plain text through /v1/completions
    assert continuation.strip()
    assert _tui_gen(url, "--prompt", raw, "--raw", "--greedy") == sanitize(continuation) + "\n"


def test_json_mode_on_the_real_server_counts_and_times(llama_server) -> None:
    url, _ = llama_server
    cmd = [sys.executable, "-m", "tui_gen", url, "--prompt", PROMPTS[0], "--json", "--greedy"]
    run = subprocess.run(
        [*cmd, "--max-new-tokens", "8"], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert run.returncode == 0, run.stderr
    rec = json.loads(run.stdout)
    assert rec["finish_reason"] in ("length", "eos") and 1 <= rec["generated_tokens"] <= 8
    assert rec["time_to_first_token"] > 0 and rec["endpoint"] == url
