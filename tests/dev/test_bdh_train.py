"""dev/bdh/train.py trains a BDH that tui-gen opens both ways (directory and train.py .pt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui_gen import Generator


@pytest.mark.slow
def test_train_briefly_and_open_both_outputs(tmp_path: Path) -> None:
    from dev.bdh.train import main

    out, ckpt = tmp_path / "model", tmp_path / "run" / "checkpoint.pt"
    args = ["--out", str(out), "--checkpoint", str(ckpt), "--steps", "30", "--n-embd", "32"]
    assert main([*args, "--batch-size", "8", "--block-size", "64", "--log-every", "0"]) == 0
    info = json.loads((out / "generation_info.json").read_text())
    assert info["train_loss"] < 4.5  # from ln(256) = 5.5: it learned the byte statistics
    a = Generator.load(out, device="cpu").generate("The ", max_new_tokens=20, temperature=0)
    (ckpt.parent / "config.json").write_text((out / "config.json").read_text())
    b = Generator.load(ckpt.parent, device="cpu").generate("The ", max_new_tokens=20, temperature=0)
    assert a == b and len(a.encode()) >= 1
