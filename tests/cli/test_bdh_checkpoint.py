"""BDH train.py checkpoints: every shape people save them in, and pickles that would run code."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch
from bdh_models import SIZES, upstream_state_dict
from test_cli import ENV, TUI_GEN

from tui_gen import Generator
from tui_gen.cli.dispatch import main
from tui_gen.engine.loading.bdh_checkpoint import import_checkpoint
from tui_gen.errors import ModelLoadError
from tui_gen.sanitize import sanitize

PROMPT = list(b"Thou art")


@pytest.fixture(scope="module")
def expected(tiny_bdh: Path) -> list[int]:
    g = Generator.load(tiny_bdh, device="cpu")
    return g.generate_result(PROMPT, max_new_tokens=30, temperature=0).token_ids


def _greedy(path: Path) -> list[int]:
    return (
        Generator.load(path, device="cpu")
        .generate_result(PROMPT, max_new_tokens=30, temperature=0)
        .token_ids
    )


def _train_py_checkpoint(path: Path, *, compiled: bool = False, wrapped: bool = True) -> Path:
    sd = upstream_state_dict(0)
    if compiled:
        sd = {f"_orig_mod.{k}": v for k, v in sd.items()}
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    obj = {"model": sd, "optimizer": opt.state_dict(), "step": 1234} if wrapped else sd
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("compiled", "wrapped"), [(False, True), (True, True), (False, False), (True, False)]
)
def test_import_every_checkpoint_shape(
    tmp_path: Path, expected: list[int], compiled: bool, wrapped: bool
) -> None:
    ckpt = _train_py_checkpoint(tmp_path / "ckpt.pth", compiled=compiled, wrapped=wrapped)
    out = import_checkpoint(ckpt, tmp_path / "out", n_layer=SIZES["n_layer"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg == {"model_type": "bdh", **SIZES}
    assert _greedy(out) == expected


@pytest.mark.slow
def test_config_beside_and_opening_the_checkpoint_directly(
    tmp_path: Path, expected: list[int]
) -> None:
    ckpt = _train_py_checkpoint(tmp_path / "run" / "checkpoint.pt", compiled=True)
    with pytest.raises(ModelLoadError, match="--n-layer"):
        import_checkpoint(ckpt, tmp_path / "out")
    (ckpt.parent / "config.json").write_text(json.dumps({**SIZES, "dropout": 0.1}))
    assert _greedy(ckpt.parent) == expected  # the directory: config.json + checkpoint.pt
    assert _greedy(ckpt) == expected  # the file itself
    out = import_checkpoint(ckpt, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["n_layer"] == SIZES["n_layer"]
    (ckpt.parent / "config.json").write_text(json.dumps({**SIZES, "n_embd": 64}))
    with pytest.raises(ModelLoadError, match="n_embd is 64 but the weights say 32"):
        import_checkpoint(ckpt, tmp_path / "out2")


def test_cli_import_with_n_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _train_py_checkpoint(tmp_path / "ckpt.pt")
    assert main(["import", str(ckpt), str(tmp_path / "out"), "--n-layer", "2"]) == 0
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert main(["import", str(ckpt), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n-layer" in err[0]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "ran"
    ckpt = tmp_path / "run" / "evil.pt"
    ckpt.parent.mkdir()
    obj = {"model": {**upstream_state_dict(0), "x": _Evil(marker)}, "step": 1}
    if how == "torch.save":
        torch.save(obj, ckpt)
    else:
        ckpt.write_bytes(pickle.dumps(obj))
    (ckpt.parent / "config.json").write_text(json.dumps(SIZES))
    for args in (
        ["import", str(ckpt), str(tmp_path / "out")],
        [str(ckpt.parent), "--prompt", "hi"],
    ):
        r = subprocess.run([TUI_GEN, *args], capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "refused" in lines[0] and "ran nothing" in lines[0], lines
        assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_prompt_and_info_on_a_tiny_bdh(tiny_bdh: Path) -> None:
    r = subprocess.run(
        [TUI_GEN, str(tiny_bdh), "--prompt", "Thou art", "--greedy", "--max-new-tokens", "30"],
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    g = Generator.load(tiny_bdh, device="cpu")
    want = g.generate(PROMPT, max_new_tokens=30, temperature=0)
    # the CLI prints model output made terminal-safe (tui_gen/sanitize.py)
    assert r.stdout.decode("utf-8", "replace").rstrip("\n") == sanitize(want).rstrip("\n")
    from tui_gen.cli.info import describe, format_text

    d = describe(str(tiny_bdh), device="cpu")
    assert d["parameters"] == 3 * 2 * 32 * 128 + 2 * 256 * 32
    assert d["latent_size"] == 128 and d["state_bytes"] == 2 * 2 * 128 * 32 * 4
    text = format_text(d)
    assert "recurrent, unbounded" in text and "the same at any length" in text
    assert d["decode_step"].startswith("torch (bdh: a recurrent state")


@pytest.mark.slow
def test_upstream_stateful_layout_gives_its_own_depth(tmp_path: Path, expected: list[int]) -> None:
    """Upstream's stateful bdh.py saves one `attns.<i>.freqs` per layer and an unused lm_gate:
    n_layer comes from those buffers, and lm_gate is skipped."""
    sd = upstream_state_dict(0)
    freqs = sd.pop("attn.freqs")
    sd |= {f"attns.{i}.freqs": freqs.clone() for i in range(SIZES["n_layer"])}
    sd["lm_gate"] = torch.zeros(SIZES["n_embd"], 1)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": sd, "step": 1}, ckpt)
    out = import_checkpoint(ckpt, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["n_layer"] == SIZES["n_layer"]
    assert _greedy(out) == expected
    sd["attns.0.freqs"] = freqs * 2  # other rope settings are still refused
    torch.save(sd, ckpt)
    with pytest.raises(ModelLoadError, match="rope frequencies differ"):
        import_checkpoint(ckpt, tmp_path / "out2")
