"""Adversarial files (issue #19, loading): configs and GGUF headers that would exhaust memory,
hang or crash, unreadable or special files, broken cached kernels, NaN-producing weights. Each
must end in one ModelLoadError line (or work), quickly and with little memory."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tui_gen import Generator
from tui_gen.engine import generator as generator_module
from tui_gen.engine.loading.gguf_reader import open_gguf
from tui_gen.engine.loading.gguf_tokenizer import _sentencepiece_merges, build_tokenizer
from tui_gen.engine.loading.loader import load_model
from tui_gen.engine.native import build
from tui_gen.engine.sampling import NonFiniteLogitsError, next_token
from tui_gen.errors import ModelLoadError, TuiGenError
from tui_gen.models.registry import parse_config
from tui_gen.options import MAX_BEAMS, BeamParams, SamplingParams


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- cached kernel library ---------------------------------------------------------------------


def test_a_truncated_cached_library_is_not_intact(tmp_path: Path) -> None:
    lib = tmp_path / "qmatmul-x.so"
    lib.write_bytes(b"\x7fELF" + bytes(4000))
    build._stamp_path(lib).write_text(build._stamp(lib))
    assert build._intact(lib)
    with lib.open("r+b") as f:
        f.truncate(100)
    assert not build._intact(lib)
    build._stamp_path(lib).unlink()
    lib.write_bytes(b"\x7fELF" + bytes(4000))
    assert not build._intact(lib)  # no stamp (built by an older version): rebuilt


@pytest.mark.slow
def test_a_truncated_cached_library_is_rebuilt_not_loaded(tmp_path: Path, tiny_llama: Path) -> None:
    """A truncated .so would be mapped and die with SIGBUS: run in a child so pytest survives."""
    env = {**os.environ, "TUI_GEN_CACHE_DIR": str(tmp_path), "TUI_GEN_NATIVE": "1"}
    first = "from tui_gen.engine.native import build; assert build.load() is not None"
    subprocess.run([sys.executable, "-c", first], env=env, check=True, timeout=300)
    (so,) = (tmp_path / "kernels").glob("qmatmul-*.so")
    size = so.stat().st_size
    with so.open("r+b") as f:
        f.truncate(size // 3)
    code = (
        "from tui_gen import Generator; "
        f"g = Generator.load({str(tiny_llama)!r}, quantize='int8'); "
        "g.generate('hi', max_new_tokens=3, temperature=0); print(g.decode_backend)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "native"
    assert so.stat().st_size == size  # rebuilt in place


# --- config.json --------------------------------------------------------------------------------


@pytest.fixture
def model_copy(tmp_path: Path, tiny_llama: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_llama, out)
    return out


def _edit(d: Path, **changes: object) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "changes",
    [
        {"num_hidden_layers": 1_000_000},
        {"hidden_size": 10**12},
        {"intermediate_size": 10**13},
        {"vocab_size": 10**12},
        {"max_position_embeddings": 10**15},
        {"num_hidden_layers": 1000},  # under the ceiling, but the weights are far smaller
        {"hidden_size": 4096, "intermediate_size": 11008},  # a 7B config over tiny weights
        {"hidden_size": float("inf")},
    ],
)
def test_huge_config_fails_before_allocating(model_copy: Path, changes: dict) -> None:
    _edit(model_copy, **changes)
    before = _peak_mb()
    with pytest.raises(ModelLoadError) as e:
        load_model(model_copy)
    assert _peak_mb() - before < 100  # refused from the config, nothing allocated
    msg = _one_line(e.value)
    assert "config.json" in msg


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"max_position_embeddings": 1}, "max_position_embeddings"),
        ({"rope_theta": 0}, "rope_theta"),
        ({"rope_theta": float("nan")}, "rope_theta"),
        ({"rms_norm_eps": float("nan")}, "epsilon"),
        ({"rms_norm_eps": float("inf")}, "epsilon"),
        ({"rope_scaling": {"rope_type": "linear", "factor": 0}}, "factor"),
        ({"rope_scaling": {"rope_type": "linear"}}, "factor"),
    ],
)
def test_bad_config_values_are_one_line(changes: dict, words: str) -> None:
    raw = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
           "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 320,
           "max_position_embeddings": 256} | changes  # fmt: skip
    with pytest.raises(ModelLoadError, match=words) as e:
        parse_config(raw)
    _one_line(e.value)


def test_gpt2_nan_layer_norm_epsilon() -> None:
    raw = {"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 320,
           "n_positions": 64, "layer_norm_epsilon": float("nan")}  # fmt: skip
    with pytest.raises(ModelLoadError, match="epsilon"):
        parse_config(raw)


# --- special and unreadable files ---------------------------------------------------------------


def _load_fifo(fifo: Path, target: Path) -> BaseException | None:
    """load_model(target) with `fifo` a FIFO. A reader would block forever in open() (inside
    safetensors' Rust code even holding the GIL), so a shell opens the writing end after 10 s:
    a hang becomes a failed test, not a stuck pytest."""
    unblock = subprocess.Popen(["sh", "-c", 'sleep 10; : > "$0"', str(fifo)])
    try:
        load_model(target)
    except BaseException as e:
        return e
    finally:
        # still sleeping = it never opened the FIFO's other end: the load did not block on it
        not_unblocked = unblock.poll() is None
        unblock.kill()
        unblock.wait()
        assert not_unblocked, "blocked on the FIFO until the writer opened it"
    return None


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.json",
                                  "chat_template.jinja"])  # fmt: skip
def test_a_fifo_is_refused_not_read(model_copy: Path, name: str) -> None:
    target = model_copy / name
    if target.exists():
        target.unlink()
    os.mkfifo(target)
    err = _load_fifo(target, model_copy)
    assert isinstance(err, ModelLoadError), err
    assert name in _one_line(err) and "regular file" in str(err)


def test_a_fifo_gguf_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "m.gguf"
    os.mkfifo(fifo)
    err = _load_fifo(fifo, fifo)
    assert isinstance(err, ModelLoadError), err
    assert "regular file" in _one_line(err)


def test_unreadable_config_json(model_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.read_text

    def read_text(self: Path, *a: object, **k: object) -> str:
        if self.name == "config.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(ModelLoadError, match=r"config\.json") as e:
        load_model(model_copy)
    assert "ermission" in _one_line(e.value)


def test_unreadable_model_directory(model_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the execute bit on the directory, every stat inside it fails with EACCES."""
    real = Path.stat

    def stat(self: Path, *a: object, **k: object) -> os.stat_result:
        if self.parent == model_copy:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(ModelLoadError) as e:
        load_model(model_copy)
    assert "permission denied" in _one_line(e.value).lower()


def test_chat_template_that_is_not_utf8(model_copy: Path) -> None:
    (model_copy / "chat_template.jinja").write_bytes(b"{{ messages }}\xff\xfe bad")
    with pytest.raises(ModelLoadError, match="UTF-8") as e:
        load_model(model_copy)
    assert "chat_template.jinja" in _one_line(e.value)


# --- sampling at extreme values, NaN/Inf weights ------------------------------------------------


@pytest.fixture(scope="module")
def gen(tiny_llama: Path) -> Generator:
    return Generator.load(str(tiny_llama))


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": 1e-300},
        {"temperature": 1e-300, "top_k": 0},
        {"temperature": 1e-45, "top_k": 5, "top_p": 0.9},
        {"repetition_penalty": 1e-300, "temperature": 0.7},
        {"repetition_penalty": 1e-300, "temperature": 0.7, "top_k": 0},
    ],
)
def test_extreme_sampling_values_do_not_crash(gen: Generator, params: dict) -> None:
    out = gen.generate("hello", max_new_tokens=4, seed=1, **params)
    assert isinstance(out, str)
    if params.get("repetition_penalty", 1.0) == 1.0:  # the limit of a tiny temperature: greedy
        assert out == gen.generate("hello", max_new_tokens=4, temperature=0)


def test_tiny_temperature_in_next_token_is_greedy() -> None:
    logits = torch.tensor([[1.0, 30.0, 2.0, 29.9]])
    p = SamplingParams(temperature=1e-300, top_k=0, top_p=1.0)
    assert next_token(logits, p, None, torch.Generator().manual_seed(0)).tolist() == [1]


@pytest.fixture(scope="module")
def broken_weights(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path):
    from safetensors.torch import load_file, save_file

    made = {}
    for kind, value in (("nan", float("nan")), ("inf", float("inf"))):
        out = tmp_path_factory.mktemp(f"weights-{kind}")
        shutil.copytree(tiny_llama, out, dirs_exist_ok=True)
        state = load_file(str(out / "model.safetensors"))
        state["model.norm.weight"][:] = value
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
        made[kind] = out
    return made


@pytest.mark.parametrize("kind", ["nan", "inf"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_nan_weights_stop_with_one_line(broken_weights: dict, kind: str, temperature: float):
    g = Generator.load(str(broken_weights[kind]))
    with pytest.raises(NonFiniteLogitsError, match="logits at token 0") as e:
        g.generate("hello", max_new_tokens=4, temperature=temperature, seed=0)
    assert isinstance(e.value, TuiGenError)
    _one_line(e.value)
    with pytest.raises(NonFiniteLogitsError, match="logits at token 0"):
        g.generate_batch(["hello", "a longer prompt"], max_new_tokens=4, temperature=temperature)


# --- beams --------------------------------------------------------------------------------------


def test_a_million_beams_is_refused_by_the_rule() -> None:
    with pytest.raises(TuiGenError, match="num_beams"):
        BeamParams(num_beams=1_000_000)
    BeamParams(num_beams=MAX_BEAMS)


def test_beams_that_cannot_fit_in_memory_are_refused(
    gen: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator_module.os, "sysconf", lambda name: 1024)  # a 1 MiB machine
    before = _peak_mb()
    with pytest.raises(TuiGenError, match="beams need") as e:
        gen.beam_search("hello", num_beams=64, max_new_tokens=100)
    _one_line(e.value)
    assert _peak_mb() - before < 50


# --- GGUF headers -------------------------------------------------------------------------------

_U32, _STR, _ARR, _U64 = 4, 8, 9, 10


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def _strs(items: list[str]) -> bytes:
    return struct.pack("<IQ", _STR, len(items)) + b"".join(_s(t) for t in items)


#: torch-order shapes of a one-layer width-4 llama with attn_norm left out (so a good file
#: fails for that alone)
_TENSORS = {"token_embd.weight": (8, 4), "blk.0.attn_q.weight": (4, 4),
            "blk.0.attn_k.weight": (4, 4), "blk.0.attn_v.weight": (4, 4),
            "blk.0.attn_output.weight": (4, 4), "blk.0.ffn_gate.weight": (8, 4),
            "blk.0.ffn_up.weight": (8, 4), "blk.0.ffn_down.weight": (4, 8),
            "blk.0.ffn_norm.weight": (4,), "output_norm.weight": (4,)}  # fmt: skip


def _tiny_gguf(path: Path, replace: dict[str, bytes] | None = None, extra: bytes = b"") -> Path:
    """A minimal llama GGUF: width 4, one layer, an 8-token byte-level vocabulary, F32 zeros;
    `replace` swaps a key's (type + payload) bytes, `extra` is one more raw key/value."""
    kvs = {
        "general.architecture": struct.pack("<I", _STR) + _s("llama"),
        "llama.block_count": _u32(_U32) + _u32(1),
        "llama.context_length": _u32(_U32) + _u32(64),
        "llama.embedding_length": _u32(_U32) + _u32(4),
        "llama.feed_forward_length": _u32(_U32) + _u32(8),
        "llama.attention.head_count": _u32(_U32) + _u32(1),
        "tokenizer.ggml.model": _u32(_STR) + _s("gpt2"),
        "tokenizer.ggml.tokens": _u32(_ARR) + _strs(list("abcdefgh")),
    } | (replace or {})
    meta = b"".join(_s(k) + v for k, v in kvs.items()) + extra
    n_kv = len(kvs) + (1 if extra else 0)
    table, offset = b"", 0
    for name, shape in _TENSORS.items():
        dims = tuple(reversed(shape))
        table += _s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, 0, offset)
        offset += -(-4 * math.prod(shape) // 32) * 32
    head = b"GGUF" + struct.pack("<IQQ", 3, len(_TENSORS), n_kv) + meta + table
    head += b"\0" * (-len(head) % 32)
    path.write_bytes(head + bytes(offset))
    return path


def test_tiny_gguf_reaches_the_tensor_check(tmp_path: Path) -> None:
    """The file the GGUF tests break is otherwise good: it fails only for its missing layers."""
    with pytest.raises(ModelLoadError, match="missing"):
        open_gguf(_tiny_gguf(tmp_path / "ok.gguf"))


@pytest.mark.parametrize(
    ("replace", "words"),
    [
        ({"llama.block_count": _u32(_U64) + struct.pack("<Q", 10**9)}, "num_hidden_layers"),
        ({"llama.embedding_length": _u32(_U64) + struct.pack("<Q", 10**12)}, "hidden_size"),
        ({"llama.feed_forward_length": _u32(_U64) + struct.pack("<Q", 10**13)}, "intermediate"),
        ({"llama.block_count": _u32(_U32) + _u32(1000)}, "parameters"),
        ({"llama.embedding_length": _u32(_STR) + _s("four")}, "wrong type"),
        ({"llama.attention.head_count": _u32(_ARR) + _strs(["x", "x"])}, "wrong type"),
        ({"general.alignment": _u32(_ARR) + _strs(["32"])}, "general.alignment"),
        ({"general.alignment": _u32(_STR) + _s("32")}, "general.alignment"),
        ({"split.count": _u32(_STR) + _s("2")}, "split.count"),
        ({"llama.rope.freq_base": _u32(6) + struct.pack("<f", 0.0)}, "rope_theta"),
        (
            {"llama.attention.layer_norm_rms_epsilon": _u32(6) + struct.pack("<f", math.nan)},
            "epsilon",
        ),
    ],
)
def test_hostile_gguf_metadata_is_one_line(tmp_path: Path, replace: dict, words: str) -> None:
    path = _tiny_gguf(tmp_path / "bad.gguf", replace)
    before = _peak_mb()
    with pytest.raises(ModelLoadError, match=words) as e:
        load_model(path)
    assert _peak_mb() - before < 100
    assert str(path) in _one_line(e.value)


def test_gguf_arrays_nested_20000_deep(tmp_path: Path) -> None:
    nested = b"".join(struct.pack("<IQ", _ARR, 1) for _ in range(20_000))
    nested += struct.pack("<IQ", _U32, 0)
    path = _tiny_gguf(tmp_path / "deep.gguf", extra=_kv("x.deep", _ARR, nested))
    with pytest.raises(ModelLoadError, match="nested") as e:
        load_model(path)
    _one_line(e.value)


def test_sentencepiece_vocab_with_a_huge_token_is_fast() -> None:
    """Splitting every piece at every position was quadratic: one 400k-character token took 66 s."""
    tokens = ["<unk>", "<s>", "</s>", "a", "b", "ab", "▁", "▁ab", "x" * 400_000, "y" * 2000]
    meta = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.scores": [0.0] * len(tokens),
            "tokenizer.ggml.token_type": [2, 3, 3] + [1] * (len(tokens) - 3)}  # fmt: skip
    for native in (True, False):  # ours, and the `tokenizers` one `tui-gen import` writes
        tok, _ = build_tokenizer(meta, "test.gguf", native=native)
        ids = tok.encode("ab ab", add_special_tokens=False).ids
        assert [tok.id_to_token(i) for i in ids] == ["▁ab", "▁ab"]  # the merges still work
        assert tok.encode("x" * 5000, add_special_tokens=False).ids  # no quadratic encode


@pytest.mark.parametrize(
    ("scores", "words"),
    [([0.0] * 3, "3 tokenizer scores for 6 tokens"), (["x"] * 6, "not numbers")],
)
@pytest.mark.parametrize("native", [True, False])
def test_sentencepiece_scores_that_do_not_fit_are_one_line(scores, words, native) -> None:
    """They failed as an IndexError at the first encode (or a bare zip() ValueError)."""
    meta = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>",
            "a", "b", "ab"], "tokenizer.ggml.scores": scores,
            "tokenizer.ggml.token_type": [2, 3, 3, 1, 1, 1]}  # fmt: skip
    with pytest.raises(ModelLoadError, match=words) as e:
        build_tokenizer(meta, "bad.gguf", native=native)
    assert "bad.gguf" in _one_line(e.value)


class _CountingVocab(dict):
    """A vocab that counts membership tests: the merge search's work, without a clock."""

    lookups = 0

    def __contains__(self, key: object) -> bool:
        self.lookups += 1
        return super().__contains__(key)


def test_sentencepiece_merge_search_is_linear_in_a_huge_token() -> None:
    """The search tries only split points the vocabulary's lengths allow: a 400k-character
    token among short pieces costs a handful of lookups, not 400k (the quadratic version)."""
    tokens = ["<unk>", "a", "b", "ab", "x" * 400_000, "y" * 1000]
    types = [2] + [1] * (len(tokens) - 1)
    vocab = _CountingVocab({t: i for i, t in enumerate(tokens)})
    merges = _sentencepiece_merges(tokens, [0.0] * len(tokens), types, vocab)
    assert merges == [("a", "b")]
    assert vocab.lookups < 100


def test_sentencepiece_merges_unchanged_by_the_bound() -> None:
    """Bounding the split points finds exactly the merges the full scan found."""
    tokens = ["<unk>", "a", "b", "c", "ab", "bc", "abc", "abcab", "ca", "bca"]
    types = [2] + [1] * (len(tokens) - 1)
    scores = [-float(i) for i in range(len(tokens))]
    vocab = {t: i for i, t in enumerate(tokens)}
    got = _sentencepiece_merges(tokens, scores, types, vocab)
    full = []
    for tok, score in zip(tokens[1:], scores[1:], strict=True):
        for k in range(1, len(tok)):
            if tok[:k] in vocab and tok[k:] in vocab:
                full.append((score, k, len(tok) - k, tok[:k], tok[k:]))
    full.sort(key=lambda m: (m[0], m[1], m[2]), reverse=True)
    assert got == [(a, b) for *_, a, b in full]
