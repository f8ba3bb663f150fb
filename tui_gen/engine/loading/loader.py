"""Open a model: a Hugging Face-style directory (or a GGUF file) -> model, tokenizer, defaults.

Weights are read tensor by tensor into a model built without initialisation (its untouched
parameters cost no memory) and assigned in place, so loading never holds a second full copy of
the weights: peak memory is about one copy plus one tensor.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tui_gen.engine.loading.tokenizer import (
    HFTokenizer,
    Tokenizer,
    load_tokenizer,
    resolve_specials,
)
from tui_gen.errors import ModelLoadError, TuiGenError
from tui_gen.models.config import ModelConfig, check_regular, read_json
from tui_gen.models.family import CausalLM
from tui_gen.models.registry import check_weights, load_config, model_class, parse_config

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


@dataclass
class LoadedModel:
    """Everything the generator needs, already on its device."""

    path: Path
    name: str
    config: ModelConfig
    model: nn.Module
    tokenizer: Tokenizer
    device: torch.device
    dtype: torch.dtype
    generation_config: dict[str, Any] = field(default_factory=dict)
    generation_info: dict[str, Any] | None = None
    files: list[Path] = field(default_factory=list)
    load_seconds: float = 0.0
    source_format: str = "safetensors"  # or "gguf:Q4_1" etc.
    #: --quantize: engine.quantize.describe() of the swapped layers, None when not quantized
    quantization: str | None = None
    _float_parameters: int | None = field(default=None, repr=False)

    @property
    def num_parameters(self) -> int:
        if self._float_parameters is not None:  # quantized: the layers hold buffers now
            return self._float_parameters
        seen: set[int] = set()
        total = 0
        for p in self.model.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        return total


def resolve_device(spec: str = "auto") -> torch.device:
    """auto = cuda, then mps, then cpu; an unavailable device is a clear error."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise TuiGenError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TuiGenError("device cuda requested but CUDA is not available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TuiGenError(
                f"device {spec} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise TuiGenError("device mps requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise TuiGenError(f"unsupported device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def resolve_dtype(spec: str, cfg: ModelConfig, device: torch.device) -> torch.dtype:
    """auto = the dtype the checkpoint declares, but float16 on the CPU (slow there) is float32."""
    spec = (spec or "auto").strip().lower()
    if spec != "auto":
        if spec not in DTYPES:
            raise TuiGenError(f"unknown dtype {spec!r}; use auto, float32, bfloat16 or float16")
        return DTYPES[spec]
    declared = DTYPES.get((cfg.dtype or "float32").lower(), torch.float32)
    if device.type == "cpu" and declared == torch.float16:
        return torch.float32
    return declared


def _weight_files(model_dir: Path) -> list[Path]:
    single = model_dir / "model.safetensors"
    index = model_dir / "model.safetensors.index.json"
    check_regular(single)
    if single.exists():
        return [single]
    if index.exists():
        data = read_json(index)
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelLoadError(f"{index}: no weight_map; re-save the sharded checkpoint")
        files = [model_dir / name for name in dict.fromkeys(weight_map.values())]
        for f in files:
            check_regular(f)
            if not f.exists():
                raise ModelLoadError(f"{f}: shard listed in {index.name} is missing")
        return files
    if (model_dir / "pytorch_model.bin").exists():
        raise ModelLoadError(
            f"{model_dir}: only pytorch_model.bin found; tui-gen reads safetensors (convert with "
            "`model.save_pretrained(dir, safe_serialization=True)`)"
        )
    raise ModelLoadError(
        f"{single}: file not found; a model directory needs model.safetensors "
        "(or model.safetensors.index.json with its shards)"
    )


#: a safetensors header larger than this is not a model's tensor table (real ones are < 1 MB)
MAX_SAFETENSORS_HEADER = 100 << 20


def _checkpoint_elements(files: list[Path]) -> int:
    """How many numbers the weight files hold, from their headers alone (nothing is read)."""
    total = 0
    for path in files:
        try:
            with path.open("rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > min(MAX_SAFETENSORS_HEADER, path.stat().st_size):
                    raise ValueError(f"header of {n} bytes")
                header = json.loads(f.read(n))
            for key, entry in header.items():
                if key != "__metadata__":
                    total += math.prod(int(d) for d in entry["shape"])
        except (struct.error, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise ModelLoadError(
                f"{path}: not a readable safetensors file (bad header); the file is truncated or "
                "corrupt, download or export it again"
            ) from None
    return total


def _safetensors_tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor, Path]]:
    from safetensors import safe_open

    for path in files:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    yield key, f.get_tensor(key), path
        except TuiGenError:
            raise
        except Exception as e:  # SafetensorError, OSError, or a torch error on bad bytes
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelLoadError(
                f"{path}: not a readable safetensors file ({msg}); the file is truncated or "
                "corrupt, download or export it again"
            ) from None


@contextmanager
def _uninitialized() -> Iterator[None]:
    """Build modules without running their random initialisation.

    The parameters are allocated but never touched, so the operating system never backs them
    with memory before `assign=True` replaces them with the checkpoint's tensors. (Building on
    the `meta` device does the same but its first use imports ~2 s of torch internals.)
    """
    classes: tuple[type[nn.Module], ...] = (nn.Linear, nn.Embedding, nn.LayerNorm)
    saved = {c: vars(c)["reset_parameters"] for c in classes}
    try:
        for c in classes:
            setattr(c, "reset_parameters", _no_init)  # noqa: B010 - a method, patched
        yield
    finally:
        for c, fn in saved.items():
            setattr(c, "reset_parameters", fn)  # noqa: B010


def _no_init(self: nn.Module) -> None:
    pass


def materialize(
    cfg: ModelConfig,
    tensors: Iterator[tuple[str, torch.Tensor, Path]],
    device: torch.device,
    dtype: torch.dtype,
    deferred: frozenset[str] = frozenset(),
) -> CausalLM:
    """Build the model uninitialised, then assign each checkpoint tensor once its shape checks.

    Names in `deferred` may be missing: the caller installs them afterwards (a GGUF file's
    quantized matrices, engine/native/gguf_linear.py)."""
    cls = model_class(cfg)
    with _uninitialized():
        model = cls(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    for raw_name, tensor, source in tensors:
        mapped = cls.convert_weight(raw_name, tensor, cfg)
        if mapped is None:
            continue
        name, tensor = mapped
        if name not in expected:
            if name == "lm_head.weight" and cfg.tie_word_embeddings:
                continue  # some writers save the tied head twice
            raise ModelLoadError(
                f"{source}: unexpected tensor {raw_name!r} for a {cfg.model_type} model; "
                "config.json and the weights do not belong together"
            )
        if tuple(tensor.shape) != tuple(expected[name]):
            raise ModelLoadError(
                f"{source}: tensor {raw_name!r} has shape {tuple(tensor.shape)} but config.json "
                f"implies {tuple(expected[name])}; config.json and the weights do not match"
            )
        state[name] = tensor.to(device=device, dtype=dtype).contiguous()
    tied = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    missing = [k for k in expected if k not in state and k not in tied and k not in deferred]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ModelLoadError(
            f"weights are missing {', '.join(missing[:3])}{more}; the checkpoint is incomplete "
            "or was saved for another architecture"
        )
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_word_embeddings and "lm_head.weight" in expected:
        head = model.get_submodule("lm_head")
        head.weight = model.get_input_embeddings().weight
    model.eval().requires_grad_(False)
    return model


def _check_vocab(cfg: ModelConfig, tok: Tokenizer, where: Path) -> None:
    if tok.vocab_size > cfg.vocab_size:
        raise ModelLoadError(
            f"{where}: the tokenizer has {tok.vocab_size} tokens but the model only "
            f"{cfg.vocab_size}; tokenizer.json belongs to another model"
        )


def load_model(
    path: str | Path, device: str = "auto", dtype: str = "auto", quantize: str | None = None
) -> LoadedModel:
    """Open a model directory (config.json + safetensors + tokenizer.json) or a .gguf file.

    `quantize` ("int8" | "int4" | None) swaps the linear layers for weight-only quantized ones
    after loading (engine/quantize.py); an unknown mode fails before any weight is read. A GGUF
    file keeps its own quantized types by default (None or "keep") when it is opened with
    dtype "auto" on a CPU with the native kernels; `dtype="float32"` or `quantize="none"`
    dequantizes it as before.
    """
    from tui_gen.engine.quantize import KEEP, MODES, check_mode

    mode = check_mode(quantize)
    try:
        loaded = _load_float(path, device, dtype, keep=quantize is None or mode == KEEP)
    except PermissionError as e:  # an unreadable directory or file, wherever it is met
        raise ModelLoadError(
            f"{e.filename or path}: permission denied; make the model files readable"
        ) from None
    return apply_quantization(loaded, mode) if mode in MODES else loaded


def apply_quantization(loaded: LoadedModel, mode: str) -> LoadedModel:
    """Quantize an already loaded model in place (once); load_seconds includes the time."""
    from tui_gen.engine.quantize import describe, quantize_model

    if loaded.quantization is not None:
        return loaded
    if getattr(loaded.model, "recurrent", False):  # BDH (models/bdh.py)
        raise TuiGenError(
            "--quantize does not apply to BDH: its weights are shared (nh, D, N) tensors, not "
            "linear layers; use --dtype bfloat16 to halve them"
        )
    t = time.perf_counter()
    loaded._float_parameters = loaded.num_parameters
    fuse = getattr(loaded.model, "fuse_projections", None)
    if fuse is not None:  # quantize the fused matrices: fewer kernel calls, same numbers
        fuse()
    quantize_model(loaded.model, mode)
    loaded.quantization = describe(loaded.model)
    loaded.load_seconds += time.perf_counter() - t
    return loaded


def _load_float(path: str | Path, device: str, dtype: str, keep: bool = False) -> LoadedModel:
    t0 = time.perf_counter()
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory; give a model directory or .gguf")
    if not path.is_dir():
        check_regular(path)  # a FIFO or device would block or never end
    from tui_gen.engine.loading.bdh_checkpoint import find_checkpoint

    ckpt = find_checkpoint(path)  # a BDH train.py .pt/.pth (with config.json beside it)
    if ckpt is not None:
        return _load_bdh_checkpoint(ckpt, device, dtype, t0)
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return _load_gguf(path, device, dtype, t0, keep)
        if path.name == "config.json":
            path = path.parent
        else:
            raise ModelLoadError(
                f"{path}: not a model; give a directory with config.json or a .gguf file"
            )
    cfg = load_config(path)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, cfg, dev)
    tok = load_tokenizer(path, cfg)
    _check_vocab(cfg, tok, path / "tokenizer.json")
    files = _weight_files(path)
    check_weights(cfg, _checkpoint_elements(files), str(path / "config.json"))
    model = materialize(cfg, _safetensors_tensors(files), dev, dt)
    info_path = path / "generation_info.json"
    return LoadedModel(
        path=path,
        name=path.resolve().name,
        config=cfg,
        model=model,
        tokenizer=tok,
        device=dev,
        dtype=dt,
        generation_config=read_json(path / "generation_config.json", required=False),
        generation_info=read_json(info_path, required=False) if info_path.exists() else None,
        files=[p for p in sorted(path.iterdir()) if p.is_file()],
        load_seconds=time.perf_counter() - t0,
    )


def _load_gguf(path: Path, device: str, dtype: str, t0: float, keep: bool) -> LoadedModel:
    from tui_gen.engine.loading.gguf_reader import open_gguf

    ckpt = open_gguf(path)
    cfg = parse_config(ckpt.config, str(path))
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, cfg, dev)
    specials = resolve_specials(
        ckpt.tokenizer, ckpt.tokenizer_config, {}, ckpt.generation_config, ckpt.config
    )
    specials["chat_template"] = ckpt.tokenizer_config.get("chat_template")
    tok = HFTokenizer(ckpt.tokenizer, specials)
    _check_vocab(cfg, tok, path)
    kept: frozenset[str] = frozenset()
    if keep and (dtype or "auto").strip().lower() == "auto":  # the file's own types
        from tui_gen.engine.loading import gguf_keep

        if not gguf_keep.keep_reason(dev):
            kept = gguf_keep.kept_names(ckpt, cfg)
    skip = kept
    tensors = ((name, t, path) for name, t in ckpt.tensors(torch.float32, skip=skip))
    model = materialize(cfg, tensors, dev, dt, deferred=kept)
    quantization, params = None, None
    if kept:
        from tui_gen.engine.native import gguf_linear, prompt_kernels

        gguf_keep.install_blocks(model, ckpt, cfg, kept)
        # native kernels for the prompt's forward; its attention multiplies in the dtype its
        # GEMMs do (bfloat16 where the CPU can)
        prompt_kernels.install(model, gguf_linear.gemm_dtype(dev))
        quantization, params = gguf_linear.describe(model), gguf_keep.parameters(ckpt)
    return LoadedModel(
        path=path,
        name=path.stem,
        config=cfg,
        model=model,
        tokenizer=tok,
        device=dev,
        dtype=dt,
        generation_config=ckpt.generation_config,
        files=[path],
        load_seconds=time.perf_counter() - t0,
        source_format=f"gguf:{ckpt.file_type}",
        quantization=quantization,
        _float_parameters=params,
    )


def _load_bdh_checkpoint(path: Path, device: str, dtype: str, t0: float) -> LoadedModel:
    """A BDH checkpoint as train.py writes it (bdh_checkpoint.py reads it without pickle code);
    `tui-gen import` turns it into a safetensors directory once."""
    from tui_gen.engine.loading.bdh_checkpoint import config_for, read_state_dict
    from tui_gen.engine.loading.tokenizer import ByteTokenizer

    state = read_state_dict(path)
    cfg = parse_config(config_for(state, path.parent / "config.json", None), str(path))
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, cfg, dev)
    model = materialize(cfg, ((k, t, path) for k, t in state.items()), dev, dt)
    return LoadedModel(
        path=path,
        name=path.parent.resolve().name if path.parent.name else path.stem,
        config=cfg,
        model=model,
        tokenizer=ByteTokenizer(),
        device=dev,
        dtype=dt,
        generation_config=read_json(path.parent / "generation_config.json", required=False),
        files=[path],
        load_seconds=time.perf_counter() - t0,
        source_format="bdh checkpoint (.pt)",
    )


def describe_files(files: list[Path]) -> list[dict[str, Any]]:
    return [{"name": f.name, "bytes": f.stat().st_size} for f in files]
