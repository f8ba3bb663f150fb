"""Locating the real SmolLM2-135M-Instruct GGUF (and a float32 reference) for opt-in tests.

Tests marked `@pytest.mark.smollm2` use these; they skip cleanly when the file is absent.

* The GGUF: $TUI_GEN_SMOLLM2, else ~/.cache/tui-gen-dev/SmolLM2-135M-Instruct.Q4_1.gguf
  (`../shared/tools/get-smollm2` puts it there).
* The reference: a Hugging Face directory converted from the same GGUF by transformers
  ($TUI_GEN_SMOLLM2_HF, else ~/.cache/tui-gen-dev/SmolLM2-135M-Instruct-hf). When there is none,
  `reference_dir` builds one with transformers (about 20 s) in a temporary directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE = Path.home() / ".cache" / "tui-gen-dev"


def gguf_path() -> Path | None:
    """The SmolLM2 Q4_1 GGUF if it is on this machine, else None."""
    env = os.environ.get("TUI_GEN_SMOLLM2")
    for candidate in (Path(env).expanduser() if env else None, CACHE / GGUF_NAME):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def require_gguf() -> Path:
    """The SmolLM2 GGUF, or skip the calling test."""
    path = gguf_path()
    if path is None:
        pytest.skip(f"SmolLM2 GGUF not found (set TUI_GEN_SMOLLM2 or put it in {CACHE})")
    return path


def _has_reference(d: Path) -> bool:
    return all((d / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json"))


def reference_dir(tmp_root: Path) -> Path:
    """A float32 Hugging Face directory made by transformers from the same GGUF."""
    env = os.environ.get("TUI_GEN_SMOLLM2_HF")
    for candidate in (Path(env).expanduser() if env else None, CACHE / "SmolLM2-135M-Instruct-hf"):
        if candidate is not None and _has_reference(candidate):
            return candidate
    gguf = require_gguf()
    out = tmp_root / "smollm2-hf"
    if not _has_reference(out):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # transformers refuses to save a model it loaded from GGUF; write its parts directly.
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (out / "config.json").write_text(json.dumps(config, indent=2))
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(out)
    return out
