"""The model card (models/cooking/README.md), written from generation_info.json.

train.py writes it after training and evaluate.py --write again with the measured quality, so
the card never states a number that the files do not hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGETS = (
    ("names_dish_pct", "first replies that name the dish asked about", 95),
    ("structure_pct", "first replies with an ingredient list (quantities) and numbered steps", 95),
    ("no_repeat_pct", "replies without a repeated line or sentence", 98),
    ("follow_on_dish_pct", "follow-up replies that stay on the dish", 90),
    ("stopped_pct", "replies that ended with the end token", None),
)


def quality_section(ev: dict[str, Any] | None) -> str:
    if not ev:
        return "Not evaluated yet: run `python -m dev.cooking.evaluate` on this directory.\n"
    rows = "".join(
        f"| {label} | {ev[key]:.0f}% | {'>= ' + str(t) + '%' if t else '-'} |\n"
        for key, label, t in TARGETS
    )
    missed = [label for key, label, t in TARGETS if t and ev[key] < t]
    text = (
        f"Measured by `{ev.get('command', 'python -m dev.cooking.evaluate')}`: {ev['n']} "
        f"conversations about held-out dishes (never in training), asked in held-out phrasings, "
        f"each with {ev['follow_ups'] // max(ev['n'], 1)} held-out follow-ups "
        f"({ev['follow_ups']} in all), replies sampled at temperature {ev['temperature']} "
        f"(seed {ev['seed']}) through the engine's generator:\n\n"
        "| metric | value | target (issue #17) |\n| --- | --- | --- |\n"
        f"| held-out validation loss | {ev['val_loss']:.4f} nats/token, "
        f"{ev['val_loss_per_char']:.4f} nats/character | - |\n" + rows
    )
    if ev.get("follow_on_dish_by_kind"):
        kinds = ", ".join(f"{k} {v:.0f}%" for k, v in ev["follow_on_dish_by_kind"].items())
        text += f"\nFollow-ups that stay on the dish, by question: {kinds}.\n"
    if missed:
        text += "\nBelow target: " + "; ".join(missed) + ".\n"
    if ev.get("v1"):
        v1 = ev["v1"]
        text += (
            "\nThe previous demo (v1, templated dish names, 384-token context) on the same "
            f"evaluation: names the dish {v1['names_dish_pct']:.0f}%, structure "
            f"{v1['structure_pct']:.0f}%, no repeated line {v1['no_repeat_pct']:.0f}%, "
            f"follow-ups on the dish {v1['follow_on_dish_pct']:.0f}%.\n"
        )
    return text


def familiar_section(fam: dict[str, Any] | None) -> str:
    """The issue's familiar dishes, which training holds: what a new user asks first."""
    if not fam:
        return ""
    n = fam["replies"]
    return (
        f"\nFamiliar dishes (`{fam['command']}`: {len(fam['dishes'])} dishes a new user asks "
        f"for first, such as {', '.join(fam['dishes'][:4])}, each in {len(fam['phrasings'])} "
        f'everyday phrasings, then "{fam["follow_up"]}"; these dishes are in training): '
        f"names the dish {fam['names_dish']}/{n}, follow-up on the dish "
        f"{fam['follow_on_dish']}/{n}, structure {fam['structure']}/{n}, no repeated line "
        f"{fam['no_repeat']}/{n}.\n"
    )


def stages_section(info: dict[str, Any]) -> str:
    """The training bullets of a model made in more than one run (train.py --init-from)."""
    stages = info.get("stages") or []
    if len(stages) < 2:
        return (
            f"- Reproduce with `{info['command']}` (trained {info['date']}, "
            f"torch {info['torch_version']}).\n"
        )
    minutes = sum(st["train_seconds"] for st in stages) / 60
    lines = [
        f"- Trained in {len(stages)} runs, each continuing from the weights and tokenizer of "
        f"the one before ({minutes:.0f} minutes of training in all, torch "
        f"{info['torch_version']}); reproduce with, in order:\n"
    ]
    for i, st in enumerate(stages, 1):
        lines.append(
            f"  {i}. `{st['command']}` ({st['steps']:,} steps, {st['train_seconds'] / 60:.0f} "
            f"minutes, validation loss {st['final_validation_loss']}, {st['date']}"
            + (f", generator at commit {st['commit']}" if st.get("commit") else "")
            + ")\n"
        )
    return "".join(lines)


def write_model_card(out: Path) -> None:
    info = json.loads((out / "generation_info.json").read_text())
    c, t, a = info["corpus"], info["training"], info["architecture"]
    g = info.get("generation_defaults", {})
    arch = (
        f"{info['parameters']:,} parameters: {a['n_layer']} layers, width {a['n_embd']}, "
        f"{a['n_head']} heads, {a['n_positions']:,}-token context, {a['vocab_size']:,}-token "
        "byte-level BPE vocabulary"
    )
    family = "Llama" if a.get("model_type") == "llama" else "GPT-2"
    last = "The last run: " if len(info.get("stages") or []) > 1 else ""
    minutes = f"{t['train_seconds'] / 60:.0f} minutes ({t['total_seconds'] / 60:.0f} in all)"
    planned = t.get("schedule_steps", t["steps"])
    schedule = f" (stopped after {t['steps']:,} of a {planned:,}-step schedule)" * (
        planned > t["steps"]
    )
    defaults = (
        f"temperature {g['temperature']}, top-k {g['top_k']}, top-p {g['top_p']}, at most "
        f"{g['max_new_tokens']} new tokens"
        if g
        else "see `generation_config.json`"
    )
    card = f"""# cooking: the tui-gen demo model

A tiny {family}-architecture language model ({arch}) that answers cooking questions about
{c["dishes_total"]} real, commonly cooked dishes with a recipe (title, servings and times, an
ingredient list with quantities, numbered steps) and answers follow-up questions about the
dish in the conversation: how long it keeps, freezing, scaling to N people, swapping an
ingredient, what to serve with it, the oven temperature in Fahrenheit, a vegetarian version.
It ships with tui-gen so that `tui-gen models/cooking` works out of the box.

## What it is not

- **Not a cook.** Its recipes come from data written for tui-gen (`dev/cooking/dishes/*.txt`:
  soups, salads, pasta and noodles, rice, curries and stews, roasts and grills, pies, baking,
  desserts, breakfasts, drinks, sauces, dips and sides) and were never tested in a kitchen. A
  model this small also garbles them: quantities, times and steps in its replies can be wrong
  or borrowed from a similar dish.
- **Held-out and unknown dishes are guesses.** Asked about a dish it never saw (such as the
  {c["dishes_held_out"]} held out of training for the evaluation), it copies the name from the
  question and writes ingredients and steps of similar dishes it knows: a plausible-looking
  recipe, not that dish's real one.
- **Not a source of food-safety advice.** Check meat temperatures and allergens elsewhere.
- **Not a general chatbot.** Outside cooking it writes recipe-shaped text or nonsense. It knows
  nothing about the world, remembers nothing beyond its {a["n_positions"]:,}-token context, and
  speaks only English.
- **Not trained on copied text.** The corpus is generated from that data by a seeded script.

## Prompt format

Chat roles are single special tokens; the chat template in `tokenizer_config.json` renders

```
<|system|>
optional system prompt<|end|>
<|user|>
How do I make lasagne?<|end|>
<|assistant|>
```

and the model ends every reply with `<|end|>` (the eos token). Plain prompts such as "Today's
recipe is" continue as recipe prose. Defaults in `generation_config.json`: {defaults}.

## Training

- Corpus: `{c["generator"]}`, seed {c["seed"]}: {c["train_documents"]:,} generated
  conversations ({c["train_tokens"]:,} tokens) about {c["dishes_total"] - c["dishes_held_out"]}
  dishes, asked in many phrasings (a recipe, what you need, for N people, quick, vegetarian,
  gluten-free, how long, what to make with two ingredients) with up to a dozen follow-ups,
  some moving on to a second dish, up to about 1,000 tokens each. {c["dishes_held_out"]} dishes
  and a separate set of phrasings and follow-up questions are held out of training entirely.
- {last}{t["steps"]:,} AdamW steps of {t["batch_size"]} x {t["seq_len"]} tokens
  ({t["tokens_seen"]:,} tokens){schedule}, cosine learning rate {t["lr"]} to {t["min_lr"]}, gradient
  clipping {t["grad_clip"]}, {t["threads"]} CPU thread(s),
  {minutes}.
- Final training loss {info["final_train_loss"]}, held-out validation loss
  {info["final_validation_loss"]} (nats per token).
{stages_section(info)}
## Quality

{quality_section(info.get("evaluation"))}{familiar_section(info.get("familiar"))}"""
    (out / "README.md").write_text(card)
