"""Tiny BDH checkpoints written the way pathwaycom/bdh's train.py and our importer write them,
and a reference implementation of the equations (parallel form), for tests."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SIZES: dict[str, int] = {
    "n_layer": 2,
    "n_embd": 32,
    "n_head": 2,
    "mlp_internal_dim_multiplier": 8,
    "vocab_size": 256,
}


def upstream_state_dict(seed: int = 0, **sizes: int) -> dict[str, Any]:
    """Random weights under upstream's names (with its attn.freqs buffer), scaled so that the
    logits are far apart (greedy comparisons do not hinge on 1e-6 differences)."""
    import torch

    s = {**SIZES, **sizes}
    D, nh, V = s["n_embd"], s["n_head"], s["vocab_size"]
    N = s["mlp_internal_dim_multiplier"] * D // nh
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    i = torch.arange(N, dtype=torch.float32)
    freqs = 1.0 / ((2.0**16) ** ((i / 2).floor() * 2 / N)) / (2 * math.pi)
    return {
        "encoder": rnd(nh, D, N, std=0.15),
        "encoder_v": rnd(nh, D, N, std=0.15),
        "decoder": rnd(nh * N, D, std=0.1),
        "lm_head": rnd(D, V, std=0.5),
        "embed.weight": rnd(V, D, std=1.0),
        "attn.freqs": freqs.view(1, 1, 1, N),
    }


def make_bdh_model(out: Path, seed: int = 0, **sizes: int) -> Path:
    """A model directory: config.json (model_type bdh) + model.safetensors, no tokenizer."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    sd = upstream_state_dict(seed, **sizes)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(out / "model.safetensors"))
    cfg = {"model_type": "bdh", **SIZES, **sizes}
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def reference_logits(sd: dict[str, Any], idx: Any, n_layer: int) -> Any:
    """The issue's equations, literally: idx (B, T) -> logits (B, T, V), float64."""
    import torch
    import torch.nn.functional as F

    enc = sd["encoder"].double()
    enc_v = sd["encoder_v"].double()
    dec = sd["decoder"].double()
    head = sd["lm_head"].double()
    emb = sd["embed.weight"].double()
    nh, D, N = enc.shape
    B, T = idx.shape

    def ln(t: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(t, (t.shape[-1],), eps=1e-5)

    i = torch.arange(N, dtype=torch.float64)
    freq = 1.0 / ((2.0**16) ** (2 * torch.div(i, 2, rounding_mode="floor") / N)) / (2 * math.pi)
    angle = (torch.arange(T, dtype=torch.float64)[:, None] * freq) % 1 * 2 * math.pi  # (T, N)
    cos, sin = torch.cos(angle), torch.sin(angle)

    def rope(v: torch.Tensor) -> torch.Tensor:
        rot = torch.empty_like(v)
        rot[..., 0::2] = -v[..., 1::2]
        rot[..., 1::2] = v[..., 0::2]
        return v * cos + rot * sin

    x = ln(emb[idx])[:, None]  # (B, 1, T, D)
    for _ in range(n_layer):
        x_sparse = F.relu(x @ enc)  # (B, nh, T, N)
        qr = rope(x_sparse)
        y_kv = ln((qr @ qr.transpose(-1, -2)).tril(-1) @ x)
        y_sparse = F.relu(y_kv @ enc_v)
        xy = (x_sparse * y_sparse).permute(0, 2, 1, 3).reshape(B, 1, T, nh * N)
        x = ln(x + ln(xy @ dec))
    return x[:, 0] @ head
