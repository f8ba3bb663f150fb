"""Continuous batching: one thread owns the model and decodes every running request together.

A server gets requests one by one, at any time. `Scheduler.submit` queues a `Job`; the
scheduler thread admits queued jobs at a step boundary (at most `max_batch` run at once, the
rest wait), and each step is ONE `Generator.batch_step` over every running row (the native
rows > 1 step plugs in there), so requests arriving together decode together.

How a newcomer joins (the batch layout of engine/batch.py: left padding, per-row positions,
a key mask):

    1. its prompt is prefilled into a one-row cache of its own, exactly as a solo run would,
       and its first token is sampled from those logits (so time to first token does not wait
       for the batch). When it starts like a recent prompt (a chat client re-sending the
       conversation, a shared system prompt), that prompt's keys and values are copied in and
       only the rest is prefilled (engine/prefix_cache.py);
    2. at the step boundary the batch cache is rebuilt with one more row: the newcomer's
       columns go right-aligned to the batch's current column `cur` (left-padded and masked);
       when its prompt is longer than `cur`, every other row shifts right instead. The rebuild
       also drops the columns every row pads (compaction) and grows the capacity in chunks,
       so the cache never holds more than the live rows need.

A row leaves at a step boundary too (EOS, a stop string, its max_new_tokens, the context, or
its `cancel` Event: a disconnected client stops within one step). Sampling is per row with the
row's own seeded torch.Generator, and every row keeps its own positions, so greedy (and seeded)
output is the same alone or in any batch. The per-row pieces (state, sampling, the finish) are
engine/batch.py's.

A model whose cache is not a KVCache (a recurrent state, BDH) cannot splice rows: it runs one
request at a time, the rest queued.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from tui_gen.engine.batch import Request, _alloc_cache, _finish, _Row, _sample
from tui_gen.engine.events import (
    Event,
    FinishEvent,
    FinishReason,
    GenerationStats,
    TokenEvent,
    TokenLogprobs,
)
from tui_gen.engine.prefix_cache import DEFAULT_BUDGET, PrefixCache, copy_prefix, snapshot
from tui_gen.engine.sampling import (
    check_logit,
    make_generator,
)
from tui_gen.engine.stop import StopStringMatcher
from tui_gen.errors import TuiGenError
from tui_gen.models.kv_cache import KVCache
from tui_gen.options import SamplingParams

#: the batch cache grows in steps of this many columns (fewer rebuilds while rows decode)
COLUMN_CHUNK = 64

#: default number of requests decoded together (`tui-gen serve --max-batch`)
DEFAULT_MAX_BATCH = 8


@dataclass
class Job:
    """One sequence to generate. `sink` receives its events on the scheduler thread: the
    TokenEvents, then exactly one FinishEvent (also after a cancel or an error)."""

    ids: list[int]
    params: SamplingParams
    sink: Callable[[Event], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    ignore_eos: bool = False
    index: int = 0
    submitted: float = field(default_factory=time.perf_counter)
    #: set (before its FinishEvent "cancelled") when the job failed instead of finishing
    error: BaseException | None = None
    #: {token id: bias} added to the raw logits before the penalties and samplers (OpenAI's
    #: logit_bias; -100 bans a token, +100 all but forces it)
    logit_bias: dict[int, float] | None = None


@dataclass
class _Slot:
    """A running job: batch.py's per-row state (row.pad: its padding columns) plus the
    token the next step feeds."""

    job: Job
    row: _Row
    last: int = 0
    #: the job's logit_bias as (ids, values) tensors on the model's device, built once
    bias: tuple[torch.Tensor, torch.Tensor] | None = None

    def emit(self, ev: Event) -> None:
        self.job.sink(ev)


class Scheduler:
    """Owns the Generator's model on one thread; see the module docstring."""

    def __init__(
        self, gen: Any, max_batch: int = DEFAULT_MAX_BATCH, prefix_budget: int = DEFAULT_BUDGET
    ) -> None:
        if max_batch < 1:
            raise TuiGenError(f"--max-batch must be at least 1, got {max_batch}")
        self.gen = gen
        self.max_batch = max_batch
        self._queue: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._slots: list[_Slot] = []
        self._cache: Any = None
        self._key_padding = torch.ones((0, 0), dtype=torch.bool)  # (b, capacity) True = real
        self._seq = torch.zeros((0, 0), dtype=torch.long)  # (b, capacity) tokens, for penalties
        self._cur = 0  # next cache column to write
        self._step: Any = None
        self._eos = set(gen.tokenizer.eos_token_ids)
        # a model with a cache of its own (a recurrent state) cannot splice rows: one at a time
        self._rows = 1 if getattr(gen.model, "new_cache", None) is not None else max_batch
        self._thread = threading.Thread(target=self._run, name="tui-gen-scheduler", daemon=True)
        # recent prompts' keys and values (KVCache models whose rotary does not depend on the
        # sequence's total length, see Generator's reuse): a prompt that starts like one of
        # them is prefilled from where it differs
        reusable = self._rows > 1 and getattr(gen.model, "rope_switch", None) is None
        self.prefixes: PrefixCache | None = PrefixCache(prefix_budget) if reusable else None
        #: how many rows each step ran (tests and the bench read it)
        self.step_rows: list[int] = []

    # --- the caller's side ------------------------------------------------------------------
    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread; running and queued jobs finish as "cancelled"."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, job: Job) -> None:
        """Queue a job; it starts at the next step boundary with a free slot."""
        with self._wake:
            if self._closed:
                raise TuiGenError("the server is shutting down; retry on another instance")
            self._queue.append(job)
            self._wake.notify_all()

    @property
    def running(self) -> int:
        return len(self._slots)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- the scheduler thread ---------------------------------------------------------------
    def _run(self) -> None:
        # torch on the thread count the decode governor chose, while working (not while
        # waiting for work): engine/threads.py
        threads = self.gen.engine_threads()
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not self._closed and not self._queue and not self._slots:
                        self._wake.wait()
                    if self._closed:
                        break
                    room = self._rows - len(self._slots)
                    newcomers = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
                with threads:
                    for job in newcomers:
                        try:
                            self._admit(job)
                        except Exception as e:  # its cache could not be allocated, a bad model
                            job.error = e
                            job.sink(FinishEvent("cancelled", "", [], GenerationStats(), job.index))
                    try:
                        if self._slots:
                            self._decode_step()
                    except Exception as e:  # a bug or a broken model: every running job learns it
                        self._fail_running(e)
        self._fail_running(None)
        with self._wake:
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            job.sink(FinishEvent("cancelled", "", [], GenerationStats(), job.index))

    def _fail_running(self, error: BaseException | None) -> None:
        """Finish every running job as cancelled (`error`: why, None when shutting down)."""
        slots, self._slots, self._cache, self._step = self._slots, [], None, None
        for s in slots:
            s.job.error = error
            r = s.row
            s.emit(FinishEvent("cancelled", r.stops.text, list(r.generated), r.stats, s.job.index))

    def _admit(self, job: Job) -> None:
        """Prefill a newcomer alone, sample its first token, then splice it into the batch."""
        gen, p = self.gen, job.params
        ctx = gen.max_context
        stats = GenerationStats(prompt_tokens=len(job.ids), prefill_tokens=len(job.ids))
        if job.cancel.is_set():
            job.sink(FinishEvent("cancelled", "", [], stats, job.index))
            return
        if not job.ids or len(job.ids) >= ctx:
            raise TuiGenError(
                f"the prompt has {len(job.ids)} tokens; it must have 1 to {ctx - 1} "
                f"(the context holds {ctx})"
            )
        rng = None if p.greedy else make_generator(p.seed, gen.device)
        row = _Row(
            Request(job.ids, p, job.index),
            list(job.ids),
            0,
            rng,
            gen.tokenizer.stream_decoder(),
            StopStringMatcher(p.stop_strings),
            stats,
        )
        slot = _Slot(job, row, bias=_bias_tensors(job.logit_bias, gen.device))
        L = len(job.ids)
        need = min(ctx, L + p.max_new_tokens)
        own = _alloc_cache(gen, 1, need if not self._slots else L)
        t0 = time.perf_counter()
        ids_t = torch.tensor([job.ids], dtype=torch.long, device=gen.device)
        reuse, hit = self.prefixes.longest(job.ids) if self.prefixes is not None else (0, None)
        if hit is not None and isinstance(own, KVCache):
            copy_prefix(hit, own, reuse)
        else:
            reuse = 0
        stats.prefill_tokens = L - reuse
        logits = gen.model(ids_t[:, reuse:], start=reuse, cache=own, last_only=True)[:, -1]
        if self.prefixes is not None and isinstance(own, KVCache):
            # joining, `own` (exactly L columns) is only read and then dropped: keep it; adopted,
            # it becomes the batch's cache and is written on: keep a copy
            self.prefixes.add(job.ids, own if self._slots else snapshot(own, L))
        seq = ids_t
        logits = _biased(logits, [slot.bias])
        toks, lps = _sample(logits, [row], seq, self.gen.token_texts)
        tok = toks[0]
        now = time.perf_counter()
        stats.time_to_first_token = now - job.submitted
        stats.prefill_seconds = now - t0
        reason = self._accept(slot, logits, 0, tok, lps[0])
        if reason is not None:
            self._leave(slot, reason)
            return
        slot.last = tok
        if not self._slots:  # the batch is empty: the newcomer's cache becomes the batch's
            self._adopt(slot, own, need)
        else:
            self._join(slot, own)

    def _adopt(self, slot: _Slot, own: Any, cols: int) -> None:
        L = len(slot.row.ids)
        self._cache, self._cur, self._slots = own, L, [slot]
        self._key_padding = torch.ones((1, cols), dtype=torch.bool, device=self.gen.device)
        self._seq = torch.zeros((1, cols), dtype=torch.long, device=self.gen.device)
        self._seq[0, :L] = torch.tensor(slot.row.ids, dtype=torch.long)
        self._step = self.gen.batch_step(own)

    def _remaining(self, slot: _Slot) -> int:
        """Columns the row may still write (one per step until it must stop)."""
        r = slot.row
        return max(
            0,
            min(r.req.params.max_new_tokens - len(r.generated), self.gen.max_context - r.length),
        )

    def _join(self, slot: _Slot, own: KVCache) -> None:
        """Rebuild the batch cache with the newcomer as its last row (see the docstring)."""
        old = self._cache
        assert isinstance(old, KVCache)
        L = len(slot.row.ids)
        minpad = min(s.row.pad for s in self._slots)
        width = self._cur - minpad  # columns the current rows really use
        cur = max(width, L)
        offset = cur - width  # extra left padding for the current rows
        rows = [*self._slots, slot]
        need = cur + max(self._remaining(s) for s in rows) + 1
        cols = math.ceil(need / COLUMN_CHUNK) * COLUMN_CHUNK
        b = len(self._slots)
        new = _alloc_cache(self.gen, b + 1, cols)
        for layer in range(len(new.k)):
            for dst, src, mine in ((new.k, old.k, own.k), (new.v, old.v, own.v)):
                dst[layer][:b, :, offset:cur] = src[layer][:, :, minpad : self._cur]
                dst[layer][b, :, cur - L : cur] = mine[layer][0, :, :L]
        new.length = cur
        dev = self.gen.device
        kp = torch.ones((b + 1, cols), dtype=torch.bool, device=dev)  # columns >= cur: real
        seq = torch.zeros((b + 1, cols), dtype=torch.long, device=dev)
        kp[:b, :offset] = False
        kp[:b, offset:cur] = self._key_padding[:, minpad : self._cur]
        seq[:b, offset:cur] = self._seq[:, minpad : self._cur]
        for i, s in enumerate(self._slots):
            s.row.pad = s.row.pad - minpad + offset
            seq[i, : s.row.pad] = s.row.ids[0]  # padding repeats a real token (see batch.py)
        slot.row.pad = cur - L
        kp[b, : slot.row.pad] = False
        seq[b, : slot.row.pad] = slot.row.ids[0]
        seq[b, slot.row.pad : cur] = torch.tensor(slot.row.ids, dtype=torch.long)
        self._cache, self._cur, self._slots = new, cur, rows
        self._key_padding, self._seq = kp, seq
        self._step = self.gen.batch_step(new)

    def _grow(self) -> None:
        """More columns for the running rows (a rare case: a join sizes for every row)."""
        old = self._cache
        b = len(self._slots)
        cols = math.ceil((self._cur + 1 + COLUMN_CHUNK) / COLUMN_CHUNK) * COLUMN_CHUNK
        new = _alloc_cache(self.gen, b, cols)
        for layer in range(len(new.k)):
            new.k[layer][:, :, : self._cur] = old.k[layer][:, :, : self._cur]
            new.v[layer][:, :, : self._cur] = old.v[layer][:, :, : self._cur]
        new.length = self._cur
        kp = torch.ones((b, cols), dtype=torch.bool, device=self.gen.device)
        seq = torch.zeros((b, cols), dtype=torch.long, device=self.gen.device)
        kp[:, : self._cur] = self._key_padding[:, : self._cur]
        seq[:, : self._cur] = self._seq[:, : self._cur]
        self._cache, self._key_padding, self._seq = new, kp, seq
        self._step = self.gen.batch_step(new)

    def _decode_step(self) -> None:
        """Drop cancelled rows, run one batch_step over the rest, sample, emit, drop finished."""
        cancelled = [i for i, s in enumerate(self._slots) if s.job.cancel.is_set()]
        if cancelled:
            for i in cancelled:
                self._leave(self._slots[i], "cancelled")
            self._keep([i for i in range(len(self._slots)) if i not in cancelled])
            if not self._slots:
                return
        cache, cur = self._cache, self._cur
        if isinstance(cache, KVCache) and cur + 1 > cache.max_seq_len:
            self._grow()
            cache = self._cache
        slots = self._slots
        dev = self.gen.device
        step = torch.tensor([s.last for s in slots], dtype=torch.long, device=dev)[:, None]
        self._seq[:, cur] = step[:, 0]
        padded = any(s.row.pad for s in slots)
        pos = None
        if padded:  # the fed token sits at position length-1 of its own sequence
            pos = torch.tensor([s.row.length - 1 for s in slots], device=dev)[:, None]
        kp = self._key_padding if padded else None
        t0 = time.perf_counter()
        logits = self._step(step, cur, cache, pos, kp)[:, -1]  # (b, V)
        self._cur = cur + 1
        seq = self._seq[:, : self._cur]
        logits = _biased(logits, [s.bias for s in slots])
        toks, lps = _sample(logits, [s.row for s in slots], seq, self.gen.token_texts)
        busy = time.perf_counter() - t0
        self.step_rows.append(len(slots))
        keep: list[int] = []
        for i, (s, tok, lp) in enumerate(zip(slots, toks, lps)):
            s.row.stats.decode_seconds += busy
            reason = self._accept(s, logits, i, tok, lp)
            if reason is None:
                s.last = tok
                keep.append(i)
            else:
                self._leave(s, reason)
        if len(keep) < len(slots):
            self._keep(keep)

    def _keep(self, keep: list[int]) -> None:
        if not keep:
            self._slots, self._cache, self._step = [], None, None
            return
        sel = torch.tensor(keep, device=self.gen.device)
        self._cache = self._cache.select_rows(sel)
        self._slots = [self._slots[i] for i in keep]
        self._key_padding, self._seq = self._key_padding[sel], self._seq[sel]
        self._step = self.gen.batch_step(self._cache)

    def _accept(
        self, s: _Slot, logits: torch.Tensor, i: int, tok: int, lp: TokenLogprobs | None
    ) -> FinishReason | None:
        """Take row i's sampled token (and its logprobs, when asked for): emit it, or say why
        the row ends."""
        r = s.row
        check_logit(logits, tok, i, len(r.generated))
        if tok in self._eos and not s.job.ignore_eos:
            return "eos"
        r.generated.append(tok)
        delta, hit = r.stops.feed(r.decoder.step(tok))
        r.stats.generated_tokens = len(r.generated)
        s.emit(TokenEvent(tok, delta, r.req.index, lp))
        if hit:
            return "stop"
        if len(r.generated) >= r.req.params.max_new_tokens or r.length >= self.gen.max_context:
            return "length"
        return None

    def _leave(self, s: _Slot, reason: FinishReason) -> None:
        for ev in _finish(s.row, reason, s.row.stats.decode_seconds):
            s.emit(ev)


def _bias_tensors(
    bias: dict[int, float] | None, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A job's logit_bias as (ids, values) tensors, made once when it is admitted."""
    if not bias:
        return None
    ids = torch.tensor(list(bias), dtype=torch.long, device=device)
    return ids, torch.tensor(list(bias.values()), device=device)


def _biased(
    logits: torch.Tensor, biases: list[tuple[torch.Tensor, torch.Tensor] | None]
) -> torch.Tensor:
    """logits (b, V) with each row's bias added (a copy; the step's own when no row has one)."""
    if all(b is None for b in biases):
        return logits
    out = logits.clone()
    for i, b in enumerate(biases):
        if b is not None:
            out[i, b[0]] += b[1].to(out.dtype)
    return out
