"""How much a quantized model's predictions differ from float32's, position by position.

    python -m dev.quant_quality MODEL --quantize int8 [int4 ...] [--group-size 32]
    python -m dev.quant_quality FILE.gguf --quantize keep   # its blocks vs float32, 8 rows a step
    python -m dev.quant_quality FILE.gguf --quantize keep-prompt   # whole passages at once
    python -m dev.quant_quality FILE.gguf --quantize llama.cpp   # llama-cpp-python's logits

Both models read the same built-in passages with teacher forcing (the true text is fed, not
each model's own output), so every position compares the two next-token distributions on
identical context. Reported per mode: positions compared, top-1 agreement (the greedy choice is
the same), mean KL(float32 || quantized) in nats, and the perplexity of the text under each.
Greedy *trajectories* are not compared: one early flip makes every later token differ, which
says little about how close the models are.

The passages are written for this script (recipes, code, prose, dialogue, instructions, a
letter, arithmetic, verse), so the check needs no data set and no download.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

PASSAGES: dict[str, str] = {
    "recipe: lentil soup": (
        "Red lentil soup with lemon\n\nServes 4. Takes 35 minutes.\n\nIngredients:\n"
        "- 2 tablespoons olive oil\n- 1 large onion, finely chopped\n- 2 carrots, diced\n"
        "- 3 cloves garlic, minced\n- 1 teaspoon ground cumin\n- 1/2 teaspoon smoked paprika\n"
        "- 250 g red lentils, rinsed\n- 1.2 litres vegetable stock\n- 1 lemon, juiced\n"
        "- salt and black pepper\n- a handful of fresh parsley\n\nMethod:\n"
        "1. Warm the oil in a large pot over medium heat. Add the onion and carrots with a pinch "
        "of salt and cook for 8 to 10 minutes, stirring now and then, until soft and golden at "
        "the edges.\n2. Stir in the garlic, cumin and paprika and cook for one minute, until "
        "fragrant. Do not let the garlic burn or the soup will taste bitter.\n3. Add the lentils "
        "and the stock. Bring to a boil, then lower the heat and simmer, partly covered, for "
        "20 minutes, until the lentils have collapsed.\n4. Blend half of the soup and stir it "
        "back in, so it is creamy but still has some texture.\n5. Season with the lemon juice, "
        "salt and pepper. Taste, and add more lemon if it tastes flat.\n\nServe with parsley "
        "on top and warm flatbread on the side. The soup keeps for four days in the fridge and "
        "thickens as it stands; thin it with a splash of water when you reheat it."
    ),
    "recipe: bread": (
        "My grandmother never weighed anything when she baked bread, which made her recipe "
        "hard to write down. After a dozen attempts, this is as close as I have come. Mix 500 "
        "grams of strong white flour with 10 grams of salt and 7 grams of dried yeast, keeping "
        "the salt and the yeast on opposite sides of the bowl at first. Pour in 320 millilitres "
        "of lukewarm water and a tablespoon of honey, and bring everything together with your "
        "hand until no dry flour remains. Knead on a lightly floured counter for ten minutes. "
        "The dough will be sticky at the start; resist the urge to add flour, and it will turn "
        "smooth and elastic as the gluten develops. Leave it in an oiled bowl, covered with a "
        "damp towel, until doubled in size, about an hour in a warm kitchen. Knock it back, "
        "shape it into a tight round, and let it rise again on a tray for forty minutes while "
        "the oven heats to 230 degrees. Slash the top with a sharp knife, throw a few ice cubes "
        "onto the floor of the oven for steam, and bake for 30 to 35 minutes. The loaf is done "
        "when it sounds hollow as you tap the bottom. Let it cool for at least an hour before "
        "cutting, however tempting the smell."
    ),
    "code: python": (
        "import json\nfrom dataclasses import dataclass, field\nfrom pathlib import Path\n\n\n"
        "@dataclass\nclass Inventory:\n"
        '    """Items in stock, persisted as JSON next to the program."""\n\n'
        "    path: Path\n    items: dict[str, int] = field(default_factory=dict)\n\n"
        '    @classmethod\n    def load(cls, path: Path) -> "Inventory":\n'
        "        if not path.exists():\n            return cls(path)\n"
        "        with path.open() as f:\n            return cls(path, json.load(f))\n\n"
        "    def add(self, name: str, count: int = 1) -> None:\n        if count <= 0:\n"
        '            raise ValueError(f"count must be positive, got {count}")\n'
        "        self.items[name] = self.items.get(name, 0) + count\n\n"
        "    def remove(self, name: str, count: int = 1) -> bool:\n"
        "        have = self.items.get(name, 0)\n        if have < count:\n"
        "            return False\n        if have == count:\n            del self.items[name]\n"
        "        else:\n            self.items[name] = have - count\n        return True\n\n"
        "    def save(self) -> None:\n        tmp = self.path.with_suffix('.tmp')\n"
        "        tmp.write_text(json.dumps(self.items, indent=2, sort_keys=True))\n"
        "        tmp.replace(self.path)\n\n\n"
        'if __name__ == "__main__":\n'
        '    inv = Inventory.load(Path("stock.json"))\n    inv.add("apples", 12)\n'
        '    inv.add("pears", 3)\n    if not inv.remove("apples", 5):\n'
        '        print("not enough apples")\n    inv.save()\n'
        "    for name, count in sorted(inv.items.items()):\n"
        '        print(f"{name:>10}: {count}")\n'
    ),
    "code: javascript and shell": (
        "// Debounce: run `fn` only after `wait` ms have passed without another call.\n"
        "function debounce(fn, wait = 200) {\n  let timer = null;\n"
        "  return function (...args) {\n    clearTimeout(timer);\n"
        "    timer = setTimeout(() => fn.apply(this, args), wait);\n  };\n}\n\n"
        "const search = document.querySelector('#search');\n"
        "const results = document.querySelector('#results');\n\n"
        "async function runQuery(text) {\n"
        "  const response = await fetch(`/api/search?q=${encodeURIComponent(text)}`);\n"
        "  if (!response.ok) {\n"
        "    results.textContent = `Error: ${response.status}`;\n    return;\n  }\n"
        "  const data = await response.json();\n"
        "  results.innerHTML = data.items.map((item) => `<li>${item.title}</li>`).join('');\n}\n\n"
        "search.addEventListener('input', debounce((event) => runQuery(event.target.value)));\n\n"
        "#!/usr/bin/env bash\n# Back up the notes folder, keeping the last seven archives.\n"
        'set -euo pipefail\nsrc="$HOME/notes"\ndest="$HOME/backups"\n'
        'mkdir -p "$dest"\nstamp=$(date +%Y-%m-%d)\n'
        'tar -czf "$dest/notes-$stamp.tar.gz" -C "$src" .\n'
        'ls -1t "$dest"/notes-*.tar.gz | tail -n +8 | xargs -r rm --\n'
        'echo "backup written to $dest/notes-$stamp.tar.gz"\n'
    ),
    "prose: story": (
        "The ferry left at six, whether or not anyone was on it. Mara had learned this the hard "
        "way during her first week on the island, standing on the pier with her suitcase while "
        "the boat shrank into the grey morning. Now she arrived early, and she liked the wait. "
        "The harbour smelled of diesel and seaweed, and the gulls argued over the fishermen's "
        'scraps. Old Tomas, who sold coffee from a cart, knew her order without asking. "You '
        'look tired," he said, handing her the paper cup. She laughed and told him that was '
        "what happened when you spent the night reading letters that were forty years old. He "
        "raised an eyebrow. The letters had been in a tin box under the floorboards of the "
        "cottage she was renting, wrapped in oilcloth and tied with a faded ribbon. They were "
        "written by a woman named Elsa to a sailor who, as far as Mara could tell, had never "
        "come home. Each one ended the same way: the lamp is lit, the door is open. Tomas was "
        "quiet for a long moment. Then he said that his mother's name had been Elsa, and that "
        "the lamp in the cottage window had burned every night until the year he turned ten."
    ),
    "prose: science": (
        "Why does bread go stale? It is tempting to think that stale bread has simply dried "
        "out, and moisture loss does play a part, but the main cause is a process called "
        "starch retrogradation. When dough bakes, the heat and water make the starch granules "
        "swell and lose their ordered, crystalline structure; this gelatinised starch is what "
        "gives fresh bread its soft crumb. As the loaf cools and sits, the long starch "
        "molecules slowly realign and pack back into crystals, pushing water out of their "
        "structure and making the crumb firm and crumbly. Retrogradation happens fastest at "
        "temperatures just above freezing, which is why bread kept in the refrigerator goes "
        "stale more quickly than bread left on the counter. Freezing, by contrast, almost "
        "stops the process. Gentle reheating can reverse it for a while: warming a stale loaf "
        "in the oven melts the starch crystals again, and the bread becomes soft, at least "
        "until it cools. Fats, sugars and certain enzymes slow retrogradation, which explains "
        "why enriched breads such as brioche stay soft for longer than a plain baguette."
    ),
    "prose: history": (
        "The first public lending libraries in Britain were not grand buildings but rooms "
        "above shops, reading clubs in coffee houses, and collections kept by churches for "
        "their parishioners. The Public Libraries Act of 1850 allowed town councils to raise a "
        "small tax to fund free libraries, but adoption was slow: a town needed a vote of its "
        "ratepayers, and many feared the cost or doubted that working people wanted to read. "
        "Manchester opened its free library in 1852, and the crowds at the opening surprised "
        "even its supporters. By the end of the century, gifts from philanthropists, most "
        "famously the steel magnate Andrew Carnegie, had paid for hundreds of new buildings. "
        "Carnegie gave the money for the building only; the town had to provide the site and "
        "commit to paying for books and staff, a condition meant to make each library a local "
        "responsibility rather than a gift that could be neglected. Historians still argue "
        "about the motives behind the movement. Some stress the wish to improve and educate; "
        "others point to a desire to keep working men out of the pubs."
    ),
    "dialogue: support chat": (
        "User: Hi, my laptop suddenly got really slow this morning. It was fine yesterday.\n"
        "Assistant: Sorry to hear that! Let's narrow it down. Is it slow all the time, or only "
        "when you use certain programs?\nUser: All the time. Even opening the start menu takes "
        "a few seconds.\nAssistant: Okay. Could you open the Task Manager (Ctrl+Shift+Esc) and "
        "tell me which processes use the most CPU and memory?\nUser: There's something called "
        "'Update Service' using 90% of the disk.\nAssistant: That explains it. The system is "
        "probably installing updates in the background, which keeps the disk busy. It usually "
        "finishes within an hour. If you can, leave the laptop plugged in and restart it once "
        "the updates are done.\nUser: It's been like this for three hours though.\n"
        "Assistant: Then it may be stuck. Let's try restarting now; updates resume safely "
        "after a restart. If it is still slow afterwards, we can check the free disk space, "
        "because a nearly full disk makes updates crawl.\nUser: Restarted. It's better, and "
        "there's a message saying the update finished.\nAssistant: Great! If it slows down "
        "again, let me know and we'll look at the startup programs next."
    ),
    "dialogue: play": (
        "ANNA: You're late again.\nBEN: The bus broke down. I walked from the bridge.\n"
        "ANNA: In this rain? You could have called.\nBEN: My phone died. Everything died today. "
        "The bus, my phone, the plant on my desk.\nANNA: The plant died months ago, Ben. You "
        "just noticed today.\nBEN: (sitting down heavily) That's not comforting.\n"
        "ANNA: It wasn't meant to be. (pause) Sit closer to the heater, you're dripping on the "
        "carpet.\nBEN: Did they announce the results?\nANNA: This afternoon. I didn't open the "
        "envelope. I thought we should open it together.\nBEN: You waited? You never wait for "
        "anything.\nANNA: I waited. Don't make it strange.\nBEN: (taking the envelope, turning "
        "it over) It's thin. Thin envelopes are bad news. Good news comes with forms.\n"
        "ANNA: Or it's one page that says yes. Open it.\nBEN: (reading) 'We are pleased to "
        "inform you...' Anna. Anna, it says pleased.\nANNA: (laughing) Then stop dripping on it!"
    ),
    "instructions": (
        "How to change a flat bicycle tyre\n\nYou will need tyre levers, a spare inner tube or "
        "a patch kit, and a pump that fits your valve type.\n\n1. Shift to the smallest rear "
        "cog, open the brake if it has a quick release, and remove the wheel.\n2. Let out any "
        "remaining air. Hook one tyre lever under the bead of the tyre, opposite the valve, "
        "and clip it to a spoke. Slide the second lever along the rim until one side of the "
        "tyre comes off.\n3. Pull out the tube. Before putting a new one in, run your fingers "
        "carefully around the inside of the tyre to find whatever caused the puncture: a thorn "
        "or a sliver of glass will puncture the new tube at once.\n4. Inflate the new tube just "
        "enough to give it shape, push the valve through the rim, and tuck the tube into the "
        "tyre.\n5. Starting at the valve, push the bead back onto the rim with your thumbs. The "
        "last section is the hardest; avoid using levers here, as they can pinch the tube.\n"
        "6. Inflate to the pressure printed on the side of the tyre, check that the bead sits "
        "evenly, and refit the wheel. Remember to close the brake."
    ),
    "letter": (
        "Dear Ms Okafor,\n\nThank you for your letter of 3 March and for taking the time to "
        "describe the problems with your order in such detail. I am sorry that the dining "
        "table arrived with a cracked leg and that our delivery team did not stay to check the "
        "item with you, as they should have.\n\nI have arranged for a replacement leg to be "
        "sent by courier this week; it should reach you by Friday. If you would prefer a "
        "complete replacement table, or a full refund, please let me know and I will arrange "
        "either at no cost to you. In addition, I have refunded the delivery charge of 45 "
        "pounds to your card, which you should see within five working days.\n\nI have shared "
        "your letter with the manager of our delivery service, so that the team understands "
        "why checking each item with the customer matters.\n\nThank you again for your "
        "patience. If there is anything else I can do, please call me directly on the number "
        "below.\n\nYours sincerely,\n\nDaniel Reyes\nCustomer Care Manager"
    ),
    "arithmetic": (
        "Problem: A bakery sells muffins for 2.50 each and cookies for 1.20 each. On Saturday "
        "it sold 84 muffins and 150 cookies. How much money did it take?\n\nSolution: The "
        "muffins brought in 84 x 2.50 = 210.00. The cookies brought in 150 x 1.20 = 180.00. "
        "Together that is 210.00 + 180.00 = 390.00.\n\nProblem: A train leaves at 14:35 and "
        "arrives at 17:10. How long is the journey?\n\nSolution: From 14:35 to 17:35 is 3 "
        "hours, and 17:10 is 25 minutes earlier, so the journey takes 2 hours and 35 "
        "minutes.\n\nProblem: A rectangle has a perimeter of 36 cm and its length is twice its "
        "width. Find its area.\n\nSolution: Let the width be w. Then the length is 2w and the "
        "perimeter is 2(w + 2w) = 6w = 36, so w = 6 cm and the length is 12 cm. The area is "
        "6 x 12 = 72 square centimetres.\n\nProblem: What is 15% of 240?\n\nSolution: 10% of "
        "240 is 24 and 5% is 12, so 15% is 24 + 12 = 36."
    ),
    "verse": (
        "The kettle hums before the dawn,\nthe window holds a paler blue,\nthe cat is curled "
        "upon the lawn\nof blankets where the night slipped through.\n\nI count the things I "
        "did not say\nand fold them small like paper boats,\nand set them on the stream of "
        "day\nto see which sinks and which one floats.\n\nThe bread is rising in its bowl,\n"
        "the radio is turned down low,\nthe morning, patient, makes me whole\nin ways the "
        "evening did not know.\n\nSo let the hours come as they will,\nwith rain or sun or "
        "both at once;\nthe kettle sings, the house is still,\nand every day begins like this "
        "for once."
    ),
}


#: a GGUF's blocks fed each passage whole: the long-prompt GEMM (gguf_linear.gemm_dtype)
PROMPT_MODE = "keep-prompt"
LLAMA_CPP_MODE = "llama.cpp"  # the peer on the same file, 8 tokens a step as it decodes
OWN_MODES = ("keep", PROMPT_MODE, LLAMA_CPP_MODE)  # not a `--quantize` mode of ours


def _ids(gen: Any, text: str, max_len: int) -> list[int]:
    ids = gen.encode(text)
    return ids[:max_len]


def _logprobs(model: Any, ids: list[int]) -> Any:
    """(T, vocab) float64 log-probabilities of the next token at every position."""
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([ids]))[0]  # (T, vocab)
    return torch.log_softmax(logits.double(), dim=-1)


def _logprobs_stepwise(gen: Any, ids: list[int], chunk: int = 8) -> Any:
    """The same, fed `chunk` tokens at a time through the KV cache: the rows a decode step (or
    a short turn) computes with, so a path whose long prompts take another kernel (GGUF
    blocks: float GEMM above 128 rows, 8-bit activations below) is measured as it decodes."""
    import torch

    cache = gen._ensure_cache()
    out = []
    with torch.inference_mode():
        for i in range(0, len(ids), chunk):
            part = torch.tensor([ids[i : i + chunk]])
            out.append(gen.model(part, start=i, cache=cache)[0])
    return torch.log_softmax(torch.cat(out).double(), dim=-1)


def _logprobs_llama_cpp(llm: Any, ids: list[int]) -> Any:
    """The same from llama.cpp (llama-cpp-python with logits for every position), fed the same
    ids 8 at a time, so its 8-bit activations are measured against the same float32 reference:
    the yardstick for how close the technique both engines use can come."""
    import numpy as np
    import torch

    llm.reset()
    llm.eval(ids)
    scores = torch.from_numpy(np.array(llm.scores[: len(ids)])).double()
    return torch.log_softmax(scores, dim=-1)


def _check_llama_cpp(model_path: str) -> None:
    """Before the float32 reference is computed: the peer mode's package and file."""
    from tui_gen.errors import TuiGenError

    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:
        raise TuiGenError(
            "the llama.cpp mode needs llama-cpp-python: pip install llama-cpp-python"
        ) from e
    if not model_path.endswith(".gguf"):
        raise TuiGenError(f"{model_path}: the llama.cpp mode reads a .gguf file; pass one")


def _load_llama_cpp(model_path: str, n_ctx: int) -> Any:
    """llama-cpp-python on the same file, as many threads as torch uses here."""
    import torch
    from llama_cpp import Llama

    return Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=torch.get_num_threads(),
        logits_all=True,
        n_batch=8,
        n_ubatch=8,
        verbose=False,
    )


def compare(ref_lp: Any, q_lp: Any, ids: list[int]) -> dict[str, float]:
    """Sums over positions: agreement, KL(ref || q), and the true next token's NLL under each."""
    import torch

    p = ref_lp.exp()
    kl = (p * (ref_lp - q_lp)).sum(-1)  # (T,)
    same = (ref_lp.argmax(-1) == q_lp.argmax(-1)).double()  # (T,)
    nxt = torch.tensor(ids[1:])
    ar = torch.arange(len(ids) - 1)
    return {
        "positions": float(len(ids)),
        "top1_same": float(same.sum()),
        "kl_sum": float(kl.sum()),
        "kl_max": float(kl.max()),
        "nll_ref": float(-ref_lp[ar, nxt].sum()),
        "nll_q": float(-q_lp[ar, nxt].sum()),
        "predicted": float(len(ids) - 1),
    }


def run(
    model_path: str,
    modes: list[str],
    group_size: int,
    dtype: str = "float32",
    max_len: int = 512,
    threads: int | None = None,
    act_dtype: str | None = None,
    use_kernel: bool | None = None,
    head: str | None = "int8",
    activations: str = "fast",
) -> dict[str, Any]:
    """`activations`: the integer-dot layers' activation planes (engine --activations)."""
    import math

    import torch

    from tui_gen.engine.generator import Generator
    from tui_gen.engine.native.gguf_linear import set_activations
    from tui_gen.engine.quantize import check_mode, describe, quantize_model

    for m in modes:
        if m == LLAMA_CPP_MODE:
            _check_llama_cpp(model_path)
        elif m not in OWN_MODES:
            check_mode(m)
    if threads:
        torch.set_num_threads(threads)
    ref = Generator.load(model_path, device="cpu", dtype=dtype)
    max_len = min(max_len, ref.config.max_position_embeddings)  # cooking: 384 positions
    texts = {name: _ids(ref, text, max_len) for name, text in PASSAGES.items()}
    ref_lps = {name: _logprobs(ref.model, ids) for name, ids in texts.items()}
    out: dict[str, Any] = {"model": str(model_path), "dtype": dtype, "results": {}}
    for mode in modes:
        t = time.perf_counter()
        per: dict[str, dict[str, float]] = {}
        if mode == "keep":  # a GGUF's own blocks against their float32 dequantization
            gen = Generator.load(model_path, device="cpu", activations=activations)
            for name, ids in texts.items():
                per[name] = compare(ref_lps[name], _logprobs_stepwise(gen, ids), ids)
        elif mode == LLAMA_CPP_MODE:
            gen = _load_llama_cpp(model_path, max_len)
            for name, ids in texts.items():
                per[name] = compare(ref_lps[name], _logprobs_llama_cpp(gen, ids), ids)
        elif mode == PROMPT_MODE:  # the same blocks, each passage as one prompt
            gen = Generator.load(model_path, device="cpu", activations=activations)
            for name, ids in texts.items():
                per[name] = compare(ref_lps[name], _logprobs(gen.model, ids), ids)
        else:
            gen = Generator.load(model_path, device="cpu", dtype=dtype)
            adt = getattr(torch, act_dtype) if act_dtype else None
            quantize_model(
                gen.model, mode, group_size, act_dtype=adt, use_kernel=use_kernel, head=head
            )
            set_activations(gen.model, activations)
            # int4 as GGUF blocks decodes with 8-bit activations but multiplies a whole
            # passage with the prompt GEMM: measure it as it decodes, like "keep"
            blocks = bool((getattr(gen.model, "quantization", None) or {}).get("blocks"))
            for name, ids in texts.items():
                lps = _logprobs_stepwise(gen, ids) if blocks else _logprobs(gen.model, ids)
                per[name] = compare(ref_lps[name], lps, ids)
        tot = {k: sum(r[k] for r in per.values()) for k in next(iter(per.values()))}
        tot["kl_max"] = max(r["kl_max"] for r in per.values())
        out["results"][mode] = {
            "describe": (
                "llama.cpp (llama-cpp-python), same file"
                if mode == LLAMA_CPP_MODE
                else gen.loaded.quantization
                if mode in ("keep", PROMPT_MODE)
                else describe(gen.model)
            ),
            "positions": int(tot["positions"]),
            "top1_agreement": tot["top1_same"] / tot["positions"],
            "mean_kl": tot["kl_sum"] / tot["positions"],
            "max_kl": tot["kl_max"],
            "ppl_float": math.exp(tot["nll_ref"] / tot["predicted"]),
            "ppl_quantized": math.exp(tot["nll_q"] / tot["predicted"]),
            "per_passage": {
                n: {
                    "positions": int(r["positions"]),
                    "top1_agreement": r["top1_same"] / r["positions"],
                    "mean_kl": r["kl_sum"] / r["positions"],
                }
                for n, r in per.items()
            },
            "seconds": time.perf_counter() - t,
        }
        del gen
    return out


def print_report(out: dict[str, Any], detail: bool) -> None:
    print(f"{out['model']} ({out['dtype']}), teacher-forced on {len(PASSAGES)} passages")
    print(
        "| mode | positions | top-1 agreement | mean KL (nats) | max KL | ppl float | ppl quant |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in out["results"].values():
        print(
            f"| {r['describe']} | {r['positions']} | {r['top1_agreement']:.2%} | "
            f"{r['mean_kl']:.4f} | {r['max_kl']:.3f} | {r['ppl_float']:.2f} | "
            f"{r['ppl_quantized']:.2f} |"
        )
    if detail:
        for mode, r in out["results"].items():
            print(f"\n{mode} per passage:")
            for name, pr in r["per_passage"].items():
                print(
                    f"  {name:<28} {pr['positions']:>4} positions  "
                    f"top-1 {pr['top1_agreement']:.1%}  KL {pr['mean_kl']:.4f}"
                )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m dev.quant_quality",
        description="Top-1 agreement and KL of quantized vs float32 next-token distributions.",
    )
    p.add_argument("model", help="model directory or .gguf file")
    p.add_argument("--quantize", nargs="+", default=["int8", "int4"], metavar="MODE")
    p.add_argument("--group-size", type=int, default=32, help="int4 group size")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-len", type=int, default=512, help="tokens per passage at most")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--act-dtype",
        choices=("float32", "bfloat16"),
        help="activation dtype fed to the kernels (default: the engine's choice)",
    )
    p.add_argument(
        "--head",
        default="int8",
        choices=("int8", "int4", "float"),
        help="lm_head in int4 mode (default int8)",
    )
    p.add_argument(
        "--activations",
        default="fast",
        choices=("fast", "precise"),
        help="activation planes of the integer-dot layers (GGUF blocks, int4), as the engine's "
        "--activations",
    )
    p.add_argument(
        "--no-kernel",
        action="store_true",
        help="use the dequantize+matmul path (same numbers as float32 activations, faster "
        "than the kernels' scalar float32 code)",
    )
    p.add_argument("--detail", action="store_true", help="per-passage numbers")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from tui_gen.errors import TuiGenError

    try:
        out = run(
            args.model,
            args.quantize,
            args.group_size,
            args.dtype,
            args.max_len,
            args.threads,
            args.act_dtype,
            False if args.no_kernel else None,
            None if args.head == "float" else args.head,
            args.activations,
        )
    except TuiGenError as e:
        print(f"quant_quality: error: {e}", file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_report(out, args.detail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
