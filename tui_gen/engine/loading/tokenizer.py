"""Tokenizers: `tokenizer.json` through the `tokenizers` library, or raw UTF-8 bytes.

Special tokens are scattered over four files in real checkpoints and they disagree; we read them
in a fixed order of trust (tokenizer_config.json, special_tokens_map.json,
generation_config.json, config.json) so the same directory always gives the same answer.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from tui_gen.engine.loading.spm import SentencePieceBPE
from tui_gen.errors import ModelLoadError
from tui_gen.models.config import ModelConfig, check_regular, read_json


class StreamDecoder(Protocol):
    def step(self, token_id: int) -> str: ...

    def flush(self) -> str:
        """What is still held at the end (an incomplete character, shown as U+FFFD)."""
        ...


def _token_content(value: Any) -> str | None:
    """Special tokens are either "<s>" or {"content": "<s>", ...} depending on the writer."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if isinstance(v, int)]
    return [int(value)] if isinstance(value, int) else []


class Tokenizer:
    """Text <-> ids, special tokens, chat template and a streaming decoder factory."""

    vocab_size: int
    bos_token_id: int | None
    eos_token_ids: list[int]
    pad_token_id: int | None
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    add_bos_token: bool
    byte_level: bool = False

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        raise NotImplementedError

    def stream_decoder(self) -> StreamDecoder:
        raise NotImplementedError

    def token_to_id(self, token: str) -> int | None:
        raise NotImplementedError

    @property
    def special_tokens(self) -> dict[str, Any]:
        return {
            "bos": self.bos_token,
            "bos_id": self.bos_token_id,
            "eos": self.eos_token,
            "eos_ids": self.eos_token_ids,
            "pad_id": self.pad_token_id,
        }


class _HFStream:
    """tokenizers.decoders.DecodeStream: never splits a character across two deltas."""

    def __init__(self, tok: Any) -> None:
        from tokenizers.decoders import DecodeStream

        self._tok = tok
        self._stream = DecodeStream(skip_special_tokens=True)
        self._ids: list[int] = []
        self._shown = 0  # characters emitted so far

    def step(self, token_id: int) -> str:
        self._ids.append(token_id)
        out = self._stream.step(self._tok, token_id) or ""
        self._shown += len(out)
        return out

    def flush(self) -> str:
        # Only an unfinished character can be pending; the full decode shows it as U+FFFD.
        full = self._tok.decode(self._ids, skip_special_tokens=True)
        out = full[self._shown :]
        self._shown = len(full)
        return out


class HFTokenizer(Tokenizer):
    def __init__(self, tok: Any, specials: dict[str, Any]) -> None:
        self._tok = tok
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self.chat_template = specials.get("chat_template")
        self.bos_token = specials.get("bos_token")
        self.eos_token = specials.get("eos_token")
        self.add_bos_token = bool(specials.get("add_bos_token", False))
        self.bos_token_id = specials.get("bos_token_id")
        self.eos_token_ids = specials.get("eos_token_ids", [])
        self.pad_token_id = specials.get("pad_token_id")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def stream_decoder(self) -> StreamDecoder:
        if isinstance(self._tok, SentencePieceBPE):  # a GGUF's SentencePiece vocabulary
            return self._tok.stream_decoder()
        return _HFStream(self._tok)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    @property
    def backend(self) -> Any:
        """The underlying tokenizers.Tokenizer (or, from a GGUF's SentencePiece vocabulary,
        spm.SentencePieceBPE, which offers the same encode/decode/token_to_id)."""
        return self._tok


class _ByteStream:
    """Incremental UTF-8: a character split over several byte tokens appears once complete."""

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def step(self, token_id: int) -> str:
        return self._dec.decode(bytes([token_id]))

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)


class ByteTokenizer(Tokenizer):
    """256-token models: UTF-8 bytes in, bytes out, invalid bytes shown as U+FFFD."""

    byte_level = True

    def __init__(self) -> None:
        self.vocab_size = 256
        self.bos_token_id = None
        self.eos_token_ids = []
        self.pad_token_id = None
        self.chat_template = None
        self.bos_token = self.eos_token = None
        self.add_bos_token = False

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        return _ByteStream()

    def token_to_id(self, token: str) -> int | None:
        b = token.encode("utf-8")
        return b[0] if len(b) == 1 else None


def resolve_specials(
    tok: Any,
    tokenizer_config: dict[str, Any],
    special_map: dict[str, Any],
    generation_config: dict[str, Any],
    config: dict[str, Any],
) -> dict[str, Any]:
    """bos/eos/pad from the four files, most trusted first; eos may be several ids."""
    vocab_size = tok.get_vocab_size(with_added_tokens=True)

    def tid(token: str | None) -> int | None:
        return tok.token_to_id(token) if token else None

    def valid(ids: list[int]) -> list[int]:
        return [i for i in ids if 0 <= i < vocab_size]

    out: dict[str, Any] = {
        "chat_template": tokenizer_config.get("chat_template"),
        "add_bos_token": tokenizer_config.get("add_bos_token", False),
    }
    for name in ("bos", "eos", "pad"):
        token_str = _token_content(tokenizer_config.get(f"{name}_token")) or _token_content(
            special_map.get(f"{name}_token")
        )
        ids = valid(_as_ids(tid(token_str)))
        for source in (generation_config, config):
            if not ids:
                ids = valid(_as_ids(source.get(f"{name}_token_id")))
        if name == "eos":
            # generation_config often lists extra stop ids (e.g. end-of-turn and end-of-text)
            for extra in valid(_as_ids(generation_config.get("eos_token_id"))):
                if extra not in ids:
                    ids.append(extra)
            out["eos_token_ids"] = ids
            out["eos_token"] = token_str or (tok.id_to_token(ids[0]) if ids else None)
        else:
            out[f"{name}_token_id"] = ids[0] if ids else None
            out[f"{name}_token"] = token_str or (tok.id_to_token(ids[0]) if ids else None)
    return out


def load_chat_template(model_dir: Path, tokenizer_config: dict[str, Any]) -> str | None:
    """The template may be in tokenizer_config.json (4.x) or chat_template.jinja (5.x)."""
    jinja = model_dir / "chat_template.jinja"
    check_regular(jinja)
    if jinja.exists():
        try:
            return jinja.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ModelLoadError(
                f"{jinja}: not UTF-8 text (byte {e.start}); save the template as UTF-8"
            ) from None
    tpl = tokenizer_config.get("chat_template")
    if isinstance(tpl, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in tpl if isinstance(t, dict)}
        tpl = named.get("default") or next(iter(named.values()), None)
    return tpl if isinstance(tpl, str) else None


def load_tokenizer(model_dir: Path, cfg: ModelConfig) -> Tokenizer:
    path = model_dir / "tokenizer.json"
    check_regular(path)
    if not path.exists():
        if cfg.vocab_size == 256:
            return ByteTokenizer()
        raise ModelLoadError(
            f"{path}: file not found; copy the model's tokenizer.json next to config.json "
            "(only 256-token byte-level models can do without one)"
        )
    from tokenizers import Tokenizer as RawTokenizer

    try:
        tok = RawTokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises a plain Exception with its parse error
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelLoadError(f"{path}: cannot be read as a tokenizer ({first})") from None
    tokenizer_config = read_json(model_dir / "tokenizer_config.json", required=False)
    specials = resolve_specials(
        tok,
        tokenizer_config,
        read_json(model_dir / "special_tokens_map.json", required=False),
        read_json(model_dir / "generation_config.json", required=False),
        cfg.raw,
    )
    specials["chat_template"] = load_chat_template(model_dir, tokenizer_config)
    return HFTokenizer(tok, specials)
