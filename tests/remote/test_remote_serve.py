"""The remote backend against our own server (`tui-gen serve`, built on another branch): greedy
replies through HTTP are the local engine's greedy replies. Skipped where tui_gen.server is
not there; slow (a subprocess loads the cooking model)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tui_gen.cli import main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 120.0
FLAGS = ["--greedy", "--max-new-tokens", "24", "--repetition-penalty", "1.0"]


@pytest.fixture(scope="module")
def served(cooking_dir: Path):
    if importlib.util.find_spec("tui_gen.server") is None:
        pytest.skip("tui_gen.server (tui-gen serve) is not in this checkout")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "tui_gen", "serve", str(cooking_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tui-gen serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tui-gen serve did not become ready within {START_SECONDS:g} s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def test_greedy_through_our_server_is_the_local_greedy_reply(
    served: str, cooking_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    for prompt in ("How do I make pancakes?", "A quick tomato soup?"):
        assert main([served, "--prompt", prompt, *FLAGS]) == 0
        remote = capsys.readouterr().out
        assert main([str(cooking_dir), "--prompt", prompt, *FLAGS]) == 0
        local = capsys.readouterr().out
        assert remote == local and remote.strip()
