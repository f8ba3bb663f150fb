"""Tiny random models written to disk exactly as real checkpoints are, for tests.

The reference implementation (transformers) builds and saves them, so the files have the real
names, layouts and config spellings; our loader must then open them like any download.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPECIALS = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Preheat the oven to 200 degrees. Mix the flour, sugar and butter; bake for 25 minutes.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # 5\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 -42",
    "Unicode: café naïve résumé — “quotes” 日本語のテキスト 中文 한국어 🍕🎉👩‍🍳 e\u0301",
    "[bold red]not markup[/] and \x1b[31mescape\x1b[0m sequences",
]


def build_tokenizer(vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer (GPT-2 style) trained on a few lines, with chat specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tok


def write_tokenizer(out: Path, chat_template: str | None = CHAT_TEMPLATE) -> int:
    """Write tokenizer.json + tokenizer_config.json; return the vocabulary size."""
    tok = build_tokenizer()
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    cfg: dict[str, Any] = {"bos_token": "<|endoftext|>", "eos_token": "<|end|>"}
    if chat_template:
        cfg["chat_template"] = chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(cfg))
    return tok.get_vocab_size()


def _ids(out: Path) -> dict[str, int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    return {s: tok.token_to_id(s) for s in SPECIALS}


def make_model(
    out: Path,
    arch: str = "llama",
    *,
    seed: int = 0,
    tie: bool | None = None,
    max_shard_size: str | None = None,
    chat_template: str | None = CHAT_TEMPLATE,
    **overrides: Any,
) -> Path:
    """Save a random tiny `arch` ("gpt2", "llama", "qwen2", "mistral", "olmo2", "granite",
    "smollm3", "phi3") model to `out`."""
    import torch
    import transformers as tf

    vocab = write_tokenizer(out, chat_template)
    ids = _ids(out)
    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|end|>"],
    )
    if arch == "gpt2":
        cfg = tf.GPT2Config(
            n_layer=2,
            n_head=4,
            n_embd=64,
            n_positions=256,
            tie_word_embeddings=True,
            **common,
            **overrides,
        )
        model_cls = tf.GPT2LMHeadModel
    else:
        cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "mistral": tf.MistralConfig,
               "olmo2": tf.Olmo2Config, "granite": tf.GraniteConfig,
               "smollm3": tf.SmolLM3Config, "phi3": tf.Phi3Config, "qwen3": tf.Qwen3Config,
               "gemma3_text": tf.Gemma3TextConfig, "gemma2": tf.Gemma2Config}  # fmt: skip
        kw: dict[str, Any] = dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            hidden_size=64,
            intermediate_size=128,
            max_position_embeddings=256,
            rope_theta=10000.0,
            tie_word_embeddings=False if tie is None else tie,
        )
        if arch in ("gemma3_text", "gemma2"):
            kw.update(head_dim=16, query_pre_attn_scalar=16, tie_word_embeddings=tie is not False)
        kw.update(common)
        kw.update(overrides)
        cfg = cls[arch](**kw)
        model_cls = {
            "llama": tf.LlamaForCausalLM,
            "qwen2": tf.Qwen2ForCausalLM,
            "mistral": tf.MistralForCausalLM,
            "olmo2": tf.Olmo2ForCausalLM,
            "granite": tf.GraniteForCausalLM,
            "smollm3": tf.SmolLM3ForCausalLM,
            "phi3": tf.Phi3ForCausalLM,
            "qwen3": tf.Qwen3ForCausalLM,
            "gemma3_text": tf.Gemma3ForCausalLM,
            "gemma2": tf.Gemma2ForCausalLM,
        }[arch]
    if tie is not None and arch == "gpt2":
        cfg.tie_word_embeddings = tie
    model = model_cls(cfg).eval()
    if arch in ("qwen3", "gemma3_text", "gemma2"):  # random norms (they start at 1 / 0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.normal_(0.0 if arch != "qwen3" else 1.0, 0.3)
    if arch == "qwen2":  # random biases, so a missing bias would show in the logits
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (
                    layer.self_attn.q_proj,
                    layer.self_attn.k_proj,
                    layer.self_attn.v_proj,
                ):
                    proj.bias.normal_(0, 0.5)
    if arch in ("olmo2", "granite", "smollm3", "phi3"):  # random norms: a misplaced one shows
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.normal_(1.0, 0.3)
    kwargs: dict[str, Any] = {"safe_serialization": True}
    if max_shard_size:
        kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(out, **kwargs)
    (out / "generation_config.json").write_text(
        json.dumps({"eos_token_id": ids["<|end|>"], "temperature": 0.7, "top_k": 20})
    )
    return out


def make_byte_model(out: Path, seed: int = 0) -> Path:
    """A 256-token byte-level GPT-2 with no tokenizer.json (the research-model case)."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    cfg = tf.GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=128, vocab_size=256)
    cfg.bos_token_id = cfg.eos_token_id = None
    tf.GPT2LMHeadModel(cfg).eval().save_pretrained(out, safe_serialization=True)
    return out
