"""`python -m tui_gen`, run in this process (a module that raises SystemExit on import stays out
of sys.modules, so conftest's every-module check names this test instead)."""

from __future__ import annotations

import runpy
import sys

import pytest

from tui_gen import __version__


def test_python_dash_m_runs_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["tui-gen", "--version"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("tui_gen", run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"tui-gen {__version__}"
