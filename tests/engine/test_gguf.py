"""Native GGUF opening: dequantization, names and Q/K order, config, tokenizer, import.

Fast tests write tiny GGUF files the way llama.cpp's converter does (gguf.GGUFWriter, Q/K rows
permuted, tokenizer in metadata) from tiny random transformers models, and check our reader
against the `gguf` package's dequantizer and transformers' logits. Tests marked `smollm2` use
the real SmolLM2-135M-Instruct Q4_1 file when it is on the machine (see tests/smollm2.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import smollm2
import torch
from gguf import GGMLQuantizationType as Q

from tui_gen.engine.loading.gguf_file import GGML_TYPES
from tui_gen.engine.loading.gguf_quants import dequantize
from tui_gen.engine.loading.gguf_reader import GGUFCheckpoint, import_gguf, open_gguf
from tui_gen.engine.loading.gguf_tokenizer import build_tokenizer
from tui_gen.errors import ModelLoadError, UnsupportedModelError
from tui_gen.models.llama import Llama
from tui_gen.models.registry import parse_config

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.",
    "def square(x):\n    return x * x\n\nprint(square(12))  # 144\n",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 2024 3.14159 -42 and more numbers 1234567890",
    "Unicode: café naïve — “quotes” 日本語 中文 한국어 🍕🎉 e\u0301 and    spaces\t\ttabs",
]
SAMPLES = [
    "The quick brown fox, 12345 times!",
    "def f(a, b):\n    return a + b  # 3.14\n\n\n",
    "   leading spaces and trailing   \t\n",
    "emoji 🍕🎉👍🏽 and CJK 你好，世界 日本語",
    "<|im_start|>user\nHello 2024<|im_end|>\n<|im_start|>assistant\n",
    "naïve café — e\u0301 'quoted' don't I'll",
]
QUANT_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]
K_TYPES = {"Q4_K", "Q5_K", "Q6_K"}


# --------------------------------------------------------------------------- tiny models


def train_byte_level_tokenizer(vocab_size: int = 300):
    """GPT-2 style byte-level BPE with SmolLM2's pre-tokenization (digits split one by one)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tok


def train_sentencepiece_tokenizer(vocab_size: int = 400):
    """Llama-2 style BPE: ▁ for spaces, a dummy prefix space, byte fallback tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.pre_tokenizer = None  # SentencePiece merges never cross a ▁ once trained this way
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return tok


def tiny_hf_model(vocab: int, *, tie: bool = False, arch: str = "llama", seed: int = 0):
    """2 layers, hidden 256 (so K-quant blocks of 256 fit), 4 heads over 2 KV heads."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    kw = dict(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=50000.0,
        tie_word_embeddings=tie,
        initializer_range=0.25,  # large enough that a wrong Q/K row order changes the logits
        bos_token_id=1,
        eos_token_id=2,
    )
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**kw)).eval()
    return LlamaForCausalLM(LlamaConfig(**kw)).eval()


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf: str) -> str:
    top = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    if hf in top:
        return top[hf]
    _, _, i, rest = hf.split(".", 3)
    return f"blk.{i}.{LAYER_NAMES[rest]}"


def random_blocks(qtype: str, n_blocks: int, seed: int = 0) -> np.ndarray:
    """Random bytes for `n_blocks` blocks, with every float16 field a sane finite value."""
    rng = np.random.default_rng(seed)
    _, size = gguf.GGML_QUANT_SIZES[Q[qtype]]
    b = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    f16_fields = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2],
                  "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}  # fmt: skip
    for at in f16_fields.get(qtype, []):
        vals = rng.uniform(-0.05, 0.05, n_blocks).astype(np.float16)
        b[:, at : at + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
    if qtype == "F32":
        b = rng.standard_normal(n_blocks, dtype=np.float32).view(np.uint8).reshape(n_blocks, 4)
    if qtype in ("F16", "BF16"):
        vals = rng.standard_normal(n_blocks, dtype=np.float32)
        b = gguf.quants.quantize(vals, Q[qtype]).view(np.uint8).reshape(n_blocks, 2)
    return b


def encode_weight(w: np.ndarray, qtype: str, seed: int) -> np.ndarray:
    """A 2-D weight as the GGUF writer wants it for `qtype`; K types get random blocks (the
    `gguf` package has no K-quant quantizer), which still tests dequantization exactly."""
    if qtype == "F32":
        return w.astype(np.float32)
    if qtype == "F16":
        return w.astype(np.float16)
    if qtype in K_TYPES:
        _, size = gguf.GGML_QUANT_SIZES[Q[qtype]]
        blocks = random_blocks(qtype, w.size // 256, seed)
        return blocks.reshape(w.shape[0], w.shape[1] // 256 * size)
    return gguf.quants.quantize(w.astype(np.float32), Q[qtype])


def write_gguf(
    path: Path,
    model,
    tok,
    *,
    qtype: str = "F32",
    arch: str = "llama",
    tokenizer_kind: str = "gpt2",
    pre: str = "smollm",
    extra=None,
    skip: tuple[str, ...] = (),
) -> Path:
    """Convert a transformers model + tokenizers.Tokenizer to GGUF like convert_hf_to_gguf.py."""
    c = model.config
    heads, kv_heads = c.num_attention_heads, c.num_key_value_heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(50000.0)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_dimension_count(c.hidden_size // heads)
    w.add_vocab_size(c.vocab_size)
    w.add_file_type(0)
    # tokenizer
    n = tok.get_vocab_size()
    tokens = [tok.id_to_token(i) for i in range(n)]
    added = {t.content for t in tok.get_added_tokens_decoder().values()}
    w.add_tokenizer_model(tokenizer_kind)
    if tokenizer_kind == "gpt2":
        w.add_tokenizer_pre(pre)
        merges = json.loads(tok.to_str())["model"]["merges"]
        w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
        types = [3 if t in added else 1 for t in tokens]
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_pad_token_id(2)
        w.add_add_bos_token(False)
    else:
        types = [
            2 if t == "<unk>" else 3 if t in ("<s>", "</s>") else 6 if t.startswith("<0x") else 1
            for t in tokens
        ]
        w.add_token_scores([0.0 if k != 1 else -float(i) for i, k in enumerate(types)])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_space_prefix(True)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_chat_template(CHAT_TEMPLATE)
    if extra:
        extra(w)
    state = model.state_dict()
    if c.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    for i, (name, t) in enumerate(state.items()):
        arr = t.detach().float().numpy()
        if arch == "llama" and name.endswith("q_proj.weight"):
            arr = llama_cpp_permute(arr, heads)
        elif arch == "llama" and name.endswith("k_proj.weight"):
            arr = llama_cpp_permute(arr, kv_heads)
        gname = gguf_name(name)
        if gname in skip:
            continue
        if arr.ndim == 1:
            w.add_tensor(gname, arr.astype(np.float32))
            continue
        data = encode_weight(arr, qtype, seed=i)
        raw = None if qtype in ("F32", "F16") else Q[qtype]
        w.add_tensor(gname, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def byte_tok():
    return train_byte_level_tokenizer()


@pytest.fixture(scope="module")
def hf_untied(byte_tok):
    return tiny_hf_model(byte_tok.get_vocab_size(), tie=False)


@pytest.fixture(scope="module")
def hf_tied(byte_tok):
    return tiny_hf_model(byte_tok.get_vocab_size(), tie=True, seed=1)


@pytest.fixture(scope="module")
def f32_gguf(tmp_path_factory, hf_untied, byte_tok) -> Path:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf", hf_untied, byte_tok)


def load_ours(ckpt: GGUFCheckpoint) -> Llama:
    cfg = parse_config(ckpt.config, str(ckpt.path))
    model = Llama(cfg)
    state = dict(ckpt.tensors())
    model.load_state_dict(state, strict=not cfg.tie_word_embeddings)
    if cfg.tie_word_embeddings:
        assert "lm_head.weight" not in state
        missing = set(model.state_dict()) - set(state)
        assert missing == {"lm_head.weight"}
    return model.eval()


IDS = torch.tensor([[1, 5, 17, 42, 99, 200, 7, 3, 250, 11, 64, 128]])


# --------------------------------------------------------------------------- dequantization


@pytest.mark.parametrize("qtype", QUANT_TYPES)
def test_dequantize_matches_gguf_bit_for_bit(qtype):
    block, _ = gguf.GGML_QUANT_SIZES[Q[qtype]]
    n_blocks = 4096 // block * 3
    blocks = random_blocks(qtype, n_blocks, seed=QUANT_TYPES.index(qtype))
    shape = (3, 4096)
    expected = gguf.quants.dequantize(blocks.reshape(3, -1), Q[qtype]).reshape(shape)
    ours = dequantize(torch.from_numpy(blocks.reshape(-1).copy()), Q[qtype].value, shape)
    assert ours.dtype == torch.float32 and tuple(ours.shape) == shape
    assert torch.equal(ours.view(torch.int32), torch.from_numpy(expected).view(torch.int32))


@pytest.mark.parametrize("qtype", ["Q2_K", "Q3_K", "IQ4_NL"])
def test_other_types_fall_back_to_the_gguf_package(qtype):
    block, _ = gguf.GGML_QUANT_SIZES[Q[qtype]]
    blocks = random_blocks(qtype, 2 * 512 // block, seed=7)
    for at in {"Q2_K": [80, 82], "Q3_K": [108], "IQ4_NL": [0]}[qtype]:  # finite float16s
        blocks[:, at : at + 2] = np.array([0.01], np.float16).view(np.uint8)
    expected = gguf.quants.dequantize(blocks.reshape(2, -1), Q[qtype])
    ours = dequantize(torch.from_numpy(blocks.reshape(-1).copy()), Q[qtype].value, (2, 512))
    assert torch.equal(ours, torch.from_numpy(expected))


def test_every_listed_type_has_a_kernel():
    from tui_gen.engine.loading.gguf_quants import KERNELS

    for name in QUANT_TYPES:
        assert Q[name].value in KERNELS, name
        assert GGML_TYPES[Q[name].value][0] == name


# --------------------------------------------------------------------------- weights and logits


@pytest.mark.parametrize("qtype", QUANT_TYPES)
def test_tensors_equal_gguf_reference_for_each_type(tmp_path, hf_untied, byte_tok, qtype):
    """Every tensor of a file in `qtype`: equal to gguf's dequantize + the inverse permutation."""
    path = write_gguf(tmp_path / f"tiny-{qtype}.gguf", hf_untied, byte_tok, qtype=qtype)
    ckpt = open_gguf(path)
    assert ckpt.file_type == qtype
    reader = gguf.GGUFReader(path)
    reference = {}
    for t in reader.tensors:
        w = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).copy())
        if t.name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = 4 if "attn_q" in t.name else 2
            w = w.reshape(heads, w.shape[0] // heads // 2, 2, -1).transpose(1, 2).reshape(w.shape)
        reference[t.name] = w
    ours = dict(ckpt.tensors())
    assert set(ours) == set(hf_untied.state_dict())
    for name, tensor in ours.items():
        assert torch.equal(tensor, reference[gguf_name(name)]), name


def test_tensors_restore_the_thread_count(f32_gguf):
    ckpt = open_gguf(f32_gguf)
    threads = torch.get_num_threads()
    it = ckpt.tensors()
    next(it)
    assert torch.get_num_threads() == 1
    it.close()
    assert torch.get_num_threads() == threads
    dict(ckpt.tensors(torch.bfloat16))
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("tie", [False, True])
def test_f32_logits_equal_transformers(tmp_path, byte_tok, hf_untied, hf_tied, tie):
    hf = hf_tied if tie else hf_untied
    ckpt = open_gguf(write_gguf(tmp_path / "tiny.gguf", hf, byte_tok))
    assert ckpt.config["tie_word_embeddings"] is tie
    ours = load_ours(ckpt)
    with torch.no_grad():
        expected = hf(IDS).logits
        got = ours(IDS)
    assert (got - expected).abs().max().item() < 1e-4


def test_qk_order_matters(f32_gguf, hf_untied):
    """Sanity check of the test itself: without undoing llama.cpp's Q/K order, logits differ."""
    ckpt = open_gguf(f32_gguf)
    ckpt.config = dict(ckpt.config, model_type="mistral")  # any llama-family name: no unpermute
    cfg = parse_config(ckpt.config)
    model = Llama(cfg)
    model.load_state_dict(dict(ckpt.tensors()), strict=True)
    with torch.no_grad():
        assert (model.eval()(IDS) - hf_untied(IDS).logits).abs().max().item() > 1e-2


def test_qwen2_with_biases_needs_no_unpermute(tmp_path, byte_tok):
    hf = tiny_hf_model(byte_tok.get_vocab_size(), arch="qwen2", seed=2)
    with torch.no_grad():
        for layer in hf.model.layers:  # random init leaves biases at zero; make them count
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    ckpt = open_gguf(write_gguf(tmp_path / "qwen2.gguf", hf, byte_tok, arch="qwen2", pre="qwen2"))
    assert ckpt.config["model_type"] == "qwen2" and ckpt.config["attention_bias"] is True
    ours = load_ours(ckpt)
    with torch.no_grad():
        assert (ours(IDS) - hf(IDS).logits).abs().max().item() < 1e-4


def test_config_from_metadata(f32_gguf, hf_untied, byte_tok):
    ckpt = open_gguf(f32_gguf)
    c = ckpt.config
    assert c["model_type"] == "llama"
    assert (c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]) == (256, 2, 512)
    assert (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]) == (4, 2, 64)
    assert c["max_position_embeddings"] == 256 and c["rope_theta"] == 50000.0
    assert c["rms_norm_eps"] == pytest.approx(1e-5) and c["rope_scaling"] is None
    assert c["vocab_size"] == byte_tok.get_vocab_size() and c["tie_word_embeddings"] is False
    assert (c["bos_token_id"], c["eos_token_id"], c["torch_dtype"]) == (1, 2, "float32")
    assert ckpt.generation_config == {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
    cfg = parse_config(c)
    assert (cfg.num_kv_heads, cfg.head_dim) == (2, 64)


def test_linear_rope_scaling(tmp_path, hf_untied, byte_tok):
    def extra(w):
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(4.0)

    ckpt = open_gguf(write_gguf(tmp_path / "lin.gguf", hf_untied, byte_tok, extra=extra))
    assert ckpt.config["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}
    assert parse_config(ckpt.config).rope_scaling["factor"] == 4.0


def test_llama3_rope_freqs_become_rope_scaling(tmp_path, hf_untied, byte_tok):
    """Llama 3.1 files carry a `rope_freqs` tensor (llama.cpp's converter computes it from
    rope_scaling); we recover rope_scaling and skip the tensor."""
    import math

    factor, low, high, old = 8.0, 1.0, 4.0, 8192
    base = 50000.0 ** (np.arange(0, 64, 2) / 64)
    freqs = []
    for b in base:  # convert_hf_to_gguf.py LlamaModel.generate_extra_tensors
        wavelen = 2 * math.pi * b
        if wavelen < old / high:
            freqs.append(1.0)
        elif wavelen > old / low:
            freqs.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            freqs.append(1 / ((1 - smooth) / factor + smooth))

    def extra(w):
        w.add_tensor("rope_freqs.weight", np.array(freqs, dtype=np.float32))

    ckpt = open_gguf(write_gguf(tmp_path / "l3.gguf", hf_untied, byte_tok, extra=extra))
    s = ckpt.config["rope_scaling"]
    assert s["rope_type"] == "llama3" and s["factor"] == pytest.approx(factor)
    assert (s["low_freq_factor"], s["high_freq_factor"]) == (low, high)
    assert s["original_max_position_embeddings"] == old
    assert "rope_freqs.weight" not in dict(ckpt.tensors())


def test_engine_loader_opens_gguf(f32_gguf, hf_untied):
    from tui_gen.engine.loading.loader import load_model

    loaded = load_model(f32_gguf, device="cpu", dtype="float32")
    assert loaded.source_format == "gguf:F32"
    with torch.no_grad():
        diff = (loaded.model(IDS) - hf_untied(IDS).logits).abs().max().item()
    assert diff < 1e-4
    assert loaded.tokenizer.chat_template == CHAT_TEMPLATE


# --------------------------------------------------------------------------- errors


def test_unsupported_quant_type_names_it(tmp_path, hf_untied, byte_tok):
    def extra(w):  # a Q8_1 tensor (an intermediate type nobody stores weights in)
        w.add_tensor("blk.0.ffn_up.weight", np.zeros((512, 256 // 32 * 40), np.uint8),
                     raw_dtype=Q.Q8_1)  # fmt: skip

    path = write_gguf(tmp_path / "q81.gguf", hf_untied, byte_tok, extra=extra,
                      skip=("blk.0.ffn_up.weight",))  # fmt: skip
    with pytest.raises(UnsupportedModelError) as e:
        open_gguf(path)
    msg = str(e.value)
    assert "q81.gguf" in msg and "Q8_1" in msg and "\n" not in msg


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip file" * 10)
    with pytest.raises(ModelLoadError, match=r"model\.gguf: not a GGUF file"):
        open_gguf(path)
    with pytest.raises(ModelLoadError, match="file not found"):
        open_gguf(tmp_path / "missing.gguf")
    with pytest.raises(ModelLoadError, match="is a directory"):
        open_gguf(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_file(tmp_path, f32_gguf, keep):
    data = f32_gguf.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelLoadError, match=r"cut\.gguf: truncated") as e:
        open_gguf(path)
    assert "\n" not in str(e.value)


def test_unsupported_architecture(tmp_path):
    path = tmp_path / "falcon.gguf"
    w = gguf.GGUFWriter(str(path), "falcon")
    w.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UnsupportedModelError, match=r"falcon\.gguf: unsupported architecture "
                       r"'falcon'; supported: gemma2, gemma3, gpt2, granite, llama, "):  # fmt: skip
        open_gguf(path)


# --------------------------------------------------------------------------- tokenizer


def test_byte_level_tokenizer_equals_original(f32_gguf, byte_tok):
    ckpt = open_gguf(f32_gguf)
    tok = ckpt.tokenizer
    assert tok.get_vocab_size() == byte_tok.get_vocab_size()
    for text in SAMPLES:
        ids = tok.encode(text).ids
        assert ids == byte_tok.encode(text).ids, text
        assert tok.decode(ids, skip_special_tokens=False) == text
    im_end = tok.encode("<|im_end|>").ids
    assert im_end == [2]
    assert tok.decode([1, *tok.encode("hi").ids, 2]) == "hi"  # specials skipped
    tc = ckpt.tokenizer_config
    assert (tc["bos_token"], tc["eos_token"], tc["pad_token"], tc["unk_token"]) == (
        "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>")  # fmt: skip
    assert tc["chat_template"] == CHAT_TEMPLATE and tc["add_bos_token"] is False


def test_pre_tokenizer_follows_tokenizer_ggml_pre():
    """smollm: every digit alone; gpt2: digit runs whole; llama-bpe (Llama 3): runs of up to
    three digits, and a pre-token that is itself in the vocabulary is taken whole."""
    meta = {"tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": ["1", "2", "3", "4", "12", "34", "1234", "123"],
            "tokenizer.ggml.merges": ["1 2", "3 4", "12 34"],
            "tokenizer.ggml.token_type": [1] * 8}  # fmt: skip
    ids = {
        pre: build_tokenizer(meta | {"tokenizer.ggml.pre": pre})[0].encode("1234").ids
        for pre in ("smollm", "gpt2", "llama-bpe", "qwen2")
    }
    assert ids == {"smollm": [0, 1, 2, 3], "gpt2": [6], "llama-bpe": [7, 3], "qwen2": [0, 1, 2, 3]}
    _, cfg = build_tokenizer(meta | {"tokenizer.ggml.pre": "llama-bpe"})
    assert cfg["add_bos_token"] is True  # llama.cpp's default for Llama 3 vocabularies


def test_odd_vocabularies_still_build():
    """Merges naming tokens the vocabulary lacks are dropped (tokenizers would panic), duplicate
    tokens keep their ids, and normal tokens stored as plain text are re-spelled in bytes."""
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt2",
            "tokenizer.ggml.tokens": ["a", "b", "ab", "a", "日", "Ġa"],
            "tokenizer.ggml.merges": ["a b", "a c", "b a", "Ġ a"],
            "tokenizer.ggml.token_type": [1, 1, 1, 1, 1, 1]}  # fmt: skip
    tok, _ = build_tokenizer(meta)
    assert tok.get_vocab_size() == 6
    assert tok.encode("ab").ids == [2]
    assert tok.id_to_token(3) == "<gguf-duplicate-3>"
    assert tok.id_to_token(4) == "æĹ¥"  # 日 spelled as GPT-2 bytes
    assert tok.decode([4]) == "日"


def test_sentencepiece_tokenizer(tmp_path, hf_untied):
    spm = train_sentencepiece_tokenizer()
    model = tiny_hf_model(spm.get_vocab_size(), seed=3)
    path = write_gguf(tmp_path / "spm.gguf", model, spm, tokenizer_kind="llama")
    ckpt = open_gguf(path)
    tok = ckpt.tokenizer
    for text in [*SAMPLES, "Héllo wörld ✓ 🦙"]:
        if "<|" in text:
            continue
        ids = tok.encode(text, add_special_tokens=False).ids
        assert ids == spm.encode(text).ids, text
        assert tok.decode(ids) == text
    # BOS is added, and a space is put before text that follows a special token (llama.cpp)
    assert tok.encode("the fox").ids[0] == 1
    assert tok.encode("<s>the", add_special_tokens=False).ids == [1, *spm.encode("the").ids]
    assert "<0xE2>" in [tok.id_to_token(i) for i in tok.encode("✓").ids]
    assert ckpt.tokenizer_config["add_bos_token"] is True
    assert ckpt.tokenizer_config["bos_token"] == "<s>"


# --------------------------------------------------------------------------- import


@pytest.mark.parametrize("tie", [False, True])
def test_import_gguf_writes_a_directory_transformers_opens(
    tmp_path, byte_tok, hf_untied, hf_tied, tie
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = hf_tied if tie else hf_untied
    path = write_gguf(tmp_path / "tiny.gguf", hf, byte_tok, qtype="Q8_0")
    out = import_gguf(path, tmp_path / "imported")
    names = {p.name for p in out.iterdir()}
    assert names == {"config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "generation_config.json"}  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    ours = open_gguf(path)
    with torch.no_grad():  # Q8_0: the same dequantized weights in both, so the same logits
        assert (model(IDS).logits - load_ours(ours)(IDS)).abs().max().item() < 1e-4
    tok = AutoTokenizer.from_pretrained(out)
    ours = ours.tokenizer
    for text in SAMPLES:
        assert tok(text)["input_ids"] == ours.encode(text).ids
    assert tok.chat_template == CHAT_TEMPLATE
    assert (tok.bos_token, tok.eos_token) == ("<|im_start|>", "<|im_end|>")
    gen = json.loads((out / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"]) == (1, 2)


# --------------------------------------------------------------------------- real SmolLM2


@pytest.fixture(scope="module")
def smollm2_ckpt() -> GGUFCheckpoint:
    return open_gguf(smollm2.require_gguf())


@pytest.fixture(scope="module")
def smollm2_ref() -> Path:
    return smollm2.reference_dir()


SMOLLM2_TEXT = [
    "Hello! How are you doing today? I'm fine, thanks.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "Pi is 3.14159265, e is 2.71828; 1000000 + 2024 = 1002024.",
    "    indented\t\ttabs   and   runs of spaces    \n\n\n",
    "Emoji: 😀🎉👍🏽🇫🇷 CJK: 你好，世界！ 日本語のテキスト 한국어",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "<repo_name>tui-gen<file_sep>main.py<|endoftext|>",
]


@pytest.mark.smollm2
def test_smollm2_config(smollm2_ckpt):
    c = smollm2_ckpt.config
    assert smollm2_ckpt.file_type == "Q4_1"
    assert (c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]) == (576, 30, 9)
    assert (c["num_key_value_heads"], c["vocab_size"], c["tie_word_embeddings"]) == (3, 49152, True)
    assert c["rope_theta"] == 100000.0 and c["max_position_embeddings"] == 8192


@pytest.mark.smollm2
def test_smollm2_tokenizer_matches_transformers(smollm2_ckpt, smollm2_ref):
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(smollm2_ref / "tokenizer.json"))
    ours = smollm2_ckpt.tokenizer
    assert ours.get_vocab_size() == ref.get_vocab_size()
    for text in SMOLLM2_TEXT:
        ids = ours.encode(text).ids
        assert ids == ref.encode(text).ids, text
        assert ours.decode(ids, skip_special_tokens=False) == text
    assert ours.encode("<|im_start|><|im_end|>").ids == [1, 2]


@pytest.mark.smollm2
def test_smollm2_chat_template_and_specials(smollm2_ckpt, smollm2_ref):
    ref_cfg = json.loads((smollm2_ref / "tokenizer_config.json").read_text())
    jinja = smollm2_ref / "chat_template.jinja"
    template = jinja.read_text() if jinja.exists() else ref_cfg["chat_template"]
    tc = smollm2_ckpt.tokenizer_config
    assert tc["chat_template"] == template
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert tc[key] == ref_cfg[key], key


@pytest.mark.smollm2
def test_smollm2_weights_equal_transformers(smollm2_ckpt, smollm2_ref):
    from safetensors import safe_open

    with safe_open(str(smollm2_ref / "model.safetensors"), "pt") as ref:
        names = set(ref.keys())
        seen = set()
        for name, tensor in smollm2_ckpt.tensors():
            expected = ref.get_tensor(name)
            assert tensor.shape == expected.shape, name
            assert (tensor - expected).abs().max().item() <= 1e-6, name
            seen.add(name)
    assert seen == names - {"lm_head.weight"}


@pytest.mark.smollm2
def test_smollm2_logits_equal_transformers(smollm2_ckpt, smollm2_ref):
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([smollm2_ckpt.tokenizer.encode(SMOLLM2_TEXT[5] + "Tell me a joke.").ids])
    ours = load_ours(smollm2_ckpt)
    ref = AutoModelForCausalLM.from_pretrained(smollm2_ref, dtype=torch.float32).eval()
    with torch.no_grad():
        assert (ours(ids) - ref(ids).logits).abs().max().item() < 1e-4


@pytest.mark.smollm2
def test_smollm2_opens_every_tensor():
    """Its open time (about 2.3 s here) is measured by `tui-gen bench`, not asserted."""
    ckpt = open_gguf(smollm2.require_gguf())
    n = sum(t.numel() for _, t in ckpt.tensors())
    assert n > 130_000_000
