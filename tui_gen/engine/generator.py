"""The public engine: load a model once, then generate text from prompts, streamed or not.

The decode loop is a Python generator of events (see events.py). It prefills the prompt into a
preallocated KV cache, then feeds one token per step. Between steps it checks a
`threading.Event`, so a UI thread can stop it within one step. The cache remembers which ids it
holds, so a prompt that extends the previous one (the next turn of a chat) only prefills the
new tokens.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from tui_gen.engine.context import truncate_prompt
from tui_gen.engine.events import (
    Event,
    FinishEvent,
    FinishReason,
    GenerationResult,
    GenerationStats,
    NoticeEvent,
    TokenEvent,
)
from tui_gen.engine.loading.loader import LoadedModel, load_model
from tui_gen.engine.logprobs import TokenTexts, read_logprobs
from tui_gen.engine.native.gguf_linear import check_activations, set_activations
from tui_gen.engine.sampling import check_logit, choose, make_generator, process_logits
from tui_gen.engine.scoring import ScoreResult, score_ids
from tui_gen.engine.stop import StopStringMatcher
from tui_gen.engine.threads import TorchThreads, release_pool
from tui_gen.errors import TuiGenError
from tui_gen.models.kv_cache import KVCache, kv_dtype, new_cache
from tui_gen.options import BeamParams, SamplingParams, check_value

#: default ceiling on the KV cache when --max-context is not given (the model's own context can
#: be far larger, and the cache is preallocated: 8K positions of SmolLM2 are 377 MB in float32)
DEFAULT_MAX_CONTEXT = 4096

Prompt = str | Sequence[int]


#: (idx (b, 1), start column, cache, positions (b, 1) | None, key_padding (b, S) | None)
#: -> logits (b, 1, V)
BatchStep = Callable[
    [torch.Tensor, int, KVCache, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor
]


class Generator:
    """A loaded model with its KV cache. Not thread-safe: one generation at a time."""

    def __init__(
        self,
        loaded: LoadedModel,
        max_context: int | None = None,
        quantize: str | None = None,
        kv_cache_dtype: str = "auto",
        activations: str = "fast",
    ) -> None:
        if quantize is not None:  # --quantize int8|int4 (engine/quantize.py)
            from tui_gen.engine.loading.loader import apply_quantization
            from tui_gen.engine.quantize import MODES, check_mode

            mode = check_mode(quantize)
            if mode in MODES:
                apply_quantization(loaded, mode)
        from tui_gen.engine.layout import prepare_for_decode

        prepare_for_decode(loaded.model, loaded.device, quantized=loaded.quantization is not None)
        #: --activations (GGUF blocks and int4: one 8-bit plane, or two for float32's tokens)
        self.activations = check_activations(activations)
        if self.activations != "fast" and set_activations(loaded.model, self.activations):
            loaded.quantization = f"{loaded.quantization}, precise activations (two 8-bit planes)"
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.config = loaded.config
        self.device = loaded.device
        self.dtype = loaded.dtype
        #: the dtype every KV cache of this model is kept in (--kv-cache-dtype)
        self.kv_dtype = kv_dtype(kv_cache_dtype, self.dtype, self.config.recurrent)
        model_ctx = self.config.max_position_embeddings
        if max_context is not None and max_context < 2:
            raise TuiGenError(f"max_context={max_context} is too small; use at least 2")
        self.max_context = min(model_ctx, max_context or DEFAULT_MAX_CONTEXT)
        if self.config.recurrent and max_context is None:
            # a recurrent state (BDH) is the same size at any length: no default ceiling
            self.max_context = model_ctx
        self.defaults = SamplingParams.from_generation_config(loaded.generation_config)
        self._cache: KVCache | None = None
        self._cached_ids: list[int] = []
        # Phi-3 LongRoPE: past this many positions the model rotates by other factors, and
        # keys cached before are recomputed (models/phi3.py `rope_switch`); None elsewhere
        self._rope_switch: int | None = getattr(self.model, "rope_switch", None)
        self._cache_long = False  # the cache holds keys rotated past the switch
        self._native: tuple[Any, str] | None = None  # (NativeDecoder | None, why not)
        self._busy = threading.Lock()
        self._token_texts: TokenTexts | None = None
        # loading ran parallel torch work on this thread; its idle OpenMP pool would slow the
        # decode of whichever other thread generates (a server's scheduler, the app's worker)
        if torch.device(self.device).type == "cpu":
            release_pool()

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        dtype: str = "auto",
        max_context: int | None = None,
        quantize: str | None = None,
        kv_cache_dtype: str = "auto",
        activations: str = "fast",
    ) -> Generator:
        """Open a model directory or .gguf file; see loader.load_model (`quantize`: int8|int4;
        `kv_cache_dtype`: auto, float32 or bfloat16; `activations`: fast or precise, see
        gguf_linear.ACTIVATIONS)."""
        kv_dtype(kv_cache_dtype, torch.float32)  # a bad value fails before the model loads
        check_activations(activations)
        loaded = load_model(path, device=device, dtype=dtype, quantize=quantize)
        return cls(
            loaded, max_context=max_context, kv_cache_dtype=kv_cache_dtype, activations=activations
        )

    # --- properties the UI and `info` show -----------------------------------------------
    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def chat_template(self) -> str | None:
        return self.tokenizer.chat_template

    @property
    def eos_token_ids(self) -> list[int]:
        return self.tokenizer.eos_token_ids

    @property
    def kv_cache_bytes(self) -> int:
        """Bytes the (batch 1) KV cache takes at max_context, allocated or not."""
        return self.config.kv_cache_bytes(self.max_context, self._kv_element_size())

    def _kv_element_size(self) -> int:
        return torch.empty((), dtype=self.kv_dtype).element_size()

    @property
    def cached_tokens(self) -> int:
        """How many positions of the cache hold the current conversation."""
        return len(self._cached_ids)

    def reset(self) -> None:
        """Forget the conversation held in the KV cache."""
        with self._busy:
            if self._cache is not None:
                self._cache.reset()
            self._cached_ids = []

    # --- prompt handling -------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    @property
    def token_texts(self) -> TokenTexts:
        """Each token's text on its own (for per-token probabilities), remembered per id."""
        if self._token_texts is None:
            self._token_texts = TokenTexts(self.tokenizer)
        return self._token_texts

    def _start_ids(self) -> list[int]:
        """What an empty prompt starts from: BOS, or a newline for byte-level models."""
        tok = self.tokenizer
        if tok.byte_level:
            return [10]
        if tok.bos_token_id is not None:
            return [tok.bos_token_id]
        if tok.eos_token_ids:  # GPT-2 style: <|endoftext|> separates documents
            return [tok.eos_token_ids[0]]
        raise TuiGenError("the prompt is empty and the model has no BOS token; type a prompt")

    def params(self, params: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        """The model's defaults (generation_config.json), then `params`, then keyword overrides."""
        base = params if params is not None else self.defaults
        return base.replace(**overrides) if overrides else base.replace()

    # --- the decode loop --------------------------------------------------------------------
    def stream_events(
        self,
        prompt: Prompt,
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
        add_special_tokens: bool = True,
        prefix_ids: Sequence[int] = (),
        **overrides: Any,
    ) -> Iterator[Event]:
        """Yield TokenEvents (and NoticeEvents), then exactly one FinishEvent.

        `prompt` is text (encoded with the tokenizer's special tokens, e.g. a BOS) or token ids.
        Setting `cancel` stops before the next model step; the partial text is kept.
        `logprobs=N` (an override or in `params`) attaches TokenLogprobs to every TokenEvent.

        `prefix_ids` branch a reply: they already belong to it (kept tokens of an earlier reply
        and a chosen alternative), the model continues after prompt + prefix (the KV cache
        reuses everything it holds up to there), TokenEvents cover the new tokens only,
        max_new_tokens counts new tokens, and the FinishEvent's text and token_ids are the
        whole reply, prefix included. A prefix ending in an end-of-sequence id (or completing
        a stop string) is a finished reply: no model step runs.
        """
        p = self.params(params, **overrides)
        ids = self._prompt_ids(prompt, add_special_tokens)
        prefix = self._prompt_ids(prefix_ids)
        if not self._busy.acquire(blocking=False):
            raise TuiGenError("a generation is already running on this model; stop it first")
        try:
            yield from self._run(ids, p, cancel, prefix)
        finally:
            self._busy.release()

    @property
    def decode_backend(self) -> str:
        """How one token is decoded: "native" (every layer in one C call) or "torch"."""
        self._decode_step(self._ensure_cache())
        assert self._native is not None
        return "native" if self._native[0] is not None else "torch"

    @property
    def decode_reason(self) -> str:
        """Why one token decodes in torch ("phi3: partial rotary ..."); "" when native."""
        self._decode_step(self._ensure_cache())
        assert self._native is not None
        return self._native[1] if self._native[0] is None else ""

    def _native_decoder(self) -> Any:
        """The NativeDecoder of this model (built on first use, rebuilt when the model's
        tensors changed), or None; the reason lands in self._native[1]."""
        decoder = self._native[0] if self._native is not None else None
        if decoder is not None and not decoder.describes(self.model):  # changed since built
            self._native = None
        if self._native is None:
            from tui_gen.engine.native.qlinear import decode_unavailable

            why = decode_unavailable(self.device, self.dtype)
            if why:
                self._native = (None, why)
            else:
                from tui_gen.engine.native.decode import NativeDecoder

                self._native = NativeDecoder.build(self.model)
        return self._native[0]

    def engine_threads(self) -> contextlib.AbstractContextManager[None]:
        """A block in which torch runs on the thread count the decode governor chose
        (engine/threads.py): on a machine whose other core is busy that is one thread, where
        torch's two made a 12-token prompt take a second. Used around a prompt's forward and
        around each decode step with its sampling, never across a yield."""
        decoder = self._native_decoder()
        if decoder is None:
            return contextlib.nullcontext()
        return TorchThreads(decoder.chosen_threads)

    def _decode_step(self, cache: KVCache) -> Callable[[torch.Tensor, int, KVCache], torch.Tensor]:
        """The one-token forward: the native step for a float32, bfloat16 or natively quantized
        CPU model (see engine/native/decode.py), else the model's own forward."""
        decoder = self._native_decoder()
        if decoder is not None and decoder.supports(cache):
            return decoder.step
        return lambda idx, start, cache: self.model(idx, start=start, cache=cache)

    def batch_step(self, cache: KVCache) -> BatchStep:
        """The one-token forward of several rows at once (engine/batch.py, the server's
        scheduler): idx (b, 1), the cache column to write, the cache, then per-row positions
        (b, 1) and the key mask (b, S) (both None when no row is padded); returns new logits
        (b, 1, V).

        The native rows step (every weight read once for all rows; NativeDecoder.step_rows)
        where the model and the cache given to each call allow it, else the model's own
        forward. The choice is made per call, on that call's cache, so a cache replaced
        between steps (finished rows dropped, a row spliced in) is fine."""
        decoder = self._native_decoder()
        del cache  # the cache of each call decides

        def step(
            idx: torch.Tensor,
            start: int,
            cache: KVCache,
            positions: torch.Tensor | None,
            key_padding: torch.Tensor | None,
        ) -> torch.Tensor:
            if decoder is not None and decoder.supports_rows(cache):
                return decoder.step_rows(idx, start, cache, positions, key_padding)
            return self.model(
                idx, start=start, cache=cache, positions=positions, key_padding=key_padding
            )

        return step

    def batch_backend(self, cache: Any) -> str:
        """Which forward batch_step runs on `cache`: "native" (NativeDecoder.step_rows) or
        "torch"."""
        decoder = self._native_decoder()
        return "native" if decoder is not None and decoder.supports_rows(cache) else "torch"

    def _ensure_cache(self) -> KVCache:
        if self._cache is None:
            self._cache = new_cache(
                self.model, self.config, 1, self.max_context, self.kv_dtype, self.device
            )
        return self._cache

    def _run(
        self,
        ids: list[int],
        p: SamplingParams,
        cancel: threading.Event | None,
        prefix: list[int] | None = None,
    ) -> Iterator[Event]:
        t_call = time.perf_counter()
        stats = GenerationStats()
        prefix = prefix or []
        if not ids:
            ids = self._start_ids()
        ids = ids + prefix
        ctx = self.max_context
        ids, notice = truncate_prompt(ids, p.max_new_tokens, ctx)
        if notice:
            stats.prompt_truncated = True
            yield NoticeEvent(notice, kind="prompt_truncated")
        stats.prompt_tokens = len(ids)
        decoder = self.tokenizer.stream_decoder()
        # the reply so far: the prefix's text is part of it (a stop string may span it) but
        # was shown already, so it is never released as a delta
        head = "".join(decoder.step(t) for t in prefix)
        stops = StopStringMatcher(p.stop_strings, prefix=head)
        eos = set(self.tokenizer.eos_token_ids)
        if prefix and prefix[-1] in eos:
            yield FinishEvent("eos", stops.text, prefix[:-1], stats)
            return
        if stops.hit is not None or p.max_new_tokens == 0:
            yield FinishEvent("stop" if stops.hit else "length", stops.text, prefix, stats)
            return

        cache = self._ensure_cache()
        # Reuse the longest prefix the cache already holds (at least one token is recomputed,
        # because we need its logits).
        reuse = 0
        limit = min(len(self._cached_ids), len(ids) - 1)
        while reuse < limit and self._cached_ids[reuse] == ids[reuse]:
            reuse += 1
        switch = self._rope_switch
        if switch is not None and reuse and self._cache_long != (len(ids) > switch):
            reuse = 0  # the cached keys were rotated by the other factors: recompute them
        cache.truncate(reuse)
        reuse = cache.length  # a recurrent state may go back further (models/bdh.py)
        self._cached_ids = self._cached_ids[:reuse]

        dev = self.device
        n_prompt = len(ids)
        # every token of the sequence, for the repetition penalty: (1, at most ctx)
        seq = torch.zeros((1, min(ctx, n_prompt + p.max_new_tokens)), dtype=torch.long, device=dev)
        seq[0, : len(ids)] = torch.tensor(ids, dtype=torch.long, device=dev)
        n = len(ids)
        rng = None if p.greedy else make_generator(p.seed, dev)
        generated: list[int] = []
        texts = self.token_texts if p.logprobs else None
        penalty = p.repetition_penalty != 1.0
        reason: FinishReason = "length"

        step = self._decode_step(cache)
        threads = self.engine_threads()  # entered around work, left before every yield
        with torch.inference_mode():
            if cancel is not None and cancel.is_set():
                yield FinishEvent("cancelled", stops.text, prefix, stats)
                return
            t0 = time.perf_counter()
            with threads:
                logits = self.model(seq[:, reuse:n], start=reuse, cache=cache, last_only=True)
            logits = logits[:, -1]
            self._cached_ids = list(ids)
            self._cache_long = switch is not None and n > switch
            stats.prefill_tokens = n - reuse
            busy = 0.0  # time spent in this generator, not in the consumer between yields
            t_prev = t0
            while True:
                with threads:
                    processed = process_logits(logits, p, seq[:, :n] if penalty else None)
                    tok, column = choose(processed, rng)  # (1,), (1,)
                    tok_id = int(tok)
                    check_logit(logits, tok_id, index=len(generated))
                    lp = None
                    if texts is not None:
                        col = tok_id if processed.final is None else int(column)
                        lp = read_logprobs(processed, (tok_id,), (col,), (p.logprobs,), texts)[0]
                now = time.perf_counter()
                busy += now - t_prev
                if not generated:
                    stats.time_to_first_token = now - t_call
                    stats.prefill_seconds = now - t0
                    busy = 0.0
                if tok_id in eos:
                    reason = "eos"
                    break
                generated.append(tok_id)
                seq[0, n] = tok_id
                n += 1
                delta, hit = stops.feed(decoder.step(tok_id))
                stats.generated_tokens = len(generated)
                stats.decode_seconds = busy
                yield TokenEvent(tok_id, delta, logprobs=lp)
                t_prev = time.perf_counter()
                if hit:
                    reason = "stop"
                    break
                if len(generated) >= p.max_new_tokens or n >= ctx:
                    reason = "length"
                    break
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
                with threads:
                    if switch is not None and n - 1 == switch:
                        # crossing into the long factors: every key again, from position 0, as
                        # transformers' Phi-3 generate() drops its cache at this token
                        logits = self.model(seq[:, :n], start=0, cache=cache, last_only=True)
                        logits = logits[:, -1]
                        self._cache_long = True
                    else:
                        logits = step(tok.view(1, 1), n - 1, cache)[:, -1]
                self._cached_ids.append(tok_id)
        tail = stops.close(decoder.flush())
        if tail:
            yield TokenEvent(-1, tail)  # text released at the end, not a new token
        stats.generated_tokens = len(generated)
        stats.decode_seconds = busy
        yield FinishEvent(reason, stops.text, prefix + generated, stats)

    # --- convenience API -------------------------------------------------------------------
    def generate_stream(self, prompt: Prompt, **params: Any) -> Iterator[str]:
        """Yield text deltas as they are generated (use stream_events for the full events)."""
        for ev in self.stream_events(prompt, **params):
            if isinstance(ev, TokenEvent) and ev.text:
                yield ev.text

    def generate_result(self, prompt: Prompt, **params: Any) -> GenerationResult:
        for ev in self.stream_events(prompt, **params):
            if isinstance(ev, FinishEvent):
                return GenerationResult(ev.text, ev.reason, ev.token_ids, ev.stats)
        raise AssertionError("stream_events ended without a FinishEvent")  # pragma: no cover

    def generate(self, prompt: Prompt, **params: Any) -> str:
        """The whole reply as one string."""
        return self.generate_result(prompt, **params).text

    def generate_batch(
        self, prompts: Sequence[Prompt], *, batch_size: int | None = None, **params: Any
    ) -> list[str]:
        """One reply per prompt, in order, decoded together (see engine/batch.py)."""
        texts = [""] * len(prompts)
        for ev in self.stream_batch(prompts, batch_size=batch_size, **params):
            if isinstance(ev, FinishEvent):
                texts[ev.index] = ev.text
        return texts

    def stream_batch(
        self,
        prompts: Sequence[Any],
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
        batch_size: int | None = None,
        add_special_tokens: bool = True,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Events of a batched generation; each event's `index` is the prompt's position.

        Items are prompts (text or ids, sharing `params`) or batch.Request objects carrying
        their own ids, sampling values and index.
        """
        from tui_gen.engine.batch import Request, stream_requests

        p = self.params(params, **overrides)
        reqs = []
        for i, item in enumerate(prompts):
            if not isinstance(item, Request):
                item = Request(self._prompt_ids(item, add_special_tokens), p, i)
            reqs.append(item if item.ids else Request(self._start_ids(), item.params, item.index))
        if not self._busy.acquire(blocking=False):
            raise TuiGenError("a generation is already running on this model; stop it first")
        try:
            yield from stream_requests(self, reqs, cancel=cancel, batch_size=batch_size)
        finally:
            self._busy.release()

    def beam_search(
        self,
        prompt: Prompt,
        num_beams: int = 4,
        *,
        length_penalty: float = 1.0,
        early_stopping: bool | str = False,
        num_return_sequences: int = 1,
        cancel: threading.Event | None = None,
        add_special_tokens: bool = True,
        **overrides: Any,
    ) -> Any:
        """Beam search (engine/beam.py); returns a BeamOutput with the best hypotheses first.

        Of the sampling values only max_new_tokens, repetition_penalty and stop_strings apply.
        """
        from tui_gen.engine.beam import beam_search

        p = self.params(None, **overrides)
        bp = BeamParams(num_beams, length_penalty, early_stopping, num_return_sequences)
        ids = self._prompt_ids(prompt, add_special_tokens) or self._start_ids()
        _check_beam_memory(self, len(ids), p.max_new_tokens, bp.num_beams)
        if not self._busy.acquire(blocking=False):
            raise TuiGenError("a generation is already running on this model; stop it first")
        try:
            return beam_search(
                self,
                ids,
                p.max_new_tokens,
                bp,
                repetition_penalty=p.repetition_penalty,
                stop_strings=p.stop_strings,
                cancel=cancel,
                logprobs=p.logprobs,
            )
        finally:
            self._busy.release()

    def score(
        self, text_or_ids: Prompt, *, top: int = 0, add_special_tokens: bool = True
    ) -> ScoreResult:
        """The log-probability the model gives every token of a text (or of token ids), and
        the text's perplexity, in one prefill: a ScoreResult (engine/scoring.py). `top=N` also
        keeps the N most likely alternatives at each position. Text is encoded with the
        tokenizer's special tokens (a BOS), so its first word is predicted too; a first token
        nothing precedes has no prediction (logprob None, left out of the perplexity)."""
        check_value("logprobs", top)  # the same 0..20 as SamplingParams.logprobs
        ids = self._prompt_ids(text_or_ids, add_special_tokens)
        if not self._busy.acquire(blocking=False):
            raise TuiGenError("a generation is already running on this model; stop it first")
        try:
            cache = self._ensure_cache()
            self._cached_ids = []
            result = score_ids(self.model, cache, ids, top, self.token_texts, self.max_context)
            self._cached_ids = ids[:-1]  # a prompt that starts with the text reuses it
            return result
        finally:
            self._busy.release()

    def _prompt_ids(self, prompt: Prompt, add_special_tokens: bool = True) -> list[int]:
        if isinstance(prompt, str):
            return self.encode(prompt, add_special_tokens=add_special_tokens)
        ids = [int(i) for i in prompt]
        bad = [i for i in ids if not 0 <= i < self.config.vocab_size]
        if bad:
            raise TuiGenError(
                f"token id {bad[0]} is outside the vocabulary (0..{self.config.vocab_size - 1})"
            )
        return ids


def _check_beam_memory(gen: Generator, prompt: int, max_new_tokens: int, beams: int) -> None:
    """Refuse a beam search whose KV caches (one per beam) could not fit in the machine's
    memory, before allocating them."""
    columns = min(gen.max_context, prompt + max_new_tokens)
    need = gen.config.kv_cache_bytes(columns, gen._kv_element_size(), batch=beams)
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return
    if need > total:
        raise TuiGenError(
            f"{beams} beams need {need / 2**30:.1f} GiB of KV cache but the machine has "
            f"{total / 2**30:.1f} GiB; use fewer beams or a smaller --max-new-tokens"
        )
