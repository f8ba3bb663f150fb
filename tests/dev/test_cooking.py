"""The bundled cooking model and the code that builds it (tui_gen/demo, models/cooking)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from dev.cooking import kitchen_data as K
from dev.cooking.corpus import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    CorpusGenerator,
    all_dishes,
    dishes,
    eval_questions,
    generate_corpus,
    is_heldout,
    render_chat,
)
from dev.cooking.evaluate import has_ingredient_list, has_numbered_steps, names_dish
from tui_gen.engine.chat import render_messages

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "cooking"
MESSAGES = [
    {"role": "system", "content": "You are a helpful cooking assistant."},
    {"role": "user", "content": "How do I make smoky chickpea stew?"},
    {"role": "assistant", "content": "Smoky Chickpea Stew\n\nIngredients:\n- 1 onion"},
    {"role": "user", "content": "Thanks!"},
]


# --- corpus ---------------------------------------------------------------------------------
def test_corpus_is_deterministic_for_a_seed():
    a = generate_corpus(7, 40)
    assert a == generate_corpus(7, 40)
    assert a != generate_corpus(8, 40)
    assert all(doc.endswith("<|end|>\n") for doc in a)


def test_corpus_is_varied():
    names = [d.name for d in all_dishes()]
    assert len(names) == len(set(names)) >= 1000
    assert len({d.type.key for d in all_dishes()}) >= 25
    assert len({d.main.key for d in all_dishes()}) >= 80
    technique_ingredients = {k for t in K.TECHNIQUES.values() for k in t.ingredients}
    assert len({d.main.key for d in all_dishes()} | technique_ingredients) >= 100
    assert len({d.cuisine for d in all_dishes() if d.cuisine}) >= 15

    gen = CorpusGenerator(0)
    turns = [gen.dish_turn() for _ in range(400)]
    assert len({d.name for d, _, _ in turns}) >= 300
    # phrasings: the question with the dish name taken out
    shapes = {
        re.sub(re.escape(d.name), "#", q, flags=re.I).lower().rstrip("?.") for d, q, _ in turns
    }
    assert len(shapes) >= 30
    # answer layouts: which headings each answer used
    heads = {
        tuple(
            ln
            for ln in a.splitlines()
            if ln.rstrip(":*").strip("*")
            in ("Ingredients", "You will need", "Method", "Steps", "Instructions")
        )
        for _, _, a in turns
    }
    assert len(heads) >= 8
    docs = generate_corpus(0, 300)
    assert sum(not d.startswith("<|") for d in docs) >= 20  # plain continuation text
    assert any(d.startswith("Today's recipe is") for d in docs)
    assert any("<|system|>" in d for d in docs) and any(d.count("<|user|>") == 2 for d in docs)


def test_every_generated_answer_passes_the_eval_checks():
    gen = CorpusGenerator(3)
    for _ in range(200):
        dish, _, answer = gen.dish_turn()
        assert has_ingredient_list(answer), answer
        assert has_numbered_steps(answer), answer
        assert names_dish(answer, dish.name), answer


def test_eval_checks_reject_replies_without_structure():
    assert not has_ingredient_list("Mix flour and eggs, then bake it.")
    assert not has_ingredient_list("- salt\n- pepper\n- 2 eggs")  # no quantity with a unit
    assert not has_numbered_steps("1. Mix.\n3. Bake.\n4. Eat.")
    assert has_numbered_steps("1. Mix.\n2. Bake.\n3. Eat.")
    assert not names_dish("Lemon Cake\n...", "Lemon Drizzle Cake")


def test_heldout_dishes_and_phrasings_never_reach_training():
    held = {d.name.lower() for d in dishes("heldout")}
    assert 200 <= len(held) <= 0.2 * len(all_dishes())
    text = "".join(generate_corpus(0, 2000)).lower()
    names_in_text = {n for n in held if n in text}
    # a held-out name can only appear inside a longer training name ("Pea Soup" in "Split Pea
    # Soup"); check that every hit is such a substring
    train_names = [d.name.lower() for d in dishes("train")]
    for n in names_in_text:
        assert any(n in t and n != t for t in train_names), n
    for tpl in K.RECIPE_HELDOUT + K.TIME_HELDOUT + K.TEMP_HELDOUT + K.SUBST_DISH_HELDOUT:
        longest = max(tpl.split("{dish}"), key=len).split("{missing}")[0].strip().lower()
        assert longest not in text, tpl


def test_eval_questions_ask_heldout_dishes_with_heldout_phrasings():
    items = eval_questions(0, 100)
    assert len({i.dish for i in items}) == 100
    assert all(is_heldout(i.dish) for i in items)
    pools = K.RECIPE_HELDOUT + K.TIME_HELDOUT + K.TEMP_HELDOUT + K.SUBST_DISH_HELDOUT
    for i in items:
        q = i.messages[-1]["content"].lower()
        assert any(
            max(t.split("{dish}"), key=len).split("{missing}")[0].strip(" ?.").lower() in q
            for t in pools
        ), q


# --- tokenizer and chat template ------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))


@pytest.fixture(scope="module")
def tokenizer_config():
    return json.loads((MODEL_DIR / "tokenizer_config.json").read_text())


def test_tokenizer_round_trips_and_special_tokens_are_single_ids(tokenizer):
    ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
    assert None not in ids and len(set(ids)) == 4
    for t, i in zip(SPECIAL_TOKENS, ids, strict=True):
        assert tokenizer.encode(t).ids == [i]
    for text in [
        generate_corpus(1, 1)[0],
        "Crème brûlée at 180°C 🍮 — naïve\tTAB\n\n  x",
        "<|user|>\nhi<|end|>\n<|assistant|>\n",
    ]:
        assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text
    assert 2000 <= tokenizer.get_vocab_size() <= 4096


def test_chat_template_renders_the_training_format(tokenizer_config):
    tpl = tokenizer_config["chat_template"]
    assert tpl == CHAT_TEMPLATE
    assert tokenizer_config["eos_token"] == "<|end|>"
    for agp in (False, True):
        ours = render_messages(tpl, MESSAGES, add_generation_prompt=agp)
        assert ours == render_chat(MESSAGES, add_generation_prompt=agp)
    assert render_chat(MESSAGES[1:2], True) == (
        "<|user|>\nHow do I make smoky chickpea stew?<|end|>\n<|assistant|>\n"
    )


def test_transformers_reads_the_tokenizer_and_template_the_same_way():
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    text = hf.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == render_chat(MESSAGES, add_generation_prompt=True)
    assert hf.eos_token == "<|end|>"
    assert hf.convert_tokens_to_ids("<|end|>") == hf.eos_token_id


# --- model files ----------------------------------------------------------------------------
def test_model_directory_is_complete_and_small():
    names = {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "generation_info.json",
        "README.md",
    }
    assert names <= {p.name for p in MODEL_DIR.iterdir()}
    total = sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file())
    assert total <= 25 * 1024 * 1024
    cfg = json.loads((MODEL_DIR / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
    # issue #17: a 1,024-token context at least
    assert cfg["max_position_embeddings"] >= 1024
    info = json.loads((MODEL_DIR / "generation_info.json").read_text())
    assert info["command"].startswith("python -m dev.cooking.train ")
    # trained weights: far below a uniform guess over the vocabulary (ln V nats per token); the
    # held-out loss counts dishes the model never saw, so it is not near zero
    assert info["final_validation_loss"] < math.log(cfg["vocab_size"]) / 2
    gen_cfg = json.loads((MODEL_DIR / "generation_config.json").read_text())
    assert gen_cfg["eos_token_id"] == cfg["eos_token_id"]


def test_transformers_gives_the_same_logits_as_our_llama():
    from transformers import LlamaForCausalLM

    from tui_gen.engine.loading.loader import load_model

    ours = load_model(MODEL_DIR).model
    hf = LlamaForCausalLM.from_pretrained(str(MODEL_DIR)).eval()
    x = torch.tensor([[2, 100, 200, 300, 400, 500, 0, 3] * 8])
    with torch.no_grad():
        a = hf(x).logits
        b = ours(x)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < 1e-4


# --- training script ------------------------------------------------------------------------
TINY = [
    "--corpus",
    "dishes",
    "--docs",
    "60",
    "--val-docs",
    "8",
    "--vocab-size",
    "300",
    "--n-layer",
    "1",
    "--n-embd",
    "32",
    "--n-head",
    "2",
    "--n-positions",
    "512",
    "--seq-len",
    "512",
    "--batch-size",
    "2",
    "--steps",
    "3",
    "--log-every",
    "1",
    "--eval-every",
    "3",
]


def test_training_smoke_run_writes_a_loadable_deterministic_model(tmp_path, capsys):
    from dev.cooking import train
    from tui_gen.engine.generator import Generator

    train.main(["--seed", "0", "--out", str(tmp_path / "a"), *TINY])
    log = capsys.readouterr().out
    assert "step     3/3 loss" in log and "tok/s" in log and "val loss" in log
    g = Generator.load(tmp_path / "a")
    assert g.chat_template == CHAT_TEMPLATE
    assert g.eos_token_ids == [g.tokenizer.token_to_id("<|end|>")]
    assert isinstance(g.generate("Today's recipe is", max_new_tokens=3, seed=0), str)
    info = json.loads((tmp_path / "a" / "generation_info.json").read_text())
    assert info["training"]["steps"] == 3 and "--steps 3" in info["command"]
    assert "parameters" in (tmp_path / "a" / "README.md").read_text()

    train.main(["--seed", "0", "--out", str(tmp_path / "b"), *TINY])
    same = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert same == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert info["corpus"]["generator"] == "dev.cooking.conversations"
    assert info["corpus"]["dishes_total"] >= 400


def test_a_continued_model_records_and_cards_every_run(tmp_path, capsys):
    """--init-from: generation_info carries the runs before (oldest first) and the card lists
    each command, so the card says all it took to make the model."""
    from dev.cooking import train

    train.main(["--seed", "0", "--out", str(tmp_path / "a"), *TINY])
    train.main(
        ["--seed", "0", "--out", str(tmp_path / "b"), "--init-from", str(tmp_path / "a"), *TINY]
    )
    train.main(
        ["--seed", "0", "--out", str(tmp_path / "c"), "--init-from", str(tmp_path / "b"), *TINY]
    )
    capsys.readouterr()
    info = json.loads((tmp_path / "c" / "generation_info.json").read_text())
    outs = [st["command"].split("--out ")[1].split()[0] for st in info["stages"]]
    assert outs == [str(tmp_path / x) for x in "abc"]
    assert all(st["steps"] == 3 for st in info["stages"])
    card = (tmp_path / "c" / "README.md").read_text()
    assert "Trained in 3 runs" in card and "The last run: 3 AdamW steps" in card
    for x in "abc":
        assert f"--out {tmp_path / x}" in card
    single = (tmp_path / "a" / "README.md").read_text()
    assert "Reproduce with `" in single and "Trained in" not in single


def test_evaluation_runs_whole_conversations_and_writes_the_card(tmp_path, capsys):
    from dev.cooking import evaluate, train

    train.main(["--seed", "0", "--out", str(tmp_path), *TINY])
    evaluate.main([str(tmp_path), "--n", "2", "--val-docs", "2", "--write"])
    log = capsys.readouterr().out
    assert "2 held-out conversations, 4 follow-ups" in log
    info = json.loads((tmp_path / "generation_info.json").read_text())
    ev = info["evaluation"]
    for key in ("names_dish_pct", "structure_pct", "no_repeat_pct", "follow_on_dish_pct"):
        assert 0 <= ev[key] <= 100
    assert ev["val_loss"] > 0 and ev["follow_ups"] == 4
    card = (tmp_path / "README.md").read_text()
    assert "follow-up replies that stay on the dish" in card and "held-out" in card


def test_init_from_a_bad_directory_is_one_line(tmp_path, capsys):
    """--init-from: a missing file or weights of another shape exit 2 with one line."""
    from safetensors.torch import save_file

    from dev.cooking.train import _init_from, gpt2_config, hf_state_dict
    from tui_gen.models.gpt2 import GPT2
    from tui_gen.models.registry import parse_config

    model = GPT2(parse_config(gpt2_config(64, 32, 16, 1, 2, 0)))
    with pytest.raises(SystemExit) as e:
        _init_from(model, tmp_path)
    assert e.value.code == 2 and "cannot read model.safetensors" in capsys.readouterr().err
    wider = GPT2(parse_config(gpt2_config(64, 32, 32, 1, 2, 0)))
    save_file(hf_state_dict(wider), str(tmp_path / "model.safetensors"))
    with pytest.raises(SystemExit) as e:
        _init_from(model, tmp_path)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "do not fit this model" in err and len(err.splitlines()) == 1
    save_file(hf_state_dict(model), str(tmp_path / "model.safetensors"))
    _init_from(model, tmp_path)  # its own weights load


def test_title_weight_covers_exactly_the_names_on_title_lines():
    """--title-weight raises the loss weight of the title-line name tokens and nothing else."""
    from tokenizers import Tokenizer

    from dev.cooking.train import TokenStream, make_corpus

    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    docs = make_corpus("dishes", 0, 4, "train")
    plain = TokenStream.encode(tok, docs)
    assert (plain.weights == 1).all()
    heavy = TokenStream.encode(tok, docs, title_weight=4.0)
    assert set(heavy.weights.tolist()) == {1.0, 4.0}
    picked = heavy.ids[heavy.weights == 4.0].tolist()
    names = [m.group(1) for d in docs for m in re.finditer(r"^## (.+)$", d, re.M)]
    assert tok.decode(picked).replace(" ", "") == "".join(names).replace(" ", "")
    w = heavy.target_weights(heavy.window_starts(64)[:2], 64)
    assert w.shape == (2, 64)


def test_weighted_loss_is_the_plain_mean_at_weight_one_and_leans_on_heavy_targets():
    from dev.cooking.train import weighted_loss

    torch.manual_seed(0)
    logits, y = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    ones = torch.ones(2, 5)
    plain = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert torch.allclose(weighted_loss(logits, y, ones), plain)
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    only_first = torch.zeros(2, 5)
    only_first[0, 0] = 3.0
    assert torch.allclose(weighted_loss(logits, y, only_first), ce[0])


def test_rename_p_sets_how_often_a_training_dish_is_renamed():
    from dev.cooking import conversations
    from dev.cooking.dishes import dishes

    known = {d.name for d in dishes("train")}

    def renamed(p: float) -> int:
        gen = conversations.Conversations(0, "train", rename_p=p)
        return sum(gen.pick().name not in known for _ in range(400))

    assert renamed(0.0) == 0
    assert renamed(1.0) >= 390
    assert renamed(0.2) < renamed(0.8)


@pytest.mark.parametrize(
    "flags", [["--title-weight", "-1"], ["--title-weight", "nan"], ["--rename-p", "1.5"]]
)
def test_bad_title_weight_or_rename_share_is_one_usage_line(flags, capsys):
    from dev.cooking.train import parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["--corpus", "dishes", *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and flags[0] in err and "Traceback" not in err


def test_init_from_a_corrupt_generation_info_is_one_line(tmp_path, capsys):
    """The earlier runs are read before training starts: a bad file stops it at once (exit 2,
    one line), not after an hour of training."""
    from dev.cooking.train import earlier_stages

    assert earlier_stages(None) == [] and earlier_stages(tmp_path) == []
    for text in ("{not json", "[1, 2]", '{"command": "x"}'):
        (tmp_path / "generation_info.json").write_text(text)
        with pytest.raises(SystemExit) as e:
            earlier_stages(tmp_path)
        err = capsys.readouterr().err
        assert e.value.code == 2 and "cannot read generation_info.json" in err
        assert len(err.splitlines()) == 1
