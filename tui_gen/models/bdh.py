"""BDH ("Baby Dragon Hatchling", pathwaycom/bdh): a byte-level model whose attention is linear,
decoded with a constant-size recurrent state instead of a KV cache.

One set of weights serves every layer: `encoder` and `encoder_v` (nh, D, N), `decoder`
(nh*N, D), `embed` (V, D) and `lm_head` (D, V), with a LayerNorm without parameters (ln, over
D). The input is x = ln(embed(idx)); each layer computes

    x_sparse = relu(x @ encoder)                      (B, nh, T, N)
    QR       = rope(x_sparse)                         (the same rotation for queries and keys)
    yKV      = ln(tril(QR @ QR^T, -1) @ x)            (x is shared by every head)
    y_sparse = relu(yKV @ encoder_v)
    x        = ln(x + ln(flatten_heads(x_sparse * y_sparse) @ decoder))

and logits = x @ lm_head. Because the scores are a plain (unnormalised) product, row t of
tril(QR QR^T, -1) @ x is QR_t @ S_t with S_t = sum_{s<t} QR_s^T x_s (nh, N, D): one state per
layer carries the whole past. `forward` runs that recurrence chunk by chunk (within a chunk the
parallel form, across chunks the state), so a prompt of any length takes bounded memory and a
decode step costs the same at position 10 or 10 million. `parallel_forward` is the textbook
form (what training uses), kept as the benchmark's reference.

Rope follows upstream exactly: frequencies 1 / theta^(2*floor(i/2)/N) / (2 pi) in turns,
phase = ((position * freq) mod 1) * 2 pi, interleaved pairs (v0, v1) -> (-v1, v0).
The state is float32 whatever the weights' dtype: it sums over an unbounded number of positions.
"""

from __future__ import annotations

import itertools
import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from tui_gen.errors import ContextOverflowError, ModelLoadError
from tui_gen.models.bdh_config import UNBOUNDED_CONTEXT
from tui_gen.models.config import ModelConfig
from tui_gen.models.family import CausalLM, NativeSpec, NativeUnsupported

#: positions per chunk of a prefill: memory is O(chunk^2 * nh + chunk * nh * N) whatever the
#: prompt's length
PREFILL_CHUNK = 256

#: why the native C step (a KV-cache transformer kernel) does not decode BDH; info/bench show it
NATIVE_UNAVAILABLE = "bdh: a recurrent state decodes in torch; the native step is for KV caches"


def rope_freqs(n: int, theta: float) -> torch.Tensor:
    """(n,) float32 frequencies in turns per position, pairs sharing one (upstream get_freqs)."""
    i = torch.arange(0, n, 1, dtype=torch.float32)
    return 1.0 / (theta ** ((i / 2).floor() * 2 / n)) / (2 * math.pi)


def rope(v: torch.Tensor, positions: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate v (B, nh, T, N) at positions (B or 1, T)."""
    phases = positions.to(torch.float32)[:, None, :, None] * freqs  # (B|1, 1, T, N)
    phases = (phases % 1) * (2 * math.pi)
    v_rot = torch.stack((-v[..., 1::2], v[..., ::2]), dim=-1).view(*v.size())
    return (v * torch.cos(phases)).to(v.dtype) + (v_rot * torch.sin(phases)).to(v.dtype)


#: upstream's stateful bdh.py keeps one Attention (and its freqs buffer) per layer
_PER_LAYER_FREQS = re.compile(r"attns\.\d+\.freqs")


class RecurrentState:
    """What a BDH model carries between calls: per layer S (B, nh, N, D) float32, the sum of
    rope(x_sparse_s)^T x_s over the positions [0, length) it has seen.

    It plays the KV cache's part for the engine (check/advance/truncate/reset/select_rows) but
    a sum cannot forget a suffix. The rule: `truncate(n)` keeps the state when n >= length;
    otherwise it restores the newest snapshot covering at most n positions, or empties the
    state when none does, and `length` says where the caller must prefill from. A snapshot is
    taken by the model just before the last token of every multi-token call (a prompt minus its
    last token), so regenerating a reply, or a next chat turn whose text differs from what was
    generated (a stripped stop string), re-prefills one reply instead of the conversation.
    At most `max_snapshots` (1 by default) are kept, each the size of the state.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        latent: int,
        dim: int,
        device: torch.device | str,
        max_snapshots: int = 1,
    ) -> None:
        shape = (batch_size, num_heads, latent, dim)
        self.state = [
            torch.zeros(shape, dtype=torch.float32, device=device) for _ in range(num_layers)
        ]
        self.batch_size = batch_size
        self.max_seq_len = UNBOUNDED_CONTEXT
        self.length = 0
        self.max_snapshots = max_snapshots
        self._snapshots: list[tuple[int, list[torch.Tensor]]] = []

    @property
    def nbytes(self) -> int:
        """Bytes of the state (snapshots not included; see snapshot_bytes)."""
        return sum(t.numel() * t.element_size() for t in self.state)

    @property
    def snapshot_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for _, ts in self._snapshots for t in ts)

    def check(self, start: int, num_tokens: int) -> None:
        if start != self.length:
            raise ContextOverflowError(
                f"the recurrent state covers {self.length} positions; a call must continue at "
                f"position {self.length}, not {start} (truncate it first)"
            )

    def advance(self, start: int, num_tokens: int) -> None:
        self.length = start + num_tokens

    def snapshot(self) -> None:
        if self.max_snapshots <= 0 or self.length == 0:
            return
        if self._snapshots and self._snapshots[-1][0] == self.length:
            return
        self._snapshots.append((self.length, [s.clone() for s in self.state]))
        del self._snapshots[: -self.max_snapshots]

    def truncate(self, length: int) -> None:
        if length >= self.length:
            return
        usable = [snap for snap in self._snapshots if snap[0] <= length]
        if not usable:
            self.reset()
            return
        n, saved = usable[-1]
        for s, t in zip(self.state, saved, strict=True):
            s.copy_(t)
        self.length = n
        self._snapshots = [snap for snap in self._snapshots if snap[0] <= n]

    def reset(self) -> None:
        for s in self.state:
            s.zero_()
        self.length = 0
        self._snapshots = []

    def select_rows(self, rows: torch.Tensor) -> RecurrentState:
        """A state whose row i is row rows[i] of this one (batch rows dropped, beams reordered
        or copied); snapshots are not carried over."""
        out = RecurrentState.__new__(RecurrentState)
        out.state = [s.index_select(0, rows) for s in self.state]
        out.batch_size = int(rows.numel())
        out.max_seq_len = self.max_seq_len
        out.length = self.length
        out.max_snapshots = 0
        out._snapshots = []
        return out


class BDH(CausalLM):
    """forward(idx (B, T)) -> logits (B, T or 1, vocab); upstream's state-dict names."""

    recurrent = True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        D, nh, N, V = cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.vocab_size
        self.encoder = nn.Parameter(torch.empty(nh, D, N))
        self.encoder_v = nn.Parameter(torch.empty(nh, D, N))
        self.decoder = nn.Parameter(torch.empty(nh * N, D))
        self.lm_head = nn.Parameter(torch.empty(D, V))
        self.embed = nn.Embedding(V, D)
        self.register_buffer("freqs", rope_freqs(N, cfg.rope_theta), persistent=False)
        self.freqs: torch.Tensor

    # --- the pieces ----------------------------------------------------------------------
    def _ln(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), eps=self.config.norm_eps)

    def new_cache(
        self,
        batch_size: int,
        max_seq_len: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        max_snapshots: int | None = None,
    ) -> RecurrentState:
        """The engine's cache for this model (its size does not depend on max_seq_len); a
        single row keeps one snapshot by default (see RecurrentState), a batch none."""
        c = self.config
        if max_snapshots is None:
            max_snapshots = 1 if batch_size == 1 else 0
        dev = device if device is not None else self.encoder.device
        return RecurrentState(
            c.num_layers, batch_size, c.num_heads, c.head_dim, c.hidden_size, dev, max_snapshots
        )

    def _layer_mix(
        self, x: torch.Tensor, y_kv: torch.Tensor, x_sparse: torch.Tensor
    ) -> torch.Tensor:
        """From yKV (before its ln) to the layer's output x."""
        B, _, T, _ = x.shape
        y_sparse = F.relu(self._ln(y_kv) @ self.encoder_v)  # (B, nh, T, N)
        xy = (x_sparse * y_sparse).transpose(1, 2).reshape(B, 1, T, -1)  # (B, 1, T, nh*N)
        return self._ln(x + self._ln(xy @ self.decoder))

    def _chunk(
        self,
        idx: torch.Tensor,
        positions: torch.Tensor,
        real: torch.Tensor | None,
        cache: RecurrentState,
    ) -> torch.Tensor:
        """Positions [cache.length, +T) of idx (B, T); updates the state; returns x (B, T, D).

        `real` (B, T) False marks padding (left-padded batches): it adds nothing to the state.
        """
        B, T = idx.shape
        x = self._ln(self.embed(idx))[:, None]  # (B, 1, T, D)
        causal = None
        if T > 1:
            causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril(-1)
        fresh = cache.length == 0 and real is None
        for S in cache.state:
            x_sparse = F.relu(x @ self.encoder)  # (B, nh, T, N)
            qr = rope(x_sparse, positions, self.freqs)
            key = qr if real is None else qr * real[:, None, :, None].to(qr.dtype)
            q32, k32, x32 = qr.float(), key.float(), x.float()
            if fresh:  # nothing before this chunk: skip the product with a zero state
                y = torch.zeros(B, qr.shape[1], T, x.shape[-1], device=x.device)
            else:
                y = q32 @ S  # (B, nh, T, D) the past
            if causal is not None:  # the chunk itself, strictly causal
                y = y + ((q32 @ k32.mT) * causal) @ x32
            nh, N, D = S.shape[1], S.shape[2], S.shape[3]
            S.view(B * nh, N, D).baddbmm_(
                k32.mT.reshape(B * nh, N, T), x32.expand(B, nh, T, D).reshape(B * nh, T, D)
            )
            x = self._layer_mix(x, y.to(x.dtype), x_sparse)
        return x[:, 0]

    # --- the model -----------------------------------------------------------------------
    def forward(
        self,
        idx: torch.Tensor,
        start: int = 0,
        cache: RecurrentState | None = None,
        positions: torch.Tensor | None = None,
        key_padding: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """idx (B, T) at positions [start, start+T) continuing `cache` (a fresh state if None).

        `positions` (B, T) overrides each row's positions (left-padded batches); `key_padding`
        (B, S) marks real (True) and padding columns, padding adds nothing to the state.
        """
        B, T = idx.shape
        if cache is None:
            if start:
                raise ContextOverflowError("a BDH call from position > 0 needs its state")
            cache = self.new_cache(B, max_snapshots=0)
        else:
            cache.check(start, T)
        if positions is None:
            positions = torch.arange(start, start + T, device=idx.device)[None]
        real = None if key_padding is None else key_padding[:, start : start + T]
        if real is not None and bool(real.all()):
            real = None
        bounds = [*range(0, T, PREFILL_CHUNK), T]
        if T > 1 and cache.max_snapshots and T - 1 not in bounds:
            bounds.insert(-1, T - 1)  # a snapshot before the last token (RecurrentState)
        outs = []
        for a, b in itertools.pairwise(bounds):
            if b == T and a == T - 1 and T > 1:
                cache.snapshot()
            x = self._chunk(
                idx[:, a:b],
                positions[:, a:b],
                None if real is None else real[:, a:b],
                cache,
            )
            cache.advance(start + a, b - a)
            if not last_only or b == T:
                outs.append(x)
        x = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        if last_only:
            x = x[:, -1:]
        return x @ self.lm_head  # (B, T|1, V)

    def parallel_forward(self, idx: torch.Tensor) -> torch.Tensor:
        """The parallel form over the whole sequence (training, and the benchmark's reference):
        (B, T) -> logits (B, T, V), O(T^2) memory."""
        B, T = idx.shape
        x = self._ln(self.embed(idx))[:, None]
        positions = torch.arange(T, device=idx.device)[None]
        for _ in range(self.config.num_layers):
            x_sparse = F.relu(x @ self.encoder)
            qr = rope(x_sparse, positions, self.freqs)
            y_kv = (qr @ qr.mT).tril(diagonal=-1) @ x
            x = self._layer_mix(x, y_kv, x_sparse)
        return x[:, 0] @ self.lm_head

    @classmethod
    def native_unsupported(cls, cfg: ModelConfig) -> str | None:
        return NATIVE_UNAVAILABLE

    def native_spec(self) -> NativeSpec:
        raise NativeUnsupported(NATIVE_UNAVAILABLE)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.embed = module  # type: ignore[assignment]

    # --- checkpoint mapping -------------------------------------------------------------
    @staticmethod
    def convert_weight(
        name: str, tensor: torch.Tensor, cfg: ModelConfig
    ) -> tuple[str, torch.Tensor] | None:
        """Upstream names map to ours one to one; the rope buffer (one `attn.freqs`, or one
        `attns.<i>.freqs` per layer in upstream's stateful version) is checked, not loaded."""
        for prefix in ("_orig_mod.", "module."):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if name == "lm_gate":  # declared by upstream's BDH but never used by its forward
            return None
        if name in ("attn.freqs", "freqs") or _PER_LAYER_FREQS.fullmatch(name):
            if tensor.is_meta:  # `info` counting shapes
                return None
            mine = rope_freqs(cfg.head_dim, cfg.rope_theta)
            theirs = tensor.detach().to(torch.float32).reshape(-1)
            if theirs.shape != mine.shape or not torch.allclose(theirs, mine, rtol=1e-5):
                raise ModelLoadError(
                    f"{name}: the checkpoint's rope frequencies differ from bdh.py's "
                    "(1/theta^(2*floor(i/2)/N)/(2*pi), theta 2^16); it was trained with other "
                    "rope settings"
                )
            return None
        return name, tensor


def init_weights(model: BDH, seed: int = 0) -> None:
    """Upstream's initialisation (normal, std 0.02), for training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=g)
