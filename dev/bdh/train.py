"""Train a tiny BDH on the CPU, the way pathwaycom/bdh's train.py does (AdamW on random
windows of bytes, the parallel form), and save it both ways tui-gen opens:

    python -m dev.bdh.train --out models/bdh-tiny            # config.json + model.safetensors
    python -m dev.bdh.train --checkpoint run/checkpoint.pt   # train.py's {"model": ...} file
    python -m dev.bdh.train --text my_book.txt --steps 2000  # your own text

The text is dev/bdh/corpus.py's generated English unless --text is given. One seed fixes the
text, the initial weights and the batch order.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dev.bdh.corpus import generate_corpus
from tui_gen.models.bdh import BDH, init_weights
from tui_gen.models.registry import parse_config


def bdh_config(n_layer: int, n_embd: int, n_head: int, multiplier: int, block: int) -> dict:
    return {
        "model_type": "bdh",
        "n_layer": n_layer,
        "n_embd": n_embd,
        "n_head": n_head,
        "mlp_internal_dim_multiplier": multiplier,
        "vocab_size": 256,
        "block_size": block,
    }


def upstream_state_dict(model: BDH) -> dict[str, torch.Tensor]:
    """Our parameters under upstream's names, with its attn.freqs buffer (1, 1, 1, N)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sd["attn.freqs"] = model.freqs.detach().clone().view(1, 1, 1, -1)
    return sd


def train(args: argparse.Namespace) -> tuple[BDH, dict[str, Any], dict[str, Any]]:
    torch.manual_seed(args.seed)
    text = Path(args.text).read_bytes() if args.text else generate_corpus(args.seed).encode()
    data = torch.tensor(list(text), dtype=torch.long)
    split = int(len(data) * 0.95)
    train_data, val_data = data[:split], data[split:]
    raw = bdh_config(args.n_layer, args.n_embd, args.n_head, args.multiplier, args.block_size)
    model = BDH(parse_config(raw))
    init_weights(model, args.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    g = torch.Generator().manual_seed(args.seed)

    def batch(src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(src) - args.block_size - 1, (args.batch_size,), generator=g)
        x = torch.stack([src[i : i + args.block_size] for i in ix])
        y = torch.stack([src[i + 1 : i + 1 + args.block_size] for i in ix])
        return x, y

    t0 = time.perf_counter()
    loss = torch.tensor(float("nan"))
    for step in range(args.steps):
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, args.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = batch(train_data)
        logits = model.parallel_forward(x)
        loss = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if args.log_every and (step % args.log_every == 0 or step == args.steps - 1):
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.perf_counter() - t0:.0f}s")
    model.eval()
    with torch.no_grad():
        x, y = batch(val_data)
        val = F.cross_entropy(model.parallel_forward(x).reshape(-1, 256), y.reshape(-1))
    info = {
        "trained_by": "python -m dev.bdh.train " + " ".join(sys.argv[1:]),
        "steps": args.steps,
        "train_loss": round(loss.item(), 4),
        "val_loss": round(float(val), 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "text": args.text or "dev/bdh/corpus.py (generated)",
    }
    return model, raw, {"opt": opt.state_dict(), "info": info}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dev.bdh.train", description=__doc__)
    p.add_argument("--out", help="write config.json + model.safetensors here")
    p.add_argument("--checkpoint", help="write a train.py-style {'model': ...} .pt here")
    p.add_argument("--text", help="a UTF-8 text file to train on (default: generated)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--multiplier", type=int, default=16, help="mlp_internal_dim_multiplier")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    args = p.parse_args(argv)
    if not args.out and not args.checkpoint:
        p.error("give --out DIR and/or --checkpoint FILE.pt")
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, raw, extra = train(args)
    if args.checkpoint:
        path = Path(args.checkpoint)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"model": upstream_state_dict(model), "optimizer": extra["opt"], "step": args.steps},
            path,
        )
        print(path)
    if args.out:
        from safetensors.torch import save_file

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(sd, str(out / "model.safetensors"))
        (out / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
        (out / "generation_info.json").write_text(json.dumps(extra["info"], indent=2) + "\n")
        print(out)
    print(json.dumps(extra["info"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
