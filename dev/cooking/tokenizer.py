"""Train and save the demo model's byte-level BPE tokenizer.

Byte-level BPE (GPT-2's scheme) can encode any text a user types, even characters the cooking
corpus never shows, so the model never meets an unknown token. The chat-role and end-of-turn
markers are added as special tokens so each is one id that ordinary text can never produce,
which is what makes the end-of-turn token a reliable stop signal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from dev.cooking.corpus import CHAT_TEMPLATE, END, SPECIAL_TOKENS


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> Tokenizer:
    """A GPT-2-style byte-level BPE trained on `texts`; special tokens get ids 0..3.

    The special tokens are stripped from the training text first so no merge is spent on
    fragments of them ("<|", "|>").
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def stripped() -> Iterable[str]:
        for t in texts:
            for s in SPECIAL_TOKENS:
                t = t.replace(s, "\n")
            yield t

    tok.train_from_iterator(stripped(), trainer=trainer)
    return tok


def tokenizer_config(model_max_length: int) -> dict[str, Any]:
    """tokenizer_config.json in the shape transformers writes, with our chat template.

    There is no separate BOS: like GPT-2, the end token also separates documents, so an empty
    prompt starts from it and add_bos_token stays false.
    """
    added = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, t in enumerate(SPECIAL_TOKENS)
    }
    return {
        "added_tokens_decoder": added,
        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t != END],
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": END,
        "eos_token": END,
        "pad_token": END,
        "unk_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def save_tokenizer(tok: Tokenizer, out_dir: Path, model_max_length: int) -> None:
    """Write tokenizer.json and tokenizer_config.json (with the chat template and eos)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    cfg = tokenizer_config(model_max_length)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
