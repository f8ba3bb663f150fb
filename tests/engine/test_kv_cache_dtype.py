"""`--kv-cache-dtype bfloat16`: a float32 model keeps its keys and values in bfloat16 (half the
memory, half the bytes a decode step's attention reads). Every path reads the same rounded
values: the native steps (one row, rows), the torch forward, the scheduler alone or batched."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest
import torch

from tui_gen.engine.events import Event, FinishEvent
from tui_gen.engine.generator import Generator
from tui_gen.engine.scheduler import Job, Scheduler
from tui_gen.errors import TuiGenError
from tui_gen.models.kv_cache import KVCache
from tui_gen.options import SamplingParams

GREEDY = SamplingParams(do_sample=False, max_new_tokens=16)
PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15], [20], [30, 31, 32, 33]]


@pytest.fixture(scope="module")
def gen(tiny_llama: Path) -> Generator:
    return Generator.load(tiny_llama, device="cpu", dtype="float32", kv_cache_dtype="bfloat16")


def _torch_only(g: Generator) -> Generator:
    g._native = (None, "torch forced by the test")
    return g


def test_the_cache_is_bfloat16_and_half_the_bytes(gen: Generator, tiny_llama: Path) -> None:
    plain = Generator.load(tiny_llama, device="cpu", dtype="float32")
    assert gen.dtype == plain.dtype == plain.kv_dtype == torch.float32
    assert gen.kv_dtype == torch.bfloat16
    assert gen.kv_cache_bytes * 2 == plain.kv_cache_bytes
    gen.generate_result([5, 6, 7], params=GREEDY.replace(max_new_tokens=2))
    cache = gen._ensure_cache()
    assert {t.dtype for t in cache.k + cache.v} == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in gen.model.parameters())


def test_the_native_step_and_the_torch_forward_agree_on_a_bfloat16_cache(
    gen: Generator, tiny_llama: Path
) -> None:
    if gen.decode_backend != "native":
        pytest.skip(gen.decode_reason)
    torch_gen = _torch_only(
        Generator.load(tiny_llama, device="cpu", dtype="float32", kv_cache_dtype="bfloat16")
    )
    for ids in PROMPTS:
        native = gen.generate_result(ids, params=GREEDY).token_ids
        assert native == torch_gen.generate_result(ids, params=GREEDY).token_ids


def test_rows_logits_match_the_torch_batch_forward_on_a_bfloat16_cache(gen: Generator) -> None:
    decoder = gen._native_decoder()
    if decoder is None:
        pytest.skip(gen.decode_reason)
    c = gen.config
    cache = KVCache(c.num_layers, 2, c.num_kv_heads, 32, c.head_dim, torch.bfloat16, "cpu")
    ref = KVCache(c.num_layers, 2, c.num_kv_heads, 32, c.head_dim, torch.bfloat16, "cpu")
    idx = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])
    with torch.inference_mode():
        gen.model(idx, 0, cache, last_only=True)
        gen.model(idx, 0, ref, last_only=True)
        tok = torch.tensor([[11], [12]])
        for col in range(4, 10):
            got = decoder.step_rows(tok, col, cache)
            want = gen.model(tok, col, ref)
            assert ((got - want).abs().max() / want.abs().max()).item() < 1e-4
            assert torch.equal(got.argmax(-1), want.argmax(-1))
            tok = want.argmax(-1)
    for a, b in zip(cache.k + cache.v, ref.k + ref.v):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b.float(), atol=2e-2, rtol=2e-2)


def test_greedy_is_the_same_alone_and_batched_on_a_bfloat16_cache(gen: Generator) -> None:
    expected = [gen.generate_result(ids, params=GREEDY).token_ids for ids in PROMPTS]
    finished: queue.Queue[FinishEvent] = queue.Queue()

    def sink(ev: Event) -> None:
        if isinstance(ev, FinishEvent):
            finished.put(ev)

    sched = Scheduler(gen, max_batch=8).start()
    try:
        for i, ids in enumerate(PROMPTS):
            sched.submit(Job(list(ids), GREEDY, sink, index=i))
        events = [finished.get(timeout=60) for _ in PROMPTS]
    finally:
        sched.close()
    got = {ev.index: ev.token_ids for ev in events}
    assert [got[i] for i in range(len(PROMPTS))] == expected
    assert max(sched.step_rows) > 1  # they really shared steps


def test_a_bad_value_fails_before_loading_and_a_recurrent_state_keeps_its_dtype(
    tmp_path: Path, tiny_bdh: Path
) -> None:
    with pytest.raises(TuiGenError, match="--kv-cache-dtype"):
        Generator.load(tmp_path / "not-a-model", kv_cache_dtype="float16")
    bdh = Generator.load(tiny_bdh, device="cpu", dtype="float32", kv_cache_dtype="bfloat16")
    assert bdh.kv_dtype == torch.float32


def test_info_reports_the_cache_in_its_dtype(tiny_llama: Path) -> None:
    from tui_gen.cli.info import describe

    plain = describe(str(tiny_llama), device="cpu", dtype="float32")
    half = describe(str(tiny_llama), device="cpu", dtype="float32", kv_cache_dtype="bfloat16")
    assert (plain["kv_cache_dtype"], half["kv_cache_dtype"]) == ("float32", "bfloat16")
    assert half["kv_cache_bytes_per_1k_tokens"] * 2 == plain["kv_cache_bytes_per_1k_tokens"]
    assert half["rss_estimate_bytes"] < plain["rss_estimate_bytes"]


def test_the_command_line_flag_reaches_info_and_a_bad_one_is_one_line(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tui_gen.cli import main

    flags = ["--device", "cpu", "--dtype", "float32", "--kv-cache-dtype", "bfloat16", "--json"]
    assert main(["info", str(tiny_llama), *flags]) == 0
    assert json.loads(capsys.readouterr().out)["kv_cache_dtype"] == "bfloat16"
    assert main(["info", str(tiny_llama), "--kv-cache-dtype", "float16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--kv-cache-dtype" in err[0]
