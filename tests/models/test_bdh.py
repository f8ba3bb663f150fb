"""BDH (models/bdh.py) against the equations written out in tests/bdh_models.py."""

from __future__ import annotations

import pytest
import torch
from bdh_models import SIZES, reference_logits, upstream_state_dict

from tui_gen.models.bdh import BDH
from tui_gen.models.registry import parse_config


def _model(seed: int = 0, **sizes: int) -> tuple[BDH, dict]:
    sd = upstream_state_dict(seed, **sizes)
    cfg = parse_config({"model_type": "bdh", **SIZES, **sizes})
    model = BDH(cfg)
    state = {}
    for k, v in sd.items():
        mapped = BDH.convert_weight(k, v, cfg)
        if mapped is not None:
            state[mapped[0]] = mapped[1]
    model.load_state_dict(state, strict=True)
    return model.eval(), sd


def test_config_sizes() -> None:
    cfg = parse_config({**SIZES})  # no model_type: BDHConfig's keys say it
    assert cfg.arch == "bdh" and cfg.head_dim == 8 * 32 // 2 and cfg.recurrent
    assert cfg.kv_cache_bytes(10, 4) == cfg.kv_cache_bytes(10_000, 4) == 2 * 2 * 128 * 32 * 4


@pytest.mark.slow
def test_recurrent_logits_match_the_equations_over_2000_positions() -> None:
    model, sd = _model()
    T = 2000
    idx = torch.randint(0, 256, (1, T), generator=torch.Generator().manual_seed(1))
    ref = reference_logits(sd, idx, SIZES["n_layer"]).float()
    with torch.inference_mode():
        ours = model(idx)  # chunked prefill
        assert (ours - ref).abs().max() < 1e-4
        cache = model.new_cache(1)
        steps = [model(idx[:, :1000], cache=cache)]  # a prefill, then one token at a time
        for t in range(1000, T):
            steps.append(model(idx[:, t : t + 1], start=t, cache=cache))
        rec = torch.cat(steps, dim=1)
    assert (rec - ref).abs().max() < 1e-4
    assert cache.length == T


def test_parallel_form_and_chunks_agree() -> None:
    model, sd = _model(seed=3)
    idx = torch.randint(0, 256, (2, 300), generator=torch.Generator().manual_seed(2))
    ref = reference_logits(sd, idx, SIZES["n_layer"]).float()
    with torch.inference_mode():
        assert (model.parallel_forward(idx) - ref).abs().max() < 1e-4
        assert (model(idx) - ref).abs().max() < 1e-4
        assert (model(idx, last_only=True)[:, 0] - ref[:, -1]).abs().max() < 1e-4


def test_left_padding_adds_nothing_to_the_state() -> None:
    model, sd = _model()
    ids = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), ids], dim=1)
    positions = torch.cat([torch.zeros(1, 5, dtype=torch.long), torch.arange(20)[None]], dim=1)
    real = torch.ones(1, 25, dtype=torch.bool)
    real[0, :5] = False
    with torch.inference_mode():
        alone = model(ids, last_only=True)
        pad = model(padded, positions=positions, key_padding=real, last_only=True)
    assert (alone - pad).abs().max() < 1e-5


def test_truncate_restores_the_snapshot_before_the_last_prompt_token() -> None:
    model, _ = _model()
    ids = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        cache = model.new_cache(1)
        model(ids[:, :30], cache=cache)  # snapshot at 29
        for t in range(30, 40):
            model(ids[:, t : t + 1], start=t, cache=cache)
        cache.truncate(35)  # cannot forget 5 positions: falls back to the snapshot
        assert cache.length == 29
        again = model(ids[:, 29:], start=29, cache=cache)
        fresh = model(ids)[:, 29:]
        cache.truncate(3)  # before every snapshot: empty
        assert cache.length == 0
    assert (again - fresh).abs().max() < 1e-4


def test_wrong_rope_buffer_is_refused() -> None:
    from tui_gen.errors import ModelLoadError

    cfg = parse_config({"model_type": "bdh", **SIZES})
    with pytest.raises(ModelLoadError, match="rope"):
        BDH.convert_weight("attn.freqs", torch.ones(1, 1, 1, cfg.head_dim), cfg)
