"""The x4 layout (ggml_x4.h): 32-element GGUF blocks repacked four rows to a block.

It must hold exactly the file's bytes (unpacking gives them back), compute what the file
layout computes (the same integer dots and scales, summed in another order), keep a row's
result bit-identical alone and in a batch, and be used only where it applies: the types it
has, rows in fours, a build with its AVX-512 kernels."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import pytest
import torch
from gguf import GGMLQuantizationType as Q
from test_gguf_blocks import _rel, blocks, quantized_activations, reference_weight

from tui_gen.engine.loading.gguf_file import GGML_TYPES
from tui_gen.engine.native import build, gguf_linear
from tui_gen.engine.native.gguf_linear import LAYOUT_FILE, LAYOUT_X4, GGUFLinear

X4 = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


def _has_x4() -> bool:
    lib = build.load()
    return lib is not None and bool(lib.gg_x4_available())


needs_x4 = pytest.mark.skipif(
    not _has_x4(), reason="this build has no AVX-512 VNNI kernels: the x4 layout is never used"
)


def _py_pack(raw: torch.Tensor, qtype: str, k: int) -> bytes:
    """The x4 layout as ggml_x4.h describes it, written out in Python: per group of four rows
    and block, the four d, the four m (Q4_1, Q5_1), the four rows' fifth bits of elements 0-15
    then of 16-31 (Q5_0, Q5_1), then the rows' values one after another."""
    size = GGML_TYPES[Q[qtype].value][2]
    one, five = qtype in ("Q4_1", "Q5_1"), qtype in ("Q5_0", "Q5_1")
    rows, nb = raw.shape[0], k // 32
    data = raw.numpy().tobytes()
    out = bytearray()
    for g in range(rows // 4):
        for b in range(nb):
            blk = [data[((4 * g + r) * nb + b) * size :][:size] for r in range(4)]
            out += b"".join(x[0:2] for x in blk)
            if one:
                out += b"".join(x[2:4] for x in blk)
            at = 2 + 2 * one
            if five:
                out += b"".join(x[at : at + 2] for x in blk)
                out += b"".join(x[at + 2 : at + 4] for x in blk)
            out += b"".join(x[at + 4 * five :] for x in blk)
    return bytes(out)


@pytest.mark.parametrize("qtype", X4)
def test_the_layout_is_what_the_header_describes(qtype: str) -> None:
    """x4_unpack (torch, needed on any CPU a packed model could move to) inverts the layout;
    where the kernels exist, the C packer writes exactly it."""
    raw = blocks(qtype, 12, 96, 1)
    spec = torch.frombuffer(bytearray(_py_pack(raw, qtype, 96)), dtype=torch.uint8)
    spec = spec.view(raw.shape)
    assert not torch.equal(spec, raw)  # reordered, not copied
    assert torch.equal(gguf_linear.x4_unpack(spec, Q[qtype].value, 96), raw)
    # the torch fallback (another dtype, another device, no library) reads the layout too
    half = gguf_linear.dequantize_rows(spec, Q[qtype].value, 96, torch.float16, LAYOUT_X4)
    assert torch.equal(half, reference_weight(raw, qtype, 96).to(torch.float16))
    if _has_x4():
        packed = gguf_linear.x4_pack(raw, Q[qtype].value, 96)
        assert packed is not None and torch.equal(packed, spec)


@needs_x4
@pytest.mark.parametrize("qtype", X4)
def test_packing_keeps_the_files_bytes(qtype: str) -> None:
    raw = blocks(qtype, 12, 96, 1)
    packed = gguf_linear.x4_pack(raw, Q[qtype].value, 96)
    assert packed is not None and packed.shape == raw.shape
    assert torch.equal(gguf_linear.x4_unpack(packed, Q[qtype].value, 96), raw)
    # the C dequantizer reads the packed rows as the reference reads the file's
    want = reference_weight(raw, qtype, 96)
    got = gguf_linear.dequantize_rows(packed, Q[qtype].value, 96, layout=LAYOUT_X4)
    assert torch.equal(got.double(), want)
    bf = gguf_linear.dequantize_rows(packed, Q[qtype].value, 96, torch.bfloat16, LAYOUT_X4)
    assert torch.equal(bf, gguf_linear.dequantize_rows(raw, Q[qtype].value, 96, torch.bfloat16))


@needs_x4
@pytest.mark.parametrize("qtype", X4)
@pytest.mark.parametrize("planes", [1, 2])
def test_x4_products_equal_the_file_layouts(qtype: str, planes: int) -> None:
    k = 160  # five blocks: the odd one takes the kernel's tail
    raw = blocks(qtype, 24, k, 2)
    x4 = GGUFLinear([(raw, Q[qtype].value)], k)
    file = GGUFLinear([(raw, Q[qtype].value)], k, repack=False)
    assert x4.layouts == [LAYOUT_X4] and file.layouts == [LAYOUT_FILE]
    assert "x4 rows" in x4.backend and "x4" not in file.backend
    gguf_linear.set_activations(x4, "precise" if planes == 2 else "fast")
    gguf_linear.set_activations(file, "precise" if planes == 2 else "fast")
    ref = reference_weight(raw, qtype, k)
    for m in (1, 2, 3, 8, 9, 20):
        x = torch.randn(m, k, generator=torch.Generator().manual_seed(m))
        got = x4(x)
        assert _rel(got, file(x)) < 1e-5, m
        if planes == 1:  # exactly the 8-bit activations' product
            assert _rel(got, quantized_activations(x) @ ref.t()) < 1e-5, m
        alone = torch.cat([x4(x[i : i + 1]) for i in range(m)])
        assert torch.equal(alone, got), m  # greedy decoding is the same alone or batched


@needs_x4
def test_a_long_prompt_dequantizes_whole_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GEMM path slices the rows; an x4 part must be sliced in fours."""
    raw = blocks("Q4_1", 40, 64, 3)
    x4 = GGUFLinear([(raw, Q.Q4_1.value)], 64)
    file = GGUFLinear([(raw, Q.Q4_1.value)], 64, repack=False)
    # 64 columns of float32 a slice: 10 rows by the old rule, 8 (two groups) by the new
    monkeypatch.setattr(gguf_linear, "_DEQUANT_BLOCK_BYTES", 10 * 64 * 4)
    monkeypatch.setattr(gguf_linear, "rows_limit", lambda k_types, dtype: 0)
    monkeypatch.setenv(gguf_linear.GEMM_ENV, "float32")
    x = torch.randn(5, 64)
    assert torch.allclose(x4(x), file(x), rtol=0, atol=1e-5)
    assert torch.allclose(x4(x), x @ reference_weight(raw, "Q4_1", 64).float().t(), atol=1e-4)


@needs_x4
def test_only_what_the_kernels_have_is_repacked() -> None:
    assert GGUFLinear([(blocks("Q4_1", 6, 64), Q.Q4_1.value)], 64).layouts == [LAYOUT_FILE]
    assert GGUFLinear([(blocks("Q4_K", 8, 256), Q.Q4_K.value)], 256).layouts == [LAYOUT_FILE]
    raw = blocks("Q5_0", 8, 64)
    assert gguf_linear.x4_pack(raw[:, :22].contiguous(), Q.Q5_0.value, 32) is not None
    assert gguf_linear.x4_pack(raw[::2], Q.Q5_0.value, 64) is None  # not contiguous
    # a layout the C side does not read for that type is refused, not misread
    bad = GGUFLinear([(blocks("Q4_K", 8, 256), Q.Q4_K.value)], 256, layouts=[LAYOUT_X4])
    with pytest.raises(RuntimeError, match="rejected its arguments"):
        bad(torch.randn(1, 256))
    with pytest.raises(ValueError, match="layouts"):
        GGUFLinear([(raw, Q.Q5_0.value)], 64, layouts=[LAYOUT_FILE, LAYOUT_FILE])


@needs_x4
def test_fused_parts_keep_their_layouts() -> None:
    """q/k/v fused: an x4 part beside a file-layout part, one product, no copy."""
    parts = [(blocks("Q4_1", 8, 256, 4), Q.Q4_1.value), (blocks("Q4_K", 4, 256, 5), Q.Q4_K.value),
             (blocks("Q8_0", 6, 256, 6), Q.Q8_0.value)]  # fmt: skip
    singles = [GGUFLinear([p], 256) for p in parts]
    assert [s.layouts[0] for s in singles] == [LAYOUT_X4, LAYOUT_FILE, LAYOUT_FILE]
    fused = GGUFLinear.concatenate(singles)
    assert fused.layouts == [LAYOUT_X4, LAYOUT_FILE, LAYOUT_FILE]
    x = torch.randn(3, 256)
    assert torch.equal(fused(x), torch.cat([s(x) for s in singles], dim=1))
    w = torch.cat([reference_weight(raw, name, 256) for raw, name in
                   zip([p[0] for p in parts], ["Q4_1", "Q4_K", "Q8_0"], strict=True)])  # fmt: skip
    assert torch.equal(fused.dequantized().double(), w)


def _mapping_rss(address: int) -> int:
    """Resident bytes of the mapping holding `address` (/proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "Rss:":
            return int(line.split()[1]) * 1024
    raise AssertionError("no mapping holds that address")


@needs_x4
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_repacking_a_mapped_tensor_gives_its_pages_back(tmp_path: Path) -> None:
    """The file's pages are released chunk by chunk as the rows are copied, so a mapped
    model's memory stays its file's size (and loading never holds both copies)."""
    raw = blocks("Q4_0", 4096 * 3, 64, 7)  # three chunks of x4_pack's 4096 rows
    path = tmp_path / "w.bin"
    path.write_bytes(raw.numpy().tobytes())
    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    view = torch.frombuffer(mapped, dtype=torch.uint8).view(raw.shape)
    assert torch.equal(view, raw)  # every page read: resident in this mapping
    before = _mapping_rss(view.data_ptr())
    assert before >= raw.numel() * 0.9
    layer = GGUFLinear([(view, Q.Q4_0.value)], 64)
    assert layer.layouts == [LAYOUT_X4]
    assert _mapping_rss(view.data_ptr()) < raw.numel() * 0.05
    assert torch.equal(gguf_linear.x4_unpack(layer.blocks0, Q.Q4_0.value, 64), raw)
    assert torch.equal(view, raw)  # a later read faults the bytes back in from the file


@needs_x4
def test_a_build_without_the_x4_kernels_refuses_x4_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library built later with other flags cannot read blocks packed for this one: the
    product says why and the native decode step is not built over them (it would read the
    product's output unwritten)."""
    from tui_gen.engine.native import decode

    layer = GGUFLinear([(blocks("Q4_1", 8, 64), Q.Q4_1.value)], 64)
    assert layer.unreadable() == "" and decode._qmat(layer, []).kind == decode.MAT_GGUF
    real = build.load()

    class NoX4:
        def __getattr__(self, name: str) -> object:
            return (lambda: 0) if name == "gg_x4_available" else getattr(real, name)

    monkeypatch.setattr(build, "load", lambda: NoX4())
    assert "x4 layout" in layer.unreadable()
    with pytest.raises(decode._Unsupported, match="x4 layout"):
        decode._qmat(layer, [])
    file = GGUFLinear([(blocks("Q4_1", 8, 64), Q.Q4_1.value)], 64)
    assert file.layouts == [LAYOUT_FILE] and file.unreadable() == ""
