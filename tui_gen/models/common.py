"""Pieces shared by every architecture: masks and attention over a KV cache."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class PromptAttention(Protocol):
    """A faster causal attention for a prompt's queries that an engine may give a model's
    attention modules (their `prompt_attention` attribute; engine/native/prompt_kernels.py):
    q (1, H, T, D) at the last T of the S positions of k, v (1, KV, S, D), each query seeing
    the keys at or before its position (and, with a window W > 0, after position - W) ->
    (1, H, T, D), or None when it does not apply (then torch attends)."""

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        scale: float,
        softcap: float | None,
        window: int = 0,
    ) -> torch.Tensor | None: ...


class GatedActivation(Protocol):
    """act(gate) * up for a fused gate|up product u (..., 2I), gate first -> (..., I), or None
    when it does not apply: a kernel an engine may give a model's MLPs (their
    `gated_activation` attribute; engine/native/prompt_kernels.py). act: "silu" or
    "gelu_tanh"."""

    def __call__(self, u: torch.Tensor, act: str) -> torch.Tensor | None: ...


def gated(u: torch.Tensor, act: str, kernel: GatedActivation | None = None) -> torch.Tensor:
    """act(gate) * up of a fused gate|up product u (..., 2I): the kernel's result when it
    gives one, else torch's."""
    if kernel is not None:
        a = kernel(u, act)
        if a is not None:
            return a
    gate, up = u.chunk(2, dim=-1)
    if act == "silu":
        return F.silu(gate).mul_(up)
    if act == "gelu_tanh":
        return F.gelu(gate, approximate="tanh").mul_(up)
    raise ValueError(f"unknown gated activation {act!r}")


#: the attribute a mask built from positions alone carries: its window (0: none), so that a
#: PromptAttention can attend without reading it (a batch's key-padding masks carry none)
WINDOW_MARK = "tui_gen_window"


def _marked(mask: torch.Tensor, window: int) -> torch.Tensor:
    setattr(mask, WINDOW_MARK, window)
    return mask


def _by_kernel(
    kernel: PromptAttention | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    scale: float,
    softcap: float | None,
) -> torch.Tensor | None:
    """The kernel's attention for a prompt (more than one query) whose mask says no more than
    causality and a window (none built for a causal prompt from position 0, or one marked by
    the builders below); None when there is no kernel, another mask, or the kernel declines."""
    if kernel is None or q.shape[2] <= 1:
        return None
    window = 0 if mask is None and causal else getattr(mask, WINDOW_MARK, None)
    return kernel(q, k, v, scale, softcap, window) if isinstance(window, int) else None


def build_attention_mask(
    start: int,
    num_tokens: int,
    device: torch.device,
    key_padding: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Boolean mask (B or 1, 1, T, S) where True means "may attend"; None when not needed.

    Queries sit at positions [start, start+T) and keys at [0, S) with S = start+T. Without
    padding, a single query attends to everything and a prefill from position 0 is plain causal
    attention (SDPA's is_causal), so no mask is built for either.
    `key_padding` (B, S) marks real (True) vs padding (False) key positions for batches.
    """
    total = start + num_tokens
    if key_padding is None and (num_tokens == 1 or start == 0):
        return None  # one query sees everything; a prefill from 0 is plain causal
    q_pos = torch.arange(start, total, device=device)
    k_pos = torch.arange(total, device=device)
    mask = (k_pos[None, :] <= q_pos[:, None])[None, None]  # (1, 1, T, S)
    if key_padding is None:
        return _marked(mask, 0)
    # (B, 1, T, S); a padding query would see nothing (NaN softmax), so it also sees itself.
    diagonal = (k_pos[None, :] == q_pos[:, None])[None, None]
    return (mask & key_padding[:, None, None, :total]) | diagonal


def build_window_mask(
    start: int,
    num_tokens: int,
    device: torch.device,
    key_padding: torch.Tensor | None,
    window: int | None,
) -> torch.Tensor | None:
    """build_attention_mask for a sliding layer: a query at q also sees only keys k > q - window.

    Differences of cache positions equal differences of token positions in a left-padded batch
    row too, so the same mask serves batches and beams. No window, or a context that fits in it,
    is the plain mask.
    """
    total = start + num_tokens
    if window is None or total <= window:
        return build_attention_mask(start, num_tokens, device, key_padding)
    q_pos = torch.arange(start, total, device=device)
    k_pos = torch.arange(total, device=device)
    diff = q_pos[:, None] - k_pos[None, :]
    mask = ((diff >= 0) & (diff < window))[None, None]  # (1, 1, T, S)
    if key_padding is None:
        return _marked(mask, window)
    return (mask & key_padding[:, None, None, :total]) | (diff == 0)[None, None]


def attend_capped(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    softcap: float | None,
    kernel: PromptAttention | None = None,
) -> torch.Tensor:
    """attend() with an explicit score scale and Gemma 2's tanh soft-cap on the scores.

    SDPA has no soft-cap, so a capped model computes the scores itself (softmax in float32).
    """
    y = _by_kernel(kernel, q, k, v, mask, True, scale, softcap)
    if y is not None:
        return y
    if softcap is None:
        T, S = q.shape[2], k.shape[2]
        if mask is None and T > 1 and T != S:
            mask = build_attention_mask(S - T, T, q.device)
        return attend(q, k, v, mask, causal=mask is None and T > 1, scale=scale)
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    scores = (q @ k.transpose(-1, -2)) * scale  # (B, H, T, S)
    scores = torch.tanh(scores / softcap) * softcap
    T, S = q.shape[2], k.shape[2]
    if mask is None and T > 1:
        mask = build_attention_mask(S - T, T, q.device) if T != S else None
        if mask is None:
            mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()[None, None]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return probs @ v


def _sdpa_has_gqa() -> bool:
    """Whether scaled_dot_product_attention takes enable_gqa (torch >= 2.5), read from the
    signature or the version, never by calling it: a call at import time ran a parallel region
    on the importing thread, whose idle OpenMP pool then made another thread's decode sleep
    and wake at every region (engine/native/decode.c, release_thread_pool)."""
    import inspect

    try:
        return "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        major, minor = (int(p) for p in torch.__version__.split(".")[:2])
        return (major, minor) >= (2, 5)


#: torch >= 2.5 attends grouped-query heads without copying the cache per query head
_GQA = _sdpa_has_gqa()


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    scale: float | None = None,
    kernel: PromptAttention | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention with grouped-query heads.

    q: (B, H, T, D); k, v: (B, KV, S, D) with H a multiple of KV. Returns (B, H, T, D).
    `scale` replaces 1/sqrt(D) (Granite's attention_multiplier). `kernel`: a PromptAttention
    tried first for a prompt masked by positions alone (causal, maybe windowed).
    """
    by_scale = q.shape[-1] ** -0.5 if scale is None else scale
    y = _by_kernel(kernel, q, k, v, mask, causal, by_scale, None)
    if y is not None:
        return y
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        if _GQA:
            return F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                is_causal=causal and mask is None,
                enable_gqa=True,
                scale=scale,
            )
        # older torch: repeat the cache for every query head (a copy per layer per step)
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
