"""Adversarial files (issue #19, loading): configs and GGUF headers that would exhaust memory,
hang or crash, unreadable or special files, broken cached kernels, NaN-producing weights. Each
must end in one ModelLoadError line (or work), quickly and with little memory."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui_gen.engine.native import build
from tui_gen.errors import ModelLoadError, TuiGenError


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- cached kernel library ---------------------------------------------------------------------


def test_a_truncated_cached_library_is_not_intact(tmp_path: Path) -> None:
    lib = tmp_path / "qmatmul-x.so"
    lib.write_bytes(b"\x7fELF" + bytes(4000))
    build._stamp_path(lib).write_text(build._stamp(lib))
    assert build._intact(lib)
    with lib.open("r+b") as f:
        f.truncate(100)
    assert not build._intact(lib)
    build._stamp_path(lib).unlink()
    lib.write_bytes(b"\x7fELF" + bytes(4000))
    assert not build._intact(lib)  # no stamp (built by an older version): rebuilt


@pytest.mark.slow
def test_a_truncated_cached_library_is_rebuilt_not_loaded(tmp_path: Path, tiny_llama: Path) -> None:
    """A truncated .so would be mapped and die with SIGBUS: run in a child so pytest survives."""
    env = {**os.environ, "TUI_GEN_CACHE_DIR": str(tmp_path), "TUI_GEN_NATIVE": "1"}
    first = "from tui_gen.engine.native import build; assert build.load() is not None"
    subprocess.run([sys.executable, "-c", first], env=env, check=True, timeout=300)
    (so,) = (tmp_path / "kernels").glob("qmatmul-*.so")
    size = so.stat().st_size
    with so.open("r+b") as f:
        f.truncate(size // 3)
    code = (
        "from tui_gen import Generator; "
        f"g = Generator.load({str(tiny_llama)!r}, quantize='int8'); "
        "g.generate('hi', max_new_tokens=3, temperature=0); print(g.decode_backend)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "native"
    assert so.stat().st_size == size  # rebuilt in place
