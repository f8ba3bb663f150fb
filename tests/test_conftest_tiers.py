"""The fast tier's "every tui_gen module imported" check, also under pytest-xdist (`-n 2`),
where the controller process runs no test and each worker reports what it imported."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest


@pytest.fixture
def conftest(request: pytest.FixtureRequest) -> Any:
    """tests/conftest.py as pytest loaded it (`import conftest` may find a subfolder's)."""
    root = Path(__file__).with_name("conftest.py")
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == str(root):
            return plugin
    raise AssertionError(f"{root} is not loaded")


def _session(config: Any) -> Any:
    return SimpleNamespace(
        config=config, shouldstop=False, shouldfail=False, exitstatus=pytest.ExitCode.OK
    )


@pytest.fixture
def two_modules(conftest: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "_ran_the_whole_tier", lambda config: True)
    monkeypatch.setattr(conftest, "untouched_modules", lambda: ["tui_gen.a", "tui_gen.b"])


def test_controller_counts_what_its_workers_imported(conftest: Any, two_modules: None) -> None:
    config = SimpleNamespace(stash={})
    for got in (["tui_gen.a"], ["tui_gen.b", "tui_gen.c"]):
        worker = SimpleNamespace(config=config, workeroutput={"tui_gen_imported": got})
        conftest.pytest_testnodedown(worker, None)
    session = _session(config)
    conftest.pytest_sessionfinish(session, pytest.ExitCode.OK)
    assert session.exitstatus == pytest.ExitCode.OK
    assert config.stash.get(conftest._UNTOUCHED) is None


def test_controller_fails_the_run_when_no_worker_imported_a_module(
    conftest: Any, two_modules: None
) -> None:
    config = SimpleNamespace(stash={})
    worker = SimpleNamespace(config=config, workeroutput={"tui_gen_imported": ["tui_gen.a"]})
    conftest.pytest_testnodedown(worker, None)
    session = _session(config)
    conftest.pytest_sessionfinish(session, pytest.ExitCode.OK)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert config.stash[conftest._UNTOUCHED] == ["tui_gen.b"]


def test_a_worker_reports_its_imports_and_leaves_the_verdict_to_the_controller(
    conftest: Any, two_modules: None
) -> None:
    import tui_gen.engine.scheduler  # noqa: F401  (one module this process surely holds)

    config = SimpleNamespace(stash={}, workeroutput={})
    session = _session(config)
    conftest.pytest_sessionfinish(session, pytest.ExitCode.OK)
    assert session.exitstatus == pytest.ExitCode.OK  # tui_gen.b is missing: not its call
    assert "tui_gen.engine.scheduler" in config.workeroutput["tui_gen_imported"]
