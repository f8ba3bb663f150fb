"""The wheel: built from a clean copy of the checkout, it holds the package and its data files
and none of the developer tooling in dev/ (benchmark harness, kernel and lag benches, quality
report, screenshot maker, the demo model's corpus and trainer); installed on its own, outside
the checkout, `tui-gen bench` runs from it (its C kernels built from the wheel's sources)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tui_gen.engine.native import build

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DATA = {".tcss", ".jinja", ".c", ".h"}
# names of dev/ files that must never ship, wherever they would land
DEV_ONLY = {
    "bench_compare",
    "kernels_bench",
    "quant_quality",
    "lag_bench",
    "screenshots",
    "corpus",
    "dish_data",
    "kitchen_data",
    "vocab_data",
    "train",
    "evaluate",
}
NOT_COPIED = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "*.pyc"
)

pytestmark = pytest.mark.slow  # builds a wheel (setuptools in an isolated environment)


def checkout_package_files() -> set[str]:
    """tui_gen/'s modules and data files as the checkout has them, relative to REPO."""
    files = set()
    for path in (REPO / "tui_gen").rglob("*"):
        if path.is_file() and (path.suffix == ".py" or path.suffix in PACKAGE_DATA):
            files.add(path.relative_to(REPO).as_posix())
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the project, built from a copy (a stale build/ could leak old files in, and
    the build writes build/ and egg-info beside the sources)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_COPIED)
    out = root / "dist"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (built,) = out.glob("tui_gen-*.whl")
    return built


def test_the_wheel_holds_the_package_and_no_dev_tooling(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.split("/")[0] in ("dev", "tests", "models", "screenshots")]
    shipped_stems = {Path(n).stem for n in names}
    assert not shipped_stems & DEV_ONLY, sorted(shipped_stems & DEV_ONLY)
    package = {n for n in names if n.startswith("tui_gen/")}
    assert package == checkout_package_files()  # every module and data file, nothing else
    assert "tui_gen/cli/bench.py" in package
    native = {n for n in package if n.startswith("tui_gen/engine/native/")}
    assert {"decode.c", "qmatmul.c", "logprobs.c", "qrows.h"} <= {Path(n).name for n in native}
    themes = {Path(n).name for n in names if "/data/share/tui-gen/themes/" in n}
    assert themes == {p.name for p in (REPO / "themes").glob("*.toml")}


def test_bench_runs_from_the_installed_wheel(wheel: Path, tiny_llama: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import tui_gen; "
        "print(tui_gen.__file__, file=sys.stderr); from tui_gen.cli import main; "
        "raise SystemExit(main(['bench', sys.argv[2], '--repeats', '1', "
        "'--max-new-tokens', '4', '--recompute', '--json']))"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TUI_GEN_CACHE_DIR"] = str(tmp_path / "cache")  # kernels built from the wheel's C files
    r = subprocess.run(
        [sys.executable, "-c", code, str(site), str(tiny_llama)],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    imported_from = Path(r.stderr.splitlines()[0])
    assert imported_from == site / "tui_gen" / "__init__.py"
    report = json.loads(r.stdout)
    assert report["new_tokens"] == 4 and report["decode_tok_s"] > 0
    if build._compiler() is not None:  # the wheel's C sources compiled and ran
        assert report["decode_backend"] == "native", report
        assert list((tmp_path / "cache").rglob("*.so"))
