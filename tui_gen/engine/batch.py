"""True batched decoding: several prompts share one forward pass per step.

Layout of the batch KV cache (B rows, P = longest prompt, `_` = left padding):

    cache column   0 1 2 3 4 | 5 6 7 ...      (one column per step for every row)
    row 0 (len 5)  t t t t t | g g g
    row 1 (len 2)  _ _ _ t t | g g g          key_padding masks the `_` columns
    positions      row 0: 0 1 2 3 4 | 5 6 7   row 1: 0 0 0 0 1 | 2 3 4

Left padding puts every prompt's last token in the same column, so a decode step is one
(B, 1) forward. Each row keeps its own positions (RoPE / learned embeddings see the same
numbers as when the prompt runs alone) and the mask hides the padding keys, so a row's tokens
match a one-at-a-time run (greedy: exactly; tests check it).

A row that finishes (EOS, stop string, its own max_new_tokens) emits its FinishEvent and is
dropped from the batch: the cache, the token buffer and the mask keep only the live rows, so
the remaining rows do not pay for it. Sampling is per row with the row's own seeded
torch.Generator, so a seeded prompt gives the same reply alone or in any batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tui_gen.engine.context import truncate_prompt
from tui_gen.engine.events import (
    Event,
    FinishEvent,
    FinishReason,
    GenerationStats,
    NoticeEvent,
    TokenEvent,
    TokenLogprobs,
)
from tui_gen.engine.logprobs import TokenTexts, read_logprobs
from tui_gen.engine.sampling import check_logit, choose_rows, make_generator, process_logits
from tui_gen.engine.stop import StopStringMatcher
from tui_gen.errors import TuiGenError
from tui_gen.models.kv_cache import KVCache, new_cache
from tui_gen.options import SamplingParams


@dataclass
class Request:
    """One sequence to generate: prompt ids, its own sampling values, an index for its events."""

    ids: list[int]
    params: SamplingParams
    index: int = 0


@dataclass
class _Row:
    """Per-sequence state of a running batch."""

    req: Request
    ids: list[int]
    pad: int  # padding columns on the left
    rng: torch.Generator | None
    decoder: Any
    stops: StopStringMatcher
    stats: GenerationStats
    generated: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Tokens of this sequence so far (prompt + generated, without padding)."""
        return len(self.ids) + len(self.generated)


def _sampler_key(p: SamplingParams) -> tuple[object, ...]:
    """What process_logits reads of `p`: rows with equal keys are processed as one tensor."""
    penalty = (p.repetition_penalty, p.repetition_window if p.repetition_penalty != 1.0 else 0)
    if p.greedy:
        return (True, *penalty)
    return (False, *penalty, p.temperature, p.top_k, p.top_p, p.min_p)


def _sample(
    logits: torch.Tensor, rows: Sequence[_Row], seq: torch.Tensor, texts: TokenTexts
) -> tuple[list[int], list[TokenLogprobs | None]]:
    """Next token per row, and its TokenLogprobs when the row asked for them (else None).
    logits (b, V); seq (b, cur) all tokens so far (padding = a real one).

    Rows with the same sampler settings (a server's clients on the model's defaults, a
    --prompts file) go through process_logits once, as one tensor, and each draws from its
    own generator (sampling.choose_rows): the same tokens as one row at a time, at one
    chain of tensor operations per step instead of one per row."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(_sampler_key(r.req.params), []).append(i)
    toks: list[int] = [0] * len(rows)
    lps: list[TokenLogprobs | None] = [None] * len(rows)
    for idx in groups.values():
        p = rows[idx[0]].req.params
        whole = len(idx) == len(rows)
        sel = torch.tensor(idx, device=logits.device) if not whole else None
        part = logits if sel is None else logits.index_select(0, sel)
        seen = None
        if p.repetition_penalty != 1.0:
            seen = seq if sel is None else seq.index_select(0, sel)
        step = process_logits(part, p, seen)
        tok, col = choose_rows(step, [rows[i].rng for i in idx])
        got, cols = tok.tolist(), col.tolist()
        ns = [rows[i].req.params.logprobs for i in idx]
        read = read_logprobs(step, got, cols, ns, texts) if any(ns) else [None] * len(idx)
        for j, i in enumerate(idx):
            toks[i], lps[i] = got[j], read[j]
    return toks, lps


def _alloc_cache(gen: Any, batch: int, columns: int) -> KVCache:
    c = gen.config
    try:
        return new_cache(gen.model, c, batch, columns, gen.kv_dtype, gen.device)
    except (RuntimeError, MemoryError):  # torch reports allocation failures as RuntimeError
        need = c.kv_cache_bytes(columns, torch.empty((), dtype=gen.kv_dtype).element_size(), batch)
        raise TuiGenError(
            f"the KV cache for {batch} sequences x {columns} tokens needs {need / 2**30:.1f} GiB "
            "and could not be allocated; lower --batch-size or --max-new-tokens"
        ) from None


def decode_batch(
    gen: Any, requests: Sequence[Request], cancel: threading.Event | None = None
) -> Iterator[Event]:
    """Decode `requests` together; yield TokenEvents, then one FinishEvent per request.

    `gen` is a Generator (model, tokenizer, max_context, device, dtype). Events carry the
    request's `index`. Every request's ids must be non-empty.
    """
    t_call = time.perf_counter()
    ctx, dev = gen.max_context, gen.device
    eos = set(gen.tokenizer.eos_token_ids)
    rows: list[_Row] = []
    for req in requests:
        stats = GenerationStats()
        ids, notice = truncate_prompt(req.ids, req.params.max_new_tokens, ctx)
        if notice:
            stats.prompt_truncated = True
            yield NoticeEvent(notice, kind="prompt_truncated")
        stats.prompt_tokens = stats.prefill_tokens = len(ids)
        if req.params.max_new_tokens == 0:
            yield FinishEvent("length", "", [], stats, req.index)
            continue
        rng = None if req.params.greedy else make_generator(req.params.seed, dev)
        decoder = gen.tokenizer.stream_decoder()
        rows.append(
            _Row(req, ids, 0, rng, decoder, StopStringMatcher(req.params.stop_strings), stats)
        )
    if not rows:
        return
    if cancel is not None and cancel.is_set():
        for row in rows:
            yield FinishEvent("cancelled", "", [], row.stats, row.req.index)
        return

    B = len(rows)
    P = max(len(r.ids) for r in rows)  # prompt columns
    for r in rows:
        r.pad = P - len(r.ids)
    # columns a row can use: its padding + (prompt + new tokens, at most the context)
    columns = max(r.pad + min(ctx, len(r.ids) + r.req.params.max_new_tokens) for r in rows)
    cache = _alloc_cache(gen, B, columns)

    pad_id = gen.tokenizer.pad_token_id or 0
    idx = torch.full((B, P), pad_id, dtype=torch.long)  # (B, P) prompt tokens
    positions = torch.zeros((B, P), dtype=torch.long)  # (B, P) each row counts from 0
    key_padding = torch.ones((B, columns), dtype=torch.bool)  # (B, S) True = real key
    seq = torch.zeros((B, columns), dtype=torch.long)  # (B, S) tokens, for the penalty
    for i, r in enumerate(rows):
        ids_t = torch.tensor(r.ids, dtype=torch.long)
        idx[i, r.pad :] = ids_t
        positions[i, r.pad :] = torch.arange(len(r.ids))
        key_padding[i, : r.pad] = False
        # padding repeats a real token so the penalty sees the same set as without padding
        seq[i, : r.pad] = r.ids[0]
        seq[i, r.pad : P] = ids_t
    idx, positions, key_padding, seq = (t.to(dev) for t in (idx, positions, key_padding, seq))
    padded = any(r.pad for r in rows)

    batch_step = gen.batch_step(cache)
    texts = gen.token_texts
    busy = 0.0  # seconds spent in here, not in the consumer between yields
    threads = gen.engine_threads()  # entered around work, left before every yield
    with torch.inference_mode():
        t0 = time.perf_counter()
        with threads:
            logits = gen.model(
                idx,
                start=0,
                cache=cache,
                positions=positions if padded else None,
                key_padding=key_padding if padded else None,
                last_only=True,
            )[:, -1]  # (B, V)
        cur = P  # next cache column to write
        t_prev = t0
        first = True
        while True:
            with threads:
                toks, lps = _sample(logits, rows, seq[:, :cur], texts)
            now = time.perf_counter()
            busy += now - t_prev
            if first:
                for r in rows:
                    r.stats.time_to_first_token = now - t_call
                    r.stats.prefill_seconds = now - t0
                busy, first = 0.0, False
            stop_all = cancel is not None and cancel.is_set()
            keep: list[int] = []
            finished: list[tuple[_Row, FinishReason]] = []
            for i, (r, tok, lp) in enumerate(zip(rows, toks, lps)):
                check_logit(logits, tok, i, len(r.generated))
                if tok in eos:
                    finished.append((r, "eos"))
                    continue
                r.generated.append(tok)
                delta, hit = r.stops.feed(r.decoder.step(tok))
                r.stats.generated_tokens = len(r.generated)
                r.stats.decode_seconds = busy  # every row's first token came in the same step
                yield TokenEvent(tok, delta, r.req.index, logprobs=lp)
                if hit:
                    finished.append((r, "stop"))
                elif len(r.generated) >= r.req.params.max_new_tokens or r.length >= ctx:
                    finished.append((r, "length"))
                elif stop_all:
                    finished.append((r, "cancelled"))
                else:
                    keep.append(i)
            t_prev = time.perf_counter()
            for r, reason in finished:
                yield from _finish(r, reason, busy)
            t_prev = time.perf_counter()
            if not keep:
                break
            if len(keep) < len(rows):  # drop finished rows from every per-row buffer
                sel = torch.tensor(keep, device=dev)
                cache = cache.select_rows(sel)
                rows = [rows[i] for i in keep]
                toks = [toks[i] for i in keep]
                key_padding, seq = key_padding[sel], seq[sel]
                padded = any(r.pad for r in rows)
            step = torch.tensor(toks, dtype=torch.long, device=dev)[:, None]  # (b, 1)
            seq[:, cur] = step[:, 0]
            pos = None
            if padded:  # the new token sits at position length-1 of its own sequence
                pos = torch.tensor([r.length - 1 for r in rows], device=dev)[:, None]  # (b, 1)
            with threads:
                logits = batch_step(step, cur, cache, pos, key_padding if padded else None)
            logits = logits[:, -1]
            cur += 1


def _finish(r: _Row, reason: FinishReason, busy: float) -> Iterator[Event]:
    """Release held-back text and emit the row's FinishEvent."""
    tail = r.stops.close(r.decoder.flush())
    if tail:
        yield TokenEvent(-1, tail, r.req.index)  # released text, not a new token
    r.stats.generated_tokens = len(r.generated)
    if r.generated:
        r.stats.decode_seconds = busy
    yield FinishEvent(reason, r.stops.text, list(r.generated), r.stats, r.req.index)


def stream_requests(
    gen: Any,
    requests: Sequence[Request],
    *,
    cancel: threading.Event | None = None,
    batch_size: int | None = None,
) -> Iterator[Event]:
    """Run `requests` in consecutive batches of `batch_size` (default: all at once).

    Every request that starts gets exactly one FinishEvent. Once `cancel` is set, the running
    batch finishes as "cancelled" and requests that had not started are not reported.
    """
    size = batch_size or max(1, len(requests))
    if size < 1:
        raise TuiGenError(f"batch_size must be at least 1, got {size}")
    for lo in range(0, len(requests), size):
        if lo and cancel is not None and cancel.is_set():
            return
        yield from decode_batch(gen, requests[lo : lo + size], cancel)
