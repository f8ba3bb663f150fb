"""Open GGUF files natively: the registry's family reads the config and tensor names.

gguf_file.py parses the container, gguf_quants.py dequantizes; this module asks the registry
(tui_gen.models.registry) which family reads the file's `general.architecture`, builds the
HF-style config.json with the family's `GGUFFormat.config`, checks every tensor against the
family's `expected_shapes`, and yields HF-named float tensors, undoing llama.cpp's q/k row
permutation where the family says it applies. `import_gguf` writes the result as a Hugging
Face-style model directory.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tui_gen.engine.loading.gguf_file import GGML_TYPES, TensorInfo, read_header
from tui_gen.engine.loading.gguf_quants import KERNELS, dequantize, gguf_fallback
from tui_gen.errors import ModelLoadError, TuiGenError, UnsupportedModelError
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import Family, GGUFFormat
from tui_gen.models.registry import check_weights, for_gguf, gguf_architectures, parse_config

if TYPE_CHECKING:
    import tokenizers


def unpermute_rows(w: Any, n_head: int) -> Any:
    """Undo llama.cpp's q/k row order: per head it stores (pair, 2) where HF has (2, pair).
    Works on a torch tensor or a numpy array (the (1, 2) swap is spelled alike in both)."""
    rows = w.shape[0]
    heads = w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
    return heads.swapaxes(1, 2).reshape(w.shape)


class _Metadata:
    """A file's metadata as a family's `GGUFFormat.config` reads it (models.family.GGUFMetadata)."""

    def __init__(
        self, path: Path, architecture: str, meta: dict[str, Any], infos: list[TensorInfo]
    ) -> None:
        self.path, self.architecture = path, architecture
        self._meta = meta
        self._infos = {i.name: i for i in infos}

    def raw(self, key: str, default: Any = None) -> Any:
        return self._meta.get(key, default)

    def get(self, key: str, default: Any = None) -> Any:
        full = f"{self.architecture}.{key}"
        return _scalar(self._meta.get(full, default), full, self.path)

    def require(self, key: str) -> Any:
        full = f"{self.architecture}.{key}"
        return _scalar(_required(self._meta, full, self.path), full, self.path)

    def tensor_shape(self, name: str) -> tuple[int, ...] | None:
        info = self._infos.get(name)
        return None if info is None else info.shape

    def read_tensor(self, name: str) -> torch.Tensor:
        info = self._infos[name]
        with self.path.open("rb") as f:
            f.seek(info.offset)
            raw = torch.frombuffer(bytearray(f.read(info.nbytes)), dtype=torch.uint8)
        return dequantize(raw, info.type_id, info.shape)


@dataclass
class GGUFCheckpoint:
    path: Path
    config: dict[str, Any]  # HF-style config.json
    tokenizer: tokenizers.Tokenizer
    tokenizer_config: dict[str, Any]  # bos/eos/pad/unk token strings, chat_template, ...
    generation_config: dict[str, Any]  # bos_token_id, eos_token_id
    file_type: str  # majority quant type, for display
    family: Family
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    tensor_infos: list[TensorInfo] = field(default_factory=list, repr=False)

    @property
    def format(self) -> GGUFFormat:
        assert self.family.gguf is not None
        return self.family.gguf

    def hf_tensor_infos(self) -> Iterator[tuple[str, TensorInfo]]:
        """(HF name, TensorInfo) for every tensor the model needs, in file order."""
        tied = self.config.get("tie_word_embeddings", False)
        for info in self.tensor_infos:
            name = self.format.tensor_name(info.name)
            if name is None or (tied and name == "lm_head.weight"):
                continue
            yield name, info

    def blocks(self, names: set[str]) -> Iterator[tuple[str, torch.Tensor, TensorInfo]]:
        """(HF name, raw blocks (rows, row bytes) uint8, info) for the tensors in `names`, as
        views of the memory-mapped file: nothing is read until a kernel touches it.

        The mapping is private (copy-on-write): nothing writes to it, and a writable buffer is
        what torch.frombuffer wants; the views keep the mapping alive. Rows llama.cpp permuted
        (q/k of Llama-like files) are a permuted copy of that tensor's blocks, and the mapped
        pages they came from are dropped again.
        """
        from tui_gen.models.linear import release_pages

        permuted_heads, cfg = self.format.permuted_heads, parse_config(self.config, str(self.path))
        with self.path.open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        whole = torch.frombuffer(mapped, dtype=torch.uint8)
        for name, info in self.hf_tensor_infos():
            if name not in names:
                continue
            rows = info.shape[0]
            raw = whole[info.offset : info.offset + info.nbytes].view(rows, -1)
            heads = permuted_heads(name, cfg)
            if heads is not None:
                # numpy's copy, not torch's: torch splits even this small copy over OpenMP
                # threads, and with the other core busy each tensor waited ~8 ms for a thread
                src = raw
                raw = torch.from_numpy(np.ascontiguousarray(unpermute_rows(raw.numpy(), heads)))
                release_pages(src)
            yield name, raw, info

    def tensors(
        self, dtype: torch.dtype = torch.float32, skip: frozenset[str] = frozenset()
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """(HF name, tensor) pairs, read and dequantized one at a time (but those in `skip`).

        Until the iteration ends, torch runs on one thread: the kernels are memory-bound, OpenMP
        threads spin for seconds when another process holds the other core, and switching the
        thread count per tensor costs more than it saves. The count is restored at the end (or
        when the iterator is closed).
        """
        permuted_heads, cfg = self.format.permuted_heads, parse_config(self.config, str(self.path))
        wanted = [(n, i) for n, i in self.hf_tensor_infos() if n not in skip]
        # One read buffer for all tensors: fresh memory is slow on VMs, reused memory is not.
        scratch = torch.empty(max((i.nbytes for _, i in wanted), default=0), dtype=torch.uint8)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with self.path.open("rb", buffering=0) as f:
                for name, info in wanted:
                    raw = scratch[: info.nbytes]
                    f.seek(info.offset)
                    if f.readinto(_buffer(raw)) != info.nbytes:
                        raise ModelLoadError(f"{self.path}: truncated; download the file again")
                    heads = permuted_heads(name, cfg)
                    if heads is not None:
                        # Permute whole rows of raw blocks: cheaper than permuting floats.
                        rows = info.shape[0]
                        raw = unpermute_rows(raw.reshape(rows, -1), heads).reshape(-1)
                    t = dequantize(raw, info.type_id, info.shape)
                    if self.format.transposed(name):  # GPT-2's Conv1D weights
                        t = t.t().contiguous()
                    if self.format.adjust is not None:
                        t = self.format.adjust(name, t)
                    yield name, t if dtype == torch.float32 else t.to(dtype)
        finally:
            torch.set_num_threads(threads)

    def state_dict(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        return dict(self.tensors(dtype))


def _buffer(t: torch.Tensor) -> memoryview:
    """A view of a contiguous CPU uint8 tensor's bytes (for readinto and write); it keeps the
    tensor's memory alive."""
    return t.numpy().data


def _required(meta: dict[str, Any], key: str, path: Path) -> Any:
    if key not in meta:
        raise ModelLoadError(
            f"{path}: metadata key {key!r} is missing; re-convert the model with a recent llama.cpp"
        )
    return meta[key]


def _scalar(v: Any, key: str, path: Path) -> Any:
    """Some keys may be per-layer arrays; we support them only when all layers agree."""
    if isinstance(v, (np.ndarray, list)):
        values = set(np.asarray(v).tolist())
        if len(values) != 1:
            raise UnsupportedModelError(
                f"{path}: {key} differs between layers ({sorted(values)[:4]}...); such models "
                "are not supported, use a model with uniform layers"
            )
        return values.pop()
    return v


#: llama.cpp's `general.file_type` (LLAMA_FTYPE_*) -> its name, for the types we can read
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
              14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
              32: "BF16"}  # fmt: skip


def _file_type(meta: dict[str, Any], infos: list[TensorInfo], majority: str) -> str:
    """The label the converter gave the file (`general.file_type`: "Q4_K_M" for a file whose
    weights mix Q4_K, Q5_0, Q6_K and Q8_0, most of them by size Q8_0 since the 262k-row
    embedding is kept at 8 bits), when its base type is among the file's matrices; else the
    type that holds most weights (some writers leave the label at 0, "F32", whatever they
    store)."""
    code = meta.get("general.file_type")
    label = FILE_TYPES.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    if label is None:
        return majority
    base = label.removesuffix("_S").removesuffix("_M")
    if any(i.type_name == base for i in infos if len(i.shape) >= 2):
        return label
    return majority


def _check_tensors(path: Path, fmt: GGUFFormat, cfg: ModelConfig, infos: list[TensorInfo]) -> str:
    """Every tensor named, shaped and typed as the config implies; returns the majority type."""
    expected = fmt.expected_shapes(cfg)
    seen: set[str] = set()
    weights: Counter[str] = Counter()
    for info in infos:
        name = fmt.tensor_name(info.name)
        if name is None:
            if info.name in fmt.skip:
                continue
            raise UnsupportedModelError(
                f"{path}: unexpected tensor {info.name!r} for a {cfg.model_type} model; "
                f"supported architectures: {', '.join(gguf_architectures())}"
            )
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        if name not in expected:
            raise UnsupportedModelError(
                f"{path}: unexpected tensor {info.name!r} for a {cfg.model_type} model"
            )
        if info.shape != expected[name]:
            raise ModelLoadError(
                f"{path}: tensor {info.name!r} has shape {info.shape} but the metadata implies "
                f"{expected[name]}; the file is corrupt or from an unsupported converter"
            )
        if info.type_id not in KERNELS and gguf_fallback(info.type_id) is None:
            hint = (
                "install the gguf package (pip install 'tui-gen[gguf]') or use"
                if info.type_id in GGML_TYPES and info.type_id not in (9, 15, 24, 25, 26, 27, 28)
                else "use"
            )
            raise UnsupportedModelError(
                f"{path}: unsupported quant type {info.type_name} (tensor {info.name}); {hint} "
                "a GGUF quantized as F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K "
                "or Q6_K"
            )
        seen.add(name)
        if len(info.shape) >= 2:
            weights[info.type_name] += math.prod(info.shape)
    missing = [k for k in expected if k not in seen]
    if missing:
        raise ModelLoadError(
            f"{path}: tensor(s) {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
            "are missing; the file is incomplete, download it again"
        )
    return weights.most_common(1)[0][0] if weights else "F32"


def _build_config(
    path: Path, family: Family, meta: dict[str, Any], infos: list[TensorInfo]
) -> dict[str, Any]:
    """config.json from the family's reading of the metadata, plus the tokenizer's ids."""
    assert family.gguf is not None
    arch = str(meta["general.architecture"])
    cfg = family.gguf.config(_Metadata(path, arch, meta, infos))
    spm = meta.get("tokenizer.ggml.model") == "llama"  # llama.cpp's defaults: <s>=1, </s>=2
    tok_meta = {
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id", 1 if spm else None),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id", 2 if spm else None),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
    }
    cfg |= {k: (int(v) if v is not None else None) for k, v in tok_meta.items()}
    cfg["torch_dtype"] = "float32"
    if meta.get("general.name"):
        cfg["_name_or_path"] = str(meta["general.name"])
    return cfg


def open_gguf(path: str | Path) -> GGUFCheckpoint:
    """Read a GGUF file's metadata, config and tokenizer; weights are read by `.tensors()`."""
    path = Path(path).expanduser()
    meta, infos = read_header(path)
    try:
        return _open(path, meta, infos)
    except TuiGenError:
        raise
    except (TypeError, ValueError, OverflowError, AttributeError) as e:
        # a metadata value of the wrong type (a string width, an array where a number goes)
        raise ModelLoadError(
            f"{path}: metadata value of the wrong type ({e}); the file is corrupt or from an "
            "unsupported converter"
        ) from None


def _open(path: Path, meta: dict[str, Any], infos: list[TensorInfo]) -> GGUFCheckpoint:
    from tui_gen.engine.loading.gguf_tokenizer import build_tokenizer

    splits = meta.get("split.count", 1)
    if isinstance(splits, bool) or not isinstance(splits, int):
        raise ModelLoadError(
            f"{path}: metadata split.count is {type(splits).__name__}, not an integer; the file "
            "is corrupt"
        )
    if splits > 1:
        raise UnsupportedModelError(
            f"{path}: is one part of a split GGUF ({meta['split.count']} parts); merge them "
            "first with `llama-gguf-split --merge FIRST-PART.gguf OUT.gguf`"
        )
    family = for_gguf(_required(meta, "general.architecture", path), str(path))
    config = _build_config(path, family, meta, infos)
    cfg = parse_config(config, str(path))  # the engine's own checks (heads divide evenly, ...)
    check_weights(cfg, sum(math.prod(i.shape) for i in infos), str(path))
    assert family.gguf is not None
    file_type = _file_type(meta, infos, _check_tensors(path, family.gguf, cfg, infos))
    tokenizer, tokenizer_config = build_tokenizer(meta, path)
    if tokenizer.get_vocab_size(with_added_tokens=True) > config["vocab_size"]:
        raise ModelLoadError(
            f"{path}: the tokenizer has {tokenizer.get_vocab_size()} tokens but the embedding "
            f"only {config['vocab_size']} rows; the file is corrupt"
        )
    eos_ids = [config["eos_token_id"]]
    for key in ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        extra = meta.get(key)
        if extra is not None and int(extra) not in eos_ids and int(extra) < config["vocab_size"]:
            eos_ids.append(int(extra))
    for token in family.gguf.extra_eos:
        extra = tokenizer.token_to_id(token)
        if extra is not None and extra not in eos_ids and extra < config["vocab_size"]:
            eos_ids.append(extra)
    eos_ids = [i for i in eos_ids if i is not None]
    generation_config = {
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else (eos_ids or None),
    }
    if config.get("pad_token_id") is not None:
        generation_config["pad_token_id"] = config["pad_token_id"]
    tokenizer_config.setdefault("model_max_length", config["max_position_embeddings"])
    return GGUFCheckpoint(
        path=path,
        config=config,
        tokenizer=tokenizer,
        tokenizer_config=tokenizer_config,
        generation_config=generation_config,
        file_type=file_type,
        family=family,
        metadata=meta,
        tensor_infos=infos,
    )


# --------------------------------------------------------------------------- import


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def _write_safetensors(out: Path, ckpt: GGUFCheckpoint, dtype: torch.dtype) -> None:
    """Stream tensors into a safetensors file, one in memory at a time (the header is known
    from the GGUF's tensor table before anything is dequantized)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    start = 0
    for name, info in ckpt.hf_tensor_infos():
        n = math.prod(info.shape) * itemsize
        shape = info.shape[::-1] if ckpt.format.transposed(name) else info.shape  # GPT-2 Conv1D
        header[name] = {"dtype": _ST_DTYPES[dtype], "shape": list(shape),
                        "data_offsets": [start, start + n]}  # fmt: skip
        start += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = out.with_suffix(".safetensors.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for name, t in ckpt.tensors(dtype):
                assert header[name]["shape"] == list(t.shape)
                f.write(_buffer(t.contiguous().view(torch.uint8)))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or Ctrl+C leaves no half-written file
        raise


def import_gguf(path: str | Path, out_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write a GGUF file as a Hugging Face-style model directory and return the directory.

    The directory holds config.json, model.safetensors, tokenizer.json, tokenizer_config.json
    (with the chat template) and generation_config.json; tui-gen and transformers both open it.
    """
    ckpt = open_gguf(path)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ModelLoadError(f"{out}: exists and is not a directory; choose another output path")
    if dtype not in _ST_DTYPES:
        raise ValueError(f"dtype {dtype} not supported; use float32, float16 or bfloat16")
    created = not out.exists()
    written: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_files(out, ckpt, dtype, written)
    except OSError as e:
        # a read-only or full disk: one line, and nothing half-written left behind
        for f in written:
            f.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise TuiGenError(
            f"{out}: cannot write the imported model ({e.strerror}); nothing was kept; "
            "free some space or choose another directory"
        ) from None
    return out


def _write_files(out: Path, ckpt: GGUFCheckpoint, dtype: torch.dtype, written: list[Path]) -> None:
    """import_gguf's files, each appended to `written` once it is (being) replaced."""
    config = dict(ckpt.config, torch_dtype=str(dtype).removeprefix("torch."))
    _write_safetensors(out / "model.safetensors", ckpt, dtype)  # removes its .tmp on failure
    written.append(out / "model.safetensors")
    written.append(out / "tokenizer.json")
    (out / "tokenizer.json").write_text(
        ckpt.tokenizer.to_str(pretty=True), "utf-8"
    )  # errors are OSErrors
    tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
               **ckpt.tokenizer_config}  # fmt: skip
    files = {
        "config.json": config,
        "generation_config.json": ckpt.generation_config,
        "tokenizer_config.json": tok_cfg,
    }
    for name, data in files.items():
        written.append(out / name)
        (out / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
