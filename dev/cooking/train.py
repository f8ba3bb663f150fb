"""Train the bundled cooking model (models/cooking) from scratch on the CPU.

    python -m dev.cooking.train --seed 0 --out models/cooking

One seed fixes everything (corpus, tokenizer, initial weights, batch order), so the command in
generation_info.json rebuilds the same files. The model is the engine's own GPT2 module, trained
with a plain AdamW loop (cosine learning rate, gradient clipping) and saved in Hugging Face's
GPT-2 layout so transformers' GPT2LMHeadModel opens it too.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dev.cooking import conversations
from dev.cooking import dishes as real_dishes
from dev.cooking.card import write_model_card
from dev.cooking.corpus import END, all_dishes, dishes, generate_corpus
from dev.cooking.tokenizer import save_tokenizer, train_tokenizer
from tui_gen.models.gpt2 import GPT2, init_weights
from tui_gen.models.llama import Llama
from tui_gen.models.registry import parse_config

CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")

GENERATION_DEFAULTS = {
    "do_sample": True,
    "temperature": 0.7,
    "top_k": 40,
    "top_p": 0.95,
    "repetition_penalty": 1.0,
    "max_new_tokens": 360,
}

#: the two corpora: v1's templated dishes (what models/cooking ships, so the default) or real
#: dishes in conversations (v2, issue #17), each with the run settings it was designed for
PRESETS: dict[str, dict[str, int]] = {
    "templates": {
        "docs": 30000,
        "val_docs": 400,
        "n_positions": 384,
        "seq_len": 384,
        "batch_size": 8,
        "steps": 2000,
        "threads": 2,
    },
    "dishes": {
        "docs": 12000,
        "val_docs": 200,
        "n_positions": 1024,
        "seq_len": 1024,
        "batch_size": 4,
        "steps": 2000,
        "threads": 2,
    },
}
CORPORA = tuple(PRESETS)


def make_corpus(
    kind: str, seed: int, n_docs: int, split: str, rename_p: float = conversations.RENAME_P
) -> list[str]:
    if kind == "dishes":
        return conversations.generate(seed, n_docs, split, rename_p)
    return generate_corpus(seed, n_docs, split)


def corpus_counts(kind: str) -> tuple[str, int, int]:
    """(generator module, dishes in all, dishes held out) for generation_info.json."""
    if kind == "dishes":
        return (
            "dev.cooking.conversations",
            len(real_dishes.all_dishes()),
            len(real_dishes.dishes("heldout")),
        )
    return "dev.cooking.corpus", len(all_dishes()), len(dishes("heldout"))


def gpt2_config(
    vocab_size: int, n_positions: int, n_embd: int, n_layer: int, n_head: int, eos_id: int
) -> dict[str, Any]:
    """A config.json with the standard HF GPT-2 keys (dropout off: we never train with it)."""
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": vocab_size,
        "n_positions": n_positions,
        "n_ctx": n_positions,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        **_shared_config(eos_id),
    }


def _shared_config(eos_id: int) -> dict[str, Any]:
    """What both architectures' configs say alike: tied embeddings, one id for bos/eos/pad."""
    return {
        "use_cache": True,
        "tie_word_embeddings": True,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
        "torch_dtype": "float32",
    }


def llama_config(
    vocab_size: int, n_positions: int, n_embd: int, n_layer: int, n_head: int, eos_id: int
) -> dict[str, Any]:
    """A config.json for transformers' LlamaForCausalLM: rotary positions (relative, so the
    previous-token attention that copying needs is easy to learn, unlike GPT-2's learned
    absolute positions), SwiGLU at GPT-2's MLP parameter count, tied embeddings."""
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": vocab_size,
        "hidden_size": n_embd,
        "intermediate_size": 32 * round(8 * n_embd / 3 / 32),
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_head,
        "max_position_embeddings": n_positions,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
        **_shared_config(eos_id),
        # the GPT-2 names too, for generation_info.json and the card
        "n_layer": n_layer,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_positions": n_positions,
    }


def init_llama(model: Llama, seed: int) -> None:
    """GPT-2-style initialisation: normal 0.02, o_proj/down_proj scaled, RMSNorm weights 1."""
    g = torch.Generator().manual_seed(seed)
    n_layer = model.config.num_layers
    for name, p in model.named_parameters():
        with torch.no_grad():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                scaled = name.endswith(("o_proj.weight", "down_proj.weight"))
                p.normal_(0.0, 0.02 / math.sqrt(2 * n_layer) if scaled else 0.02, generator=g)


def _tokenizer(args: argparse.Namespace, train_docs: list[str]) -> Any:
    """A new BPE trained on the corpus, or with --init-from that model's own tokenizer: the
    weights are only meaningful with the ids they were trained on, and a changed generator
    (different names, say) would train a different BPE from the same seed."""
    if args.init_from is None:
        return train_tokenizer(train_docs, args.vocab_size)
    from tokenizers import Tokenizer

    path = args.init_from / "tokenizer.json"
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises its own Exception subclass for bad JSON
        msg = f"train: --init-from {args.init_from}: cannot read {path.name} ({e})"
        print(msg, file=sys.stderr)
        raise SystemExit(2) from None


def _init_from(model: torch.nn.Module, src: Path) -> None:
    """--init-from: the weights of a model directory this script wrote; anything else is one
    line naming the problem (exit 2), not a traceback."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = src / "model.safetensors"
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError) as e:
        print(f"train: --init-from {src}: cannot read {weights.name} ({e})", file=sys.stderr)
        raise SystemExit(2) from None
    if isinstance(model, GPT2):
        state = {k: v.t() if k.endswith(CONV1D) else v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError:  # a tensor of another shape
        missing, unexpected = ["(shapes differ)"], []
    if unexpected or any(k != "lm_head.weight" for k in missing):
        print(
            f"train: --init-from {src}: its weights do not fit this model (give the same --arch, "
            "--n-layer, --n-embd, --n-head, --seed and --docs it was trained with)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    print(f"weights from {src}", flush=True)


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our weights under HF names, GPT-2 projections back in Conv1D (in, out) layout, no tied
    head (Llama's names and layout are HF's already)."""
    out = {}
    gpt2 = isinstance(model, GPT2)
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        t = t.t() if gpt2 and name.endswith(CONV1D) else t
        out[name] = t.detach().contiguous().clone()
    return out


#: the name on a reply's title line ("## <dish>"): the span a title-slot loss weight covers
TITLE_NAME = re.compile(r"^## (.+)$", re.M)


@dataclass
class TokenStream:
    """All documents' ids back to back, where each document starts, and each token's loss weight.

    The weight is 1 except on the names in replies' title lines, which `--title-weight` can
    raise: copying the asked dish's name there is the one thing the held-out evaluation needs and
    the plain mean loss barely rewards (a few tokens among a thousand).
    """

    ids: np.ndarray
    starts: np.ndarray
    weights: np.ndarray

    @classmethod
    def encode(cls, tok: Any, docs: list[str], title_weight: float = 1.0) -> TokenStream:
        encs = tok.encode_batch(docs, add_special_tokens=False)
        lens = np.array([len(e.ids) for e in encs], dtype=np.int64)
        ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(lens.sum()))
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        weights = np.ones(len(ids), dtype=np.float32)
        if title_weight != 1.0:
            for doc, enc, start in zip(docs, encs, starts, strict=True):
                spans = [m.span(1) for m in TITLE_NAME.finditer(doc)]
                if not spans:
                    continue
                offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
                hit = np.zeros(len(offs), dtype=bool)
                for a, b in spans:  # a token overlapping the name's characters
                    hit |= (offs[:, 0] < b) & (offs[:, 1] > a)
                weights[start : start + len(offs)][hit] = title_weight
        return cls(ids, starts, weights)

    def window_starts(self, seq_len: int) -> np.ndarray:
        """Windows begin at document starts, like a prompt at position 0 does."""
        return self.starts[self.starts + seq_len + 1 <= len(self.ids)]

    def batch(self, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        if len(starts) == 0:
            empty = torch.zeros((0, seq_len), dtype=torch.int64)
            return empty, empty
        rows = np.stack([self.ids[s : s + seq_len + 1] for s in starts])
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]

    def target_weights(self, starts: np.ndarray, seq_len: int) -> torch.Tensor:
        """The loss weights of `batch`'s targets (the window shifted by one)."""
        if len(starts) == 0:
            return torch.zeros((0, seq_len), dtype=torch.float32)
        return torch.from_numpy(np.stack([self.weights[s + 1 : s + seq_len + 1] for s in starts]))

    def eval_starts(self, seq_len: int) -> np.ndarray:
        """Non-overlapping document-aligned windows that cover (almost) every token once."""
        out, end = [], 0
        for s in self.window_starts(seq_len):
            if s >= end:
                out.append(s)
                end = s + seq_len
        return np.array(out, dtype=np.int64)


@torch.no_grad()
def mean_loss(model: torch.nn.Module, stream: TokenStream, seq_len: int, batch_size: int) -> float:
    model.eval()
    starts = stream.eval_starts(seq_len)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        x, y = stream.batch(starts[i : i + batch_size], seq_len)
        logits = model(x)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / max(count, 1)


def weighted_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged with per-target weights (all ones: the plain mean).

    logits (B, T, V), y and w (B, T). Dividing by the weights' sum keeps the loss's scale, and
    so the learning rate's meaning, whatever `--title-weight` is.
    """
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    w = w.flatten()
    return (ce * w).sum() / w.sum()


def save_weights(model: torch.nn.Module, cfg: dict[str, Any], out: Path) -> None:
    """model.safetensors and config.json: a loadable model (checkpoints use this too)."""
    save_file(hf_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def lr_at(step: int, steps: int, peak: float, warmup: int, floor: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return v


def _share(text: str) -> float:
    v = float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return v


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train the bundled cooking model on the CPU.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("models/cooking"))
    ap.add_argument("--corpus", choices=CORPORA, default="templates")
    ap.add_argument("--docs", type=int, help="training documents to generate")
    ap.add_argument("--val-docs", type=int, help="held-out validation documents")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument(
        "--arch",
        choices=["gpt2", "llama"],
        default="gpt2",
        help="GPT2LMHeadModel (learned positions) or LlamaForCausalLM (rotary positions)",
    )
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--n-head", type=int, default=8)
    ap.add_argument("--n-positions", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float, default=2.5e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int)
    ap.add_argument(
        "--save-every", type=int, default=0, help="also save the model every N steps (0: never)"
    )
    ap.add_argument(
        "--init-from",
        type=Path,
        help="start from this model directory's weights and tokenizer (same architecture) "
        "instead of a fresh init",
    )
    ap.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="copy each --save-every checkpoint to OUT-stepN (a loadable model directory)",
    )
    ap.add_argument(
        "--copy-docs",
        type=int,
        default=0,
        help="short copying documents (conversations.copy_documents) for a curriculum (0: none)",
    )
    ap.add_argument(
        "--copy-steps",
        type=int,
        default=300,
        help="curriculum length: the share of copying rows falls linearly from "
        "--copy-start to --copy-floor over these steps",
    )
    ap.add_argument("--copy-start", type=float, default=1.0)
    ap.add_argument(
        "--title-weight",
        type=_positive_float,
        default=1.0,
        help="loss weight of the name tokens on replies' '## <dish>' title lines (1: plain mean)",
    )
    ap.add_argument(
        "--rename-p",
        type=_share,
        default=conversations.RENAME_P,
        help="share of training conversations whose dish is asked under another name",
    )
    ap.add_argument("--copy-floor", type=float, default=0.1)
    ap.add_argument(
        "--stop-after",
        type=int,
        default=0,
        help="stop after N steps of the --steps schedule (what a checkpoint holds; 0: run all)",
    )
    args = ap.parse_args(argv)
    for key, value in PRESETS[args.corpus].items():  # unset options take the corpus's preset
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def train(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Build corpus and tokenizer, train, save the model directory; return generation_info."""
    t_start = time.perf_counter()
    commit = _git_commit()  # now: the code that builds the corpus, not what is checked out later
    before = earlier_stages(args.init_from)  # now: a bad file fails before, not after, training
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    train_docs = make_corpus(args.corpus, args.seed, args.docs, "train", args.rename_p)
    val_docs = make_corpus(args.corpus, args.seed, args.val_docs, "heldout")
    tok = _tokenizer(args, train_docs)
    save_tokenizer(tok, out, args.n_positions)
    eos_id = tok.token_to_id(END)
    train_s = TokenStream.encode(tok, train_docs, args.title_weight)
    val_s = TokenStream.encode(tok, val_docs)
    copy_docs = conversations.copy_documents(args.seed, args.copy_docs) if args.copy_docs else []
    copy_s = TokenStream.encode(tok, copy_docs, args.title_weight) if copy_docs else None
    if copy_s is not None:
        print(f"curriculum: {len(copy_docs)} copying docs ({len(copy_s.ids):,} tokens)")
    print(
        f"corpus: {len(train_docs)} train docs ({len(train_s.ids):,} tokens, "
        f"{sum(map(len, train_docs)):,} chars), {len(val_docs)} held-out docs "
        f"({len(val_s.ids):,} tokens); vocab {tok.get_vocab_size()}; "
        f"{time.perf_counter() - t_start:.1f}s",
        flush=True,
    )

    make_cfg = llama_config if args.arch == "llama" else gpt2_config
    cfg = make_cfg(
        tok.get_vocab_size(), args.n_positions, args.n_embd, args.n_layer, args.n_head, eos_id
    )
    model: torch.nn.Module
    if args.arch == "llama":
        model = Llama(parse_config(cfg))
        init_llama(model, args.seed)
    else:
        model = GPT2(parse_config(cfg))
        init_weights(model, args.seed)
    if args.init_from is not None:
        _init_from(model, args.init_from)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once
    print(
        f"model: {args.n_layer} layers, n_embd {args.n_embd}, {args.n_head} heads, "
        f"{n_params:,} parameters",
        flush=True,
    )

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    rng = np.random.default_rng(args.seed)
    starts = train_s.window_starts(args.seq_len)
    copy_starts = copy_s.window_starts(args.seq_len) if copy_s is not None else None
    losses: list[float] = []
    val_loss = float("nan")
    t_train = time.perf_counter()
    t_log, tokens_since = t_train, 0
    run = min(args.stop_after or args.steps, args.steps)
    for step in range(run):
        lr = lr_at(step, args.steps, args.lr, args.warmup, args.min_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        if copy_s is not None and copy_starts is not None:
            share = args.copy_start + (args.copy_floor - args.copy_start) * min(
                1.0, step / max(1, args.copy_steps)
            )
            n_copy = int(rng.binomial(args.batch_size, share))
            sa = rng.choice(starts, size=args.batch_size - n_copy)
            sb = rng.choice(copy_starts, size=n_copy)
            (xa, ya), (xb, yb) = train_s.batch(sa, args.seq_len), copy_s.batch(sb, args.seq_len)
            x, y = torch.cat([xa, xb]), torch.cat([ya, yb])
            w = torch.cat(
                [train_s.target_weights(sa, args.seq_len), copy_s.target_weights(sb, args.seq_len)]
            )
        else:
            sa = rng.choice(starts, size=args.batch_size)
            x, y = train_s.batch(sa, args.seq_len)
            w = train_s.target_weights(sa, args.seq_len)
        logits = model(x)
        loss = weighted_loss(logits, y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
        tokens_since += x.numel()
        last = step == run - 1
        if (step + 1) % args.log_every == 0 or last:
            now = time.perf_counter()
            avg = sum(losses[-args.log_every :]) / len(losses[-args.log_every :])
            print(
                f"step {step + 1:5d}/{args.steps} loss {avg:.4f} lr {lr:.2e} "
                f"{tokens_since / (now - t_log):,.0f} tok/s elapsed {now - t_start:,.0f}s",
                flush=True,
            )
            t_log, tokens_since = now, 0
        if (step + 1) % args.eval_every == 0 or last:
            val_loss = mean_loss(model, val_s, args.seq_len, args.batch_size)
            print(f"step {step + 1:5d} val loss {val_loss:.4f}", flush=True)
            t_log = time.perf_counter()  # keep eval time out of tokens/s
        if args.save_every and (step + 1) % args.save_every == 0 and not last:
            save_weights(model, cfg, out)
            print(f"step {step + 1:5d} checkpoint saved to {out}", flush=True)
            if args.keep_checkpoints:
                keep = out.with_name(f"{out.name}-step{step + 1}")
                shutil.copytree(out, keep, dirs_exist_ok=True)
            t_log = time.perf_counter()
    train_seconds = time.perf_counter() - t_train

    model.eval()
    save_weights(model, cfg, out)
    gen_cfg = {
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
        **GENERATION_DEFAULTS,
    }
    (out / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2) + "\n")
    tail = losses[-50:]
    generator, n_dishes, n_held = corpus_counts(args.corpus)
    info = {
        "model": "tui-gen cooking demo ("
        + ("Llama" if args.arch == "llama" else "GPT-2")
        + " architecture)",
        "generation_defaults": GENERATION_DEFAULTS,
        "parameters": n_params,
        "architecture": {
            k: cfg[k]
            for k in ("model_type", "n_layer", "n_embd", "n_head", "n_positions", "vocab_size")
        },
        "corpus": {
            "generator": generator,
            "seed": args.seed,
            "train_documents": len(train_docs),
            "train_tokens": len(train_s.ids),
            "train_characters": sum(map(len, train_docs)),
            "validation_documents": len(val_docs),
            "validation_tokens": len(val_s.ids),
            "dishes_total": n_dishes,
            "dishes_held_out": n_held,
        },
        "training": {
            "steps": run,
            "schedule_steps": args.steps,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "tokens_seen": run * args.batch_size * args.seq_len,
            "lr": args.lr,
            "min_lr": args.min_lr,
            "warmup": args.warmup,
            "weight_decay": args.weight_decay,
            "grad_clip": args.grad_clip,
            "threads": args.threads,
            "init_from": str(args.init_from) if args.init_from else None,
            "copy_docs": args.copy_docs,
            "copy_steps": args.copy_steps if args.copy_docs else 0,
            "copy_start": args.copy_start if args.copy_docs else 0.0,
            "copy_floor": args.copy_floor if args.copy_docs else 0.0,
            "title_weight": args.title_weight,
            "rename_p": args.rename_p,
            "train_seconds": round(train_seconds, 1),
            "total_seconds": round(time.perf_counter() - t_start, 1),
        },
        "final_train_loss": round(sum(tail) / len(tail), 4),
        "final_validation_loss": round(val_loss, 4),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "command": command,
        "commit": commit,
    }
    info["stages"] = [*before, stage_summary(info)]
    (out / "generation_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_model_card(out)
    print(
        f"saved {out} in {time.perf_counter() - t_start:,.0f}s: train loss "
        f"{info['final_train_loss']}, held-out val loss {info['final_validation_loss']}",
        flush=True,
    )
    return info


def _git_commit() -> str | None:
    """The repository commit the corpus generator came from ("+dirty" with local changes):
    the corpus is only reproducible with the same generator code. None outside a checkout."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def stage_summary(info: dict[str, Any]) -> dict[str, Any]:
    """One training run of a model that may have been trained in several (--init-from)."""
    t = info["training"]
    return {
        "command": info["command"],
        "steps": t["steps"],
        "tokens_seen": t["tokens_seen"],
        "train_seconds": t["train_seconds"],
        "total_seconds": t["total_seconds"],
        "final_validation_loss": info["final_validation_loss"],
        "date": info["date"],
        "commit": info.get("commit"),
    }


def earlier_stages(init_from: Path | None) -> list[dict[str, Any]]:
    """The runs that trained the --init-from model, oldest first, from its generation_info.json
    (none when training from scratch or when that model has no such file), so the card of a
    continued model says everything it took to make it."""
    path = init_from / "generation_info.json" if init_from is not None else None
    if path is None or not path.is_file():
        return []
    try:
        prev = json.loads(path.read_text())
        return list(prev.get("stages") or [stage_summary(prev)])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"train: --init-from {init_from}: cannot read {path.name} ({e!r})", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    train(args, "python -m dev.cooking.train " + shlex.join(argv))


if __name__ == "__main__":
    main()
