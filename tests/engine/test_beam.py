"""Beam search returns what transformers' beam search returns for the same settings."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import torch

from tui_gen.engine.beam import beam_search
from tui_gen.engine.generator import Generator
from tui_gen.errors import TuiGenError
from tui_gen.options import BeamParams

# (num_beams, length_penalty, early_stopping, repetition_penalty, num_return_sequences)
CASES = [
    (2, 1.0, False, 1.0, 1),
    (3, 1.0, True, 1.0, 3),
    (4, 2.0, "never", 1.0, 2),
    (3, -1.0, False, 1.3, 3),
    (4, 0.0, "never", 1.0, 4),
    (2, 0.5, True, 1.5, 2),
]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def models(request: pytest.FixtureRequest):
    import transformers

    path: Path = request.getfixturevalue(f"tiny_{request.param}")
    hf = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    return Generator.load(path, device="cpu"), hf


def _hf_beams(hf, ids, eos, nb, lp, es, rp, nr, max_new):
    out = hf.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        num_beams=nb,
        do_sample=False,
        length_penalty=lp,
        early_stopping=es,
        repetition_penalty=rp,
        num_return_sequences=nr,
        max_new_tokens=max_new,
        eos_token_id=eos,
        pad_token_id=eos,
        output_scores=True,
        return_dict_in_generate=True,
    )
    seqs = []
    for seq in out.sequences.tolist():
        new = seq[len(ids) :]
        seqs.append(new[: new.index(eos)] if eos in new else new)
    return seqs, out.sequences_scores.tolist()


def _frequent_token(gen: Generator, ids: list[int], nb: int, rp: float) -> int:
    """A token the beams keep choosing: used as EOS, beams finish at different lengths and
    the length penalty and early stopping decide the result."""
    free = beam_search(
        gen,
        ids,
        8,
        BeamParams(nb, num_return_sequences=nb),
        repetition_penalty=rp,
        eos_token_ids=[],
    )
    counts = Counter(t for h in free.hypotheses for t in h.token_ids[1:])
    return counts.most_common(1)[0][0]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_matches_transformers(models, case) -> None:
    gen, hf = models
    nb, lp, es, rp, nr = case
    reasons = set()
    for prompt in ("The quick brown fox", "Preheat the oven"):
        if reasons and (nr < nb or "eos" in reasons):
            break  # one prompt is enough once the finishing rules were exercised
        ids = gen.encode(prompt)
        eos = _frequent_token(gen, ids, nb, rp)
        ref, ref_scores = _hf_beams(hf, ids, eos, nb, lp, es, rp, nr, 14)
        out = beam_search(
            gen, ids, 14, BeamParams(nb, lp, es, nr), repetition_penalty=rp, eos_token_ids=[eos]
        )
        assert [h.token_ids for h in out.hypotheses] == ref
        assert [h.score for h in out.hypotheses] == pytest.approx(ref_scores, rel=1e-4, abs=1e-4)
        reasons |= {h.finish_reason for h in out.hypotheses}
    if nr == nb:
        assert "eos" in reasons  # the finishing rules were exercised


def test_model_eos_and_api(tiny_llama: Path) -> None:
    """Generator.beam_search: the model's own EOS, best first, text decoded, stats filled."""
    import transformers

    gen = Generator.load(tiny_llama, device="cpu")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    ids = gen.encode("Numbers: 0 1")
    out = gen.beam_search(ids, 3, num_return_sequences=3, max_new_tokens=10)
    ref, _ = _hf_beams(hf, ids, gen.eos_token_ids[0], 3, 1.0, False, 1.0, 3, 10)
    assert [h.token_ids for h in out.hypotheses] == ref
    scores = [h.score for h in out.hypotheses]
    assert scores == sorted(scores, reverse=True)
    assert out.hypotheses[0].text == gen.tokenizer.decode(out.hypotheses[0].token_ids)
    assert out.stats.prompt_tokens == len(ids) and out.stats.generated_tokens > 0


def test_stop_string_ends_a_beam(tiny_gpt2: Path) -> None:
    gen = Generator.load(tiny_gpt2, device="cpu")
    plain = gen.beam_search("The quick", 2, max_new_tokens=12).hypotheses[0]
    text = plain.text
    stop = next(text[k : k + 2] for k in range(2, len(text) - 2) if "\ufffd" not in text[k : k + 2])
    out = gen.beam_search(
        "The quick", 2, max_new_tokens=12, stop_strings=[stop], num_return_sequences=2
    )
    assert all(stop not in h.text for h in out.hypotheses)
    assert any(h.finish_reason == "stop" for h in out.hypotheses)


def test_cancel_returns_best_so_far(tiny_llama: Path) -> None:
    gen = Generator.load(tiny_llama, device="cpu")
    cancel = threading.Event()
    cancel.set()
    out = gen.beam_search("The quick", 3, max_new_tokens=50, cancel=cancel)
    assert len(out.hypotheses) == 1
    assert out.hypotheses[0].finish_reason in ("cancelled", "eos")
    assert len(out.hypotheses[0].token_ids) <= 1


@pytest.mark.parametrize(
    "kw",
    [
        dict(num_beams=0),
        dict(num_beams=2, num_return_sequences=3),
        dict(num_beams=2, early_stopping="sometimes"),
    ],
)
def test_bad_settings_are_user_errors(kw) -> None:
    with pytest.raises(TuiGenError):
        BeamParams(**kw)
