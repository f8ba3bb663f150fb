"""Session-wide tiny models (built once with transformers, saved like real checkpoints), and
the test tiers: which tests are slow, and the check that the fast tier touches every module."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers beside this file
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # dev/ (not installed)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_models import make_byte_model, make_model

REPO = Path(__file__).resolve().parent.parent
COOKING = REPO / "models" / "cooking"


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_llama(tiny_root: Path) -> Path:
    return make_model(tiny_root / "llama", "llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_root: Path) -> Path:
    return make_model(tiny_root / "gpt2", "gpt2")


@pytest.fixture(scope="session")
def tiny_qwen2(tiny_root: Path) -> Path:
    return make_model(tiny_root / "qwen2", "qwen2")


@pytest.fixture(scope="session")
def tiny_byte(tiny_root: Path) -> Path:
    return make_byte_model(tiny_root / "byte")


@pytest.fixture(scope="session")
def cooking_dir() -> Path:
    if not (COOKING / "model.safetensors").exists():
        pytest.skip("models/cooking has not been trained yet")
    return COOKING


# --- test tiers ----------------------------------------------------------------------------------
# `python -m pytest -q -m "not slow"` is the fast tier; the full run is the README's and CI's.

# Modules no test can keep in sys.modules, and where they are run instead.
NOT_IMPORTABLE = {"tui_gen.__main__": "raises SystemExit on import; tests/cli/test_main_module.py"}
_UNTOUCHED = pytest.StashKey[list[str]]()


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.get_closest_marker("smollm2") is not None:  # a real 135M model: always slow
        item.add_marker(pytest.mark.slow)
    if item.get_closest_marker("gemma3") is not None:  # a real 270M model: always slow
        item.add_marker(pytest.mark.slow)
    if item.get_closest_marker("llamacpp") is not None:  # starts llama.cpp's server: slow
        item.add_marker(pytest.mark.slow)


def _ran_the_whole_tier(config: pytest.Config) -> bool:
    """True when the run was the whole fast tier or the whole suite: every test under tests/,
    filtered by nothing but `-m "not slow"`."""
    opt = config.option
    if opt.markexpr.strip() not in ("", "not slow") or opt.keyword or opt.collectonly:
        return False
    if getattr(opt, "deselect", None) or getattr(opt, "lf", False) or getattr(opt, "stepwise", 0):
        return False
    if getattr(opt, "ignore", None) or getattr(opt, "ignore_glob", None):
        return False
    here = config.invocation_params.dir
    roots = {(here / arg.split("::")[0]).resolve() for arg in config.args}
    return roots <= {REPO, REPO / "tests"}


def untouched_modules() -> list[str]:
    """The modules of tui_gen/ that nothing in this process imported."""
    names = []
    for path in sorted((REPO / "tui_gen").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return [n for n in names if n not in sys.modules and n not in NOT_IMPORTABLE]


def _imported_modules() -> set[str]:
    return {n for n in sys.modules if n == "tui_gen" or n.startswith("tui_gen.")}


_WORKER_IMPORTS = pytest.StashKey[set[str]]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist (`-n 2`), on the controller: a worker finished; keep what it imported (the
    controller itself imports nothing, so the check below counts its workers' modules)."""
    got = getattr(node, "workeroutput", {}).get("tui_gen_imported", [])
    node.config.stash.setdefault(_WORKER_IMPORTS, set()).update(got)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The fast tier must still touch every module: a run of the whole tier (or suite) that
    completed fails when some tui_gen module was never imported by its tests (a module only
    a slow test, or only a subprocess, imports). Under pytest-xdist each worker reports its
    imports to the controller, which checks their union."""
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: report, the controller decides
        workeroutput["tui_gen_imported"] = sorted(_imported_modules())
        return
    complete = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    if not complete or session.shouldstop or session.shouldfail:
        return
    if not _ran_the_whole_tier(config):
        return
    seen = config.stash.get(_WORKER_IMPORTS, set())
    missing = [n for n in untouched_modules() if n not in seen]
    if missing:
        config.stash[_UNTOUCHED] = missing
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    missing = config.stash.get(_UNTOUCHED, [])
    if missing:
        terminalreporter.write_sep("=", "tui_gen modules no test of this run imported", red=True)
        for name in missing:
            terminalreporter.write_line(f"  {name}")
        terminalreporter.write_line("give each a fast test (or import it in one); the run failed")


@pytest.fixture(scope="session")
def tiny_bdh(tiny_root: Path) -> Path:
    from bdh_models import make_bdh_model

    return make_bdh_model(tiny_root / "bdh")
