"""`tui-gen info MODEL`: what a model is, without generating (and, for directories, without
reading the weights: shapes come from the safetensors headers, so `info` on a 7B model is as
quick as on a tiny one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_gen.cli.headless import json_line, print_stdout
from tui_gen.errors import ModelLoadError, TuiGenError
from tui_gen.sanitize import sanitize

if TYPE_CHECKING:  # (torch loads only once a model is described)
    import torch

    from tui_gen.models.config import ModelConfig

#: generation_config.json keys that say nothing about how text is generated
_BOOKKEEPING = {
    "_from_model_config",
    "transformers_version",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "output_scores",
    "output_logits",
    "return_dict_in_generate",
}


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _human_count(n: int) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def _count_parameters(cfg: ModelConfig, files: list[Path]) -> tuple[int, str | None]:
    """Parameters (tied weights once, buffers skipped) and the stored dtype, from headers."""
    import torch
    from safetensors import safe_open

    from tui_gen.models.registry import model_class

    cls = model_class(cfg)
    total, dtypes = 0, set()
    for path in files:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    sl = f.get_slice(key)
                    shape = sl.get_shape()
                    mapped = cls.convert_weight(key, torch.empty(shape, device="meta"), cfg)
                    if mapped is None:
                        continue
                    if mapped[0] == "lm_head.weight" and cfg.tie_word_embeddings:
                        continue
                    n = 1
                    for d in shape:
                        n *= d
                    total += n
                    dtypes.add(str(sl.get_dtype()))
        except TuiGenError:
            raise
        except Exception as e:  # SafetensorError or OSError on a damaged file
            raise ModelLoadError(f"{path}: not a readable safetensors file ({e})") from None
    names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
    stored = ", ".join(sorted(names.get(d, d.lower()) for d in dtypes)) or None
    return total, stored


def weight_bytes(
    cfg: ModelConfig, params: int, element: int, mode: str | None, native: bool = False
) -> int:
    """Bytes the weights take in memory when run, from the shapes alone (nothing is loaded).

    Quantization (engine/quantize.py) replaces every projection and the lm_head; embeddings,
    norms and biases stay float. With torch's kernels int8 stores one byte per weight plus a
    scale per row, int4 half a byte plus a float32 (scale, min) pair per group of 32; with the
    native kernels (`native`) both store a float16 pair per group of 32; native int4 is Q4_1
    blocks (the same 20 bytes per 32) with a Q8_0 lm_head (34 bytes per 32). The int4 lm_head
    is int8 either way.
    """
    if mode is None:
        return params * element
    h, layers = cfg.hidden_size, cfg.num_layers
    q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    from tui_gen.models.registry import family

    mlp = family(cfg.arch).mlp_matrices * h * cfg.intermediate_size
    linear = layers * (h * q + 2 * h * kv + q * h + mlp)
    head = cfg.vocab_size * h
    # a tied head is counted once in `params` (as the embedding), but quantizing copies it
    float_params = max(0, params - linear - (0 if cfg.tie_word_embeddings else head))
    if native:
        per_group = 4  # two float16 per 32 weights
        if mode == "int8":
            quant = linear + linear // 32 * per_group + head + head // 32 * per_group
        else:  # Q4_1 layers, a Q8_0 head (one float16 per 32)
            quant = linear // 2 + linear // 32 * per_group + head + head // 32 * 2
    elif mode == "int8":
        quant = linear + head + 4 * (layers * (q + 2 * kv + h) + cfg.vocab_size)
    else:
        quant = linear // 2 + linear // 32 * 4 + head + 4 * cfg.vocab_size
    return float_params * element + quant


def _prompt_gemm(device: torch.device) -> str:
    """How a kept GGUF's long prompts multiply (engine/native/gguf_linear.gemm_dtype)."""
    from tui_gen.engine.native import gguf_linear

    dt = gguf_linear.gemm_dtype(device)
    rows, k_rows = gguf_linear.rows_limit(False, dt), gguf_linear.rows_limit(True, dt)
    name = str(dt).replace("torch.", "")
    return (
        f"{name} on dequantized tiles above {rows} prompt tokens ({k_rows} for the K types), "
        "8-bit integer kernels below"
    )


def _decode_step(device: torch.device, dtype: torch.dtype, cfg: ModelConfig | None = None) -> str:
    """What will decode: the native C step (built now if needed, about a second, then cached)
    or torch, and why (the machine's reason, else the family's: "phi3: partial rotary ...")."""
    from tui_gen.engine.native import build
    from tui_gen.engine.native.qlinear import decode_unavailable
    from tui_gen.models.registry import model_class

    why = decode_unavailable(device, dtype)
    if not why and cfg is not None:
        why = model_class(cfg).native_unsupported(cfg) or ""
    return f"torch ({why})" if why else f"native C kernels ({build.isa()})"


def tensor_types(tensors: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """(GGUF tensor name, type) pairs -> one entry per type, most tensors first: its count and
    the tensor groups (names without `blk.N.` and `.weight`) stored in it, in file order."""
    import re

    by_type: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for name, kind in tensors:
        group = re.sub(r"\.(weight|bias)$", "", re.sub(r"^blk\.\d+\.", "", name))
        counts[kind] = counts.get(kind, 0) + 1
        groups = by_type.setdefault(kind, [])
        if group not in groups:
            groups.append(group)
    return [
        {"type": kind, "tensors": counts[kind], "groups": by_type[kind]}
        for kind in sorted(counts, key=lambda k: -counts[k])
    ]


def tensor_groups(tensors: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """(GGUF tensor name, type) pairs -> one entry per tensor group (the name without `blk.N.`
    and `.weight`), in file order, with how many of its tensors each type stores: a Q4_K_M
    file keeps ffn_down in Q4_K in some layers and Q6_K in others."""
    import re

    groups: dict[str, dict[str, int]] = {}
    for name, kind in tensors:
        group = re.sub(r"\.(weight|bias)$", "", re.sub(r"^blk\.\d+\.", "", name))
        counts = groups.setdefault(group, {})
        counts[kind] = counts.get(kind, 0) + 1
    return [{"group": g, "types": t} for g, t in groups.items()]


def _format_tensor_groups(groups: list[dict[str, Any]]) -> list[str]:
    """One line per set of groups stored alike, in file order:
    "  attn_q, attn_k, ffn_gate, ffn_up  Q5_0", "  ffn_down  Q4_K x9, Q6_K x9"."""
    alike: dict[str, list[str]] = {}
    for g in groups:
        types = g["types"]
        key = (
            ", ".join(f"{k} x{n}" for k, n in types.items())
            if len(types) > 1
            else next(iter(types))
        )
        alike.setdefault(key, []).append(g["group"])
    return [f"  {', '.join(names)}  {key}" for key, names in alike.items()]


def _format_tensor_types(types: list[dict[str, Any]]) -> str:
    """ "Q4_K: 120 tensors (attn_q, ffn_up, ...), Q6_K: 30 (...), F32: 61 (...)"."""
    parts = []
    for i, t in enumerate(types):
        groups = t["groups"]
        shown = ", ".join(groups[:4]) + (", ..." if len(groups) > 4 else "")
        parts.append(f"{t['type']}: {t['tensors']}{' tensors' * (i == 0)} ({shown})")
    return ", ".join(parts)


def describe(
    model: str,
    device: str = "auto",
    dtype: str = "auto",
    max_context: int | None = None,
    quantize: str | None = None,
    kv_cache_dtype: str = "auto",
) -> dict[str, Any]:
    """Everything `info` shows, as a JSON-ready dict."""
    path = Path(model).expanduser()
    if not path.exists():  # (before importing torch: a typo should not take two seconds)
        raise ModelLoadError(f"{path}: no such file or directory; give a model directory or .gguf")
    import torch

    from tui_gen.engine.quantize import KEEP, check_mode
    from tui_gen.models.kv_cache import kv_dtype

    mode = check_mode(quantize)

    from tui_gen.engine.generator import DEFAULT_MAX_CONTEXT
    from tui_gen.engine.loading.loader import (
        _weight_files,
        describe_files,
        load_model,
        resolve_device,
        resolve_dtype,
    )
    from tui_gen.engine.loading.tokenizer import load_tokenizer
    from tui_gen.models.config import read_json
    from tui_gen.models.registry import load_config

    if path.is_file() and path.name == "config.json":
        path = path.parent
    generation_info = None
    type_bytes: dict[str, int] = {}  # GGUF: bytes the file stores per tensor type
    kept_bytes: int | None = None  # GGUF blocks kept as they are (engine/native/gguf_linear.py)
    kept_floats = 0
    types: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    from tui_gen.engine.loading.bdh_checkpoint import find_checkpoint

    if path.is_dir() and find_checkpoint(path) is None:
        cfg = load_config(path)
        tok = load_tokenizer(path, cfg)
        params, stored = _count_parameters(cfg, _weight_files(path))
        gen_config = read_json(path / "generation_config.json", required=False)
        info_path = path / "generation_info.json"
        if info_path.exists():
            generation_info = read_json(info_path, required=False)
        files = sorted(p for p in path.iterdir() if p.is_file())
        source = "safetensors"
    else:  # a .gguf file or a BDH .pt: load it (a GGUF keeps its blocks mapped, as a run would)
        keep = mode in (None, KEEP) and (dtype or "auto").strip().lower() == "auto"
        loaded = load_model(
            path,
            device="cpu",
            dtype="auto" if keep else "float32",
            quantize=None if keep else "none",
        )
        cfg, tok, params = loaded.config, loaded.tokenizer, loaded.num_parameters
        stored, gen_config, files = None, loaded.generation_config, loaded.files
        source = loaded.source_format
        generation_info = loaded.generation_info
        if path.suffix.lower() == ".gguf":
            from tui_gen.engine.loading.gguf_file import read_header

            infos = read_header(path)[1]
            pairs = [(i.name, i.type_name) for i in infos]
            types, groups = tensor_types(pairs), tensor_groups(pairs)
            for i in infos:
                type_bytes[i.type_name] = type_bytes.get(i.type_name, 0) + i.nbytes
        if (loaded.quantization or "").startswith("gguf"):
            from tui_gen.engine.native import gguf_linear

            kept_bytes = sum(gguf_linear.held_bytes(loaded.model).values())
            kept_floats = sum(p.numel() for p in loaded.model.parameters())
    dev = resolve_device(device)
    run_dtype = resolve_dtype(dtype, cfg, dev)
    element = torch.empty((), dtype=run_dtype).element_size()
    cache_dtype = kv_dtype(kv_cache_dtype, run_dtype, cfg.recurrent)
    kv_element = torch.empty((), dtype=cache_dtype).element_size()
    decode_step = _decode_step(dev, run_dtype, cfg)
    native = False  # quantized layers on the native kernels (groups of 32), whatever the dtype
    if mode is not None:
        from tui_gen.engine.native.qlinear import available

        native = available(dev)
    weights = weight_bytes(cfg, params, element, None if mode == KEEP else mode, native)
    if kept_bytes is not None and run_dtype == torch.float32 and mode in (None, KEEP):
        mode, weights = KEEP, kept_bytes + kept_floats * element
    archs = cfg.raw.get("architectures") or []
    cache_len = min(cfg.max_position_embeddings, max_context or DEFAULT_MAX_CONTEXT)
    if cfg.recurrent and max_context is None:
        cache_len = cfg.max_position_embeddings
    return {
        "path": str(path),
        "name": path.resolve().name if path.is_dir() else path.stem,
        "format": source,
        "architecture": cfg.model_type,
        "architectures": archs,
        "family": cfg.arch,
        # GGUF: [{"type": "Q4_K", "tensors": 120, "groups": ["attn_q", ...]}, ...]
        "tensor_types": types,
        # GGUF: [{"group": "ffn_down", "types": {"Q4_K": 9, "Q6_K": 9}}, ...] in file order
        "tensor_groups": groups,
        # which layers attend to a sliding window only, and Gemma 2's tanh soft-caps
        "sliding_window": cfg.sliding_layout(),
        "global_layers": _global_layers(cfg),
        # RoPE bases: Gemma 3 gives its sliding layers their own
        "rope": _rope(cfg),
        "soft_caps": {
            "attention": cfg.attn_logit_softcapping,
            "logits": cfg.final_logit_softcapping,
        },
        "parameters": params,
        "layers": cfg.num_layers,
        "hidden_size": cfg.hidden_size,
        "heads": cfg.num_heads,
        "kv_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "context_length": cfg.max_position_embeddings,
        "vocab_size": cfg.vocab_size,
        "tokenizer_vocab_size": tok.vocab_size,
        "stored_dtype": stored or cfg.dtype,
        "dtype": str(run_dtype).replace("torch.", ""),
        "device": str(dev),
        # --quantize: None (float weights), "int8" or "int4"; weights as held in memory
        "quantization": mode,
        "weight_bytes_in_memory": weights,
        # GGUF: {"Q4_K": bytes, ...} as the file stores them
        "tensor_type_bytes": type_bytes,
        # what the process will hold for the model: weights + the KV cache it preallocates
        # (Python and torch themselves add ~200 MiB)
        "rss_estimate_bytes": weights + cfg.kv_cache_bytes(cache_len, kv_element),
        # "native (avx512)" or "torch (why not)": what decodes one token (engine/native)
        "decode_step": decode_step,
        # kept GGUF blocks: what a prompt's products run in above the kernel's row limit
        "prompt_gemm": _prompt_gemm(dev) if mode == KEEP else None,
        "kv_cache_dtype": str(cache_dtype).replace("torch.", ""),
        "kv_cache_bytes_per_1k_tokens": cfg.kv_cache_bytes(1024, kv_element),
        # what one conversation preallocates with these flags (the cache the app would use)
        "max_context": cache_len,
        "kv_cache_bytes_at_max_context": cfg.kv_cache_bytes(cache_len, kv_element),
        "special_tokens": tok.special_tokens,
        "chat_template": bool(tok.chat_template),
        "files": describe_files(files),
        "generation_config": gen_config,
        "generation_info": generation_info,
        **(_recurrent_info(cfg) if cfg.recurrent else {}),
    }


def _recurrent_info(cfg: Any) -> dict[str, Any]:
    """BDH: the state that replaces the KV cache (the same size at any length)."""
    trained = cfg.trained_context
    return {
        "recurrent": True,
        "latent_size": cfg.head_dim,  # N = mlp_internal_dim_multiplier * D / nh
        "state_bytes": cfg.kv_cache_bytes(1, 4),
        "state_shape": [cfg.num_layers, cfg.num_heads, cfg.head_dim, cfg.hidden_size],
        "context": "recurrent, unbounded" + (f" (trained on {trained:,} bytes)" if trained else ""),
    }


def _global_layers(cfg: ModelConfig) -> list[int] | None:
    """The layers that attend to the whole context, when only some do (else None)."""
    windows = [cfg.layer_window(i) for i in range(cfg.num_layers)]
    if all(w is None for w in windows) or all(w is not None for w in windows):
        return None
    return [i for i, w in enumerate(windows) if w is None]


def _rope(cfg: ModelConfig) -> dict[str, Any] | None:
    if cfg.arch in ("gpt2", "bdh"):  # learned positions / none
        return None
    scaling = cfg.rope_scaling or {}
    kind = scaling.get("rope_type") or scaling.get("type")
    return {
        "theta": cfg.rope_theta,
        "sliding_theta": cfg.rope_local_theta,
        "scaling": kind if kind and kind != "default" else None,
    }


def _number(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,g}"


def _format_rope(rope: dict[str, Any]) -> str:
    text = f"theta {_number(rope['theta'])}"
    if rope["sliding_theta"]:
        text += f" (global layers), {_number(rope['sliding_theta'])} (sliding layers)"
    if rope["scaling"]:
        text += f", scaling {rope['scaling']}"
    return text


def _caps(caps: dict[str, float | None]) -> str:
    given = [f"{k} {v:g}" for k, v in caps.items() if v]
    return ", ".join(given) if given else "none"


def format_text(d: dict[str, Any]) -> str:
    """The human-readable report."""
    arch = d["architecture"]
    if d["architectures"]:
        arch += f" ({', '.join(d['architectures'])})"
    sp = d["special_tokens"]

    def token(name: str, ids: Any) -> str:
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if not ids:
            return f"{name} -"
        return f"{name} {sp.get(name)!r} ({', '.join(map(str, ids))})"

    lines = [
        f"model           {d['name']}  ({d['path']})",
        f"format          {d['format']}",
        f"architecture    {arch}, family {d['family']}",
        f"shape           {d['layers']} layer{'s' * (d['layers'] != 1)}, "
        f"hidden {d['hidden_size']}, {d['heads']} heads ({d['kv_heads']} KV), "
        f"head dim {d['head_dim']}",
        f"family          {d['family']}",
        f"sliding window  {d['sliding_window']}"
        + (f" (layers {', '.join(map(str, d['global_layers']))})" if d["global_layers"] else ""),
        *([f"rope            {_format_rope(d['rope'])}"] if d["rope"] else []),
        f"soft-caps       {_caps(d['soft_caps'])}",
        f"parameters      {d['parameters']:,} ({_human_count(d['parameters'])})",
        f"context length  {d['context_length']:,} tokens",
        f"vocabulary      {d['vocab_size']:,} tokens",
        f"dtype           {d['dtype']} on {d['device']} (stored: {d['stored_dtype'] or '?'})",
        *(
            [f"tensor types    {_format_tensor_types(d['tensor_types'])}"]
            if d["tensor_types"]
            else []
        ),
        *(
            [
                "tensor groups   (quant type of each group of tensors, in file order)",
                *_format_tensor_groups(d["tensor_groups"]),
            ]
            if d["tensor_groups"]
            else []
        ),
        *(
            [f"tensor bytes    {', '.join(f'{k} {_human_bytes(v)}' for k, v in tb.items())}"]
            if (tb := d.get("tensor_type_bytes"))
            else []
        ),
        f"weights         {_human_bytes(d['weight_bytes_in_memory'])} in memory"
        + (
            " (the file's quantized types, memory-mapped; --dtype float32 dequantizes)"
            if d["quantization"] == "keep"
            else f" ({d['quantization']} weight-only quantization, --quantize)"
            if d["quantization"]
            else f" ({d['dtype']}; --quantize int8|int4 for less)"
        ),
        f"RSS estimate    {_human_bytes(d['rss_estimate_bytes'])} (weights + KV cache at "
        f"--max-context {d['max_context']:,}; Python and torch add ~200 MiB)",
        f"decode step     {d['decode_step']}",
        *([f"prompt GEMM     {g}"] if (g := d.get("prompt_gemm")) else []),
        f"KV cache        {_human_bytes(d['kv_cache_bytes_per_1k_tokens'])} per 1K tokens "
        f"({d['kv_cache_dtype']}); {_human_bytes(d['kv_cache_bytes_at_max_context'])} at "
        f"--max-context {d['max_context']:,}",
        f"special tokens  {token('bos', sp.get('bos_id'))}, {token('eos', sp.get('eos_ids'))}, "
        f"pad {sp.get('pad_id') if sp.get('pad_id') is not None else '-'}",
        f"chat template   {'yes' if d['chat_template'] else 'no (plain User:/Assistant: format)'}",
        "files",
    ]
    if d.get("recurrent"):  # BDH: the state replaces the KV cache and the context limit
        L, nh, N, D = d["state_shape"]
        lines[5] = f"context length  {d['context']}"
        lines[3] = f"shape           {L} layers, one set of weights, D {D}, {nh} heads, N {N}"
        w = next(i for i, ln in enumerate(lines) if ln.startswith("weights"))
        lines[w] = lines[w].replace("--quantize int8|int4", "--dtype bfloat16")
        kv = next(i for i, ln in enumerate(lines) if ln.startswith("KV cache"))
        lines[kv] = (
            f"state           {_human_bytes(d['state_bytes'])} (layers x heads x N x D = "
            f"{L} x {nh} x {N} x {D}, float32), the same at any length"
        )
    width = max((len(f["name"]) for f in d["files"]), default=0)
    for f in d["files"]:
        lines.append(f"  {f['name']:<{width}}  {_human_bytes(f['bytes']):>9}")
    if d["generation_config"]:
        gc = ", ".join(
            f"{k}={v}" for k, v in d["generation_config"].items() if k not in _BOOKKEEPING
        )
        lines.append(f"generation_config.json  {gc or '(nothing that changes generation)'}")
    if d["generation_info"] is not None:
        lines.append("generation_info.json")
        text = json.dumps(d["generation_info"], indent=2, ensure_ascii=False)
        lines.extend("  " + ln for ln in text.splitlines())
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    d = describe(
        args.model,
        device=args.device,
        dtype=args.dtype,
        max_context=args.max_context,
        quantize=getattr(args, "quantize", None),
        kv_cache_dtype=getattr(args, "kv_cache_dtype", "auto"),
    )
    # names and values come from the model's files: nothing in them may drive the terminal
    if args.json:
        print_stdout(json_line(d, indent=2, default=str))
    else:
        print_stdout(sanitize(format_text(d)))
    return 0
