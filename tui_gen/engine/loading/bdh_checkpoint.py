"""Checkpoints of pathwaycom/bdh's train.py (`.pt`/`.pth`), read safely.

train.py saves `torch.save({"model": model.state_dict(), "optimizer": ..., "step": ...})`,
with every key prefixed `_orig_mod.` when the model was torch.compile'd; people also save a
bare state dict. A pickle can run any code while it is read, so it is only ever opened with
`torch.load(weights_only=True)`, whose unpickler builds tensors and plain containers and
refuses everything else: a file that would import a function (os.system, eval, ...) is
refused with one line before anything runs.

Shared weights give every size but the depth: D and the vocabulary from `embed.weight`
(V, D), nh and N from `encoder` (nh, D, N), hence mlp_internal_dim_multiplier = N * nh / D.
n_layer comes from `--n-layer` or a config.json beside the checkpoint (BDHConfig's keys).
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from tui_gen.errors import ModelLoadError

SUFFIXES = (".pt", ".pth")
_PREFIXES = ("_orig_mod.", "module.")


def find_checkpoint(path: Path) -> Path | None:
    """The checkpoint to open at `path`: a .pt/.pth file, or the single one in a directory
    that has a config.json but no safetensors; None for anything else."""
    if path.is_file():
        return path if path.suffix.lower() in SUFFIXES else None
    if not path.is_dir():
        return None
    if (path / "model.safetensors").exists() or (path / "model.safetensors.index.json").exists():
        return None
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if found and not (path / "config.json").exists():
        raise ModelLoadError(
            f"{path}: {found[0].name} has no config.json beside it; BDH's shared weights do "
            f"not say n_layer: run `tui-gen import {found[0]} OUT_DIR --n-layer N`, or add a "
            "config.json with n_layer"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ModelLoadError(f"{path}: several checkpoints ({names}); give the file to open")
    return found[0] if found else None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors, prefixes stripped; a pickle that would run code is refused."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: one line only
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelLoadError(
            f"{path}: refused: the pickle holds more than tensors and plain data "
            f"({_detail(str(e))}); tui-gen reads checkpoints with torch.load(weights_only=True) "
            "and ran nothing; re-save the state dict with torch.save"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"{path}: not a readable torch checkpoint ({first[:200]}); save it with torch.save"
        ) from None
    state = obj.get("model") if isinstance(obj, dict) and "model" in obj else obj
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(
            f"{path}: expected a state dict or {{'model': state_dict, ...}}, got "
            f"{type(state).__name__}"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        name = str(key)
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
        out[name] = value
    if "encoder" not in out or "embed.weight" not in out:
        raise ModelLoadError(
            f"{path}: no BDH weights (encoder, embed.weight) in the checkpoint; keys: "
            f"{', '.join(list(out)[:5]) or 'none'}"
        )
    return out


def _detail(message: str) -> str:
    """The line of torch's refusal that says what was refused (a GLOBAL, an opcode)."""
    for line in message.splitlines():
        line = line.strip()
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line.rstrip(".")[:200]
    return "weights_only load failed"


def config_for(
    state: dict[str, torch.Tensor], beside: Path | None, n_layer: int | None
) -> dict[str, Any]:
    """config.json for these weights: the sizes from the shapes; n_layer from the flag, a
    config.json beside the checkpoint, or the per-layer rope buffers (`attns.<i>.freqs`) of
    upstream's stateful version (the shared weights alone do not say it)."""
    raw: dict[str, Any] = {}
    if beside is not None and beside.exists():
        from tui_gen.models.config import read_json

        raw = read_json(beside)
    depth = n_layer if n_layer is not None else raw.get("n_layer")
    if depth is None:  # upstream's stateful version keeps one rope buffer per layer
        layers = {k.split(".")[1] for k in state if k.startswith("attns.") and k.endswith(".freqs")}
        depth = len(layers) or None
    if depth is None:
        raise ModelLoadError(
            "n_layer cannot be read from BDH's shared weights; give --n-layer N or put a "
            "config.json with n_layer beside the checkpoint"
        )
    enc, emb = state["encoder"], state["embed.weight"]
    if enc.dim() != 3 or emb.dim() != 2 or enc.shape[1] != emb.shape[1]:
        raise ModelLoadError(
            f"encoder {tuple(enc.shape)} and embed.weight {tuple(emb.shape)} are not BDH's "
            "(nh, D, N) and (vocab, D)"
        )
    nh, D, N = (int(s) for s in enc.shape)
    if (N * nh) % D:
        raise ModelLoadError(f"encoder {tuple(enc.shape)}: N * n_head is not a multiple of D")
    sizes = {
        "n_layer": int(depth),
        "n_embd": D,
        "n_head": nh,
        "mlp_internal_dim_multiplier": N * nh // D,
        "vocab_size": int(emb.shape[0]),
    }
    for key in ("n_embd", "n_head", "mlp_internal_dim_multiplier", "vocab_size"):
        if key in raw and int(raw[key]) != sizes[key]:
            raise ModelLoadError(
                f"{beside}: {key} is {raw[key]} but the weights say {sizes[key]}; the config "
                "belongs to another checkpoint"
            )
    extra = {k: v for k, v in raw.items() if k not in sizes and k != "model_type"}
    return {"model_type": "bdh", **sizes, **extra}


def import_checkpoint(path: str | Path, out_dir: str | Path, n_layer: int | None = None) -> Path:
    """Write a train.py checkpoint as a model directory (config.json + model.safetensors)."""
    from safetensors.torch import save_file

    from tui_gen.models.bdh import BDH
    from tui_gen.models.registry import parse_config

    src = Path(path).expanduser()
    if not src.is_file():
        raise ModelLoadError(f"{src}: no such checkpoint file")
    state = read_state_dict(src)
    config = config_for(state, src.parent / "config.json", n_layer)
    cfg = parse_config(config, str(src))
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        mapped = BDH.convert_weight(name, tensor, cfg)  # checks the rope buffer
        if mapped is not None:
            tensors[mapped[0]] = mapped[1].detach().to(torch.float32).contiguous()
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ModelLoadError(f"{out}: exists and is not a directory; choose another output path")
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    return out
