"""Locating the real SmolLM2-135M-Instruct GGUF (and a float32 reference) for opt-in tests.

Tests marked `@pytest.mark.smollm2` use these; they skip cleanly when the file is absent.

* The GGUF: $TUI_GEN_SMOLLM2, else ~/.cache/tui-gen-dev/SmolLM2-135M-Instruct.Q4_1.gguf
  (`../shared/tools/get-smollm2` puts it there).
* The reference: a float32 Hugging Face directory converted from the same GGUF by transformers:
  $TUI_GEN_SMOLLM2_HF if set, else one `reference_dir` builds once (about 20 s) and keeps in
  $TUI_GEN_DEV_CACHE (default ~/.cache/tui-gen-dev) as smollm2-hf-<SHA-256 of the GGUF>-<the
  transformers version>, so a different file or converter gets its own. It is built in a
  temporary folder beside it and renamed into place, so an interrupted build leaves none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HOME_CACHE = Path.home() / ".cache" / "tui-gen-dev"  # where get-smollm2 puts the GGUF
CACHE = Path(os.environ.get("TUI_GEN_DEV_CACHE") or HOME_CACHE)  # where the reference is kept


def gguf_path() -> Path | None:
    """The SmolLM2 Q4_1 GGUF if it is on this machine, else None."""
    env = os.environ.get("TUI_GEN_SMOLLM2")
    for candidate in (Path(env).expanduser() if env else None, HOME_CACHE / GGUF_NAME):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def require_gguf() -> Path:
    """The SmolLM2 GGUF, or skip the calling test."""
    path = gguf_path()
    if path is None:
        pytest.skip(f"SmolLM2 GGUF not found (set TUI_GEN_SMOLLM2 or put it in {HOME_CACHE})")
    return path


def _has_reference(d: Path) -> bool:
    return all((d / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reference_dir() -> Path:
    """A float32 Hugging Face directory made by transformers from the same GGUF (cached)."""
    env = os.environ.get("TUI_GEN_SMOLLM2_HF")
    if env and _has_reference(Path(env).expanduser()):
        return Path(env).expanduser()
    gguf = require_gguf()
    out = CACHE / f"smollm2-hf-{sha256(gguf)}-transformers-{version('transformers')}"
    if not _has_reference(out):
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=CACHE))
        try:
            _convert(gguf, partial)
            partial.chmod(0o755)  # mkdtemp made it private
            try:
                partial.rename(out)
            except OSError:  # another run put one there first
                if not _has_reference(out):
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return out


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # transformers refuses to save a model it loaded from GGUF; write its parts directly.
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    tok.save_pretrained(out)
