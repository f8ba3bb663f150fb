"""engine/threads.py: the thread governor against simulated machines (step times it is fed),
and the native decode step running on the count it picks."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tui_gen.engine import threads
from tui_gen.engine.threads import PROBE_EVERY_MAX, ThreadGovernor
from tui_gen.engine.threads import runnable as kernel_runnable

# a step's seconds on n threads, at step i
Machine = Callable[[int, int], float]


@pytest.fixture(autouse=True)
def _two_threads_quiet_start(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TUI_GEN_THREADS", raising=False)
    monkeypatch.setattr(threads, "_busy", lambda: False)
    monkeypatch.setattr(threads, "runnable", lambda: 1)  # only this thread is runnable...
    monkeypatch.setattr(threads, "_cores", lambda: 8)  # ...on a machine with cores to spare
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    threads.fix(None)
    yield
    threads.fix(None)
    torch.set_num_threads(saved)


def quiet(n: int, i: int) -> float:
    """2 threads 1 ms, 1 thread 1.8 ms, with a little noise."""
    return (1.0 if n == 2 else 1.8) * 1e-3 * (1 + 0.05 * random.random())


def busy(n: int, i: int) -> float:
    """Another process on a core: a 2-thread step is fast, except every third one waits for a
    time slice at a barrier (150 ms); 1 thread is steady at 2 ms."""
    if n == 1:
        return 2e-3
    return 0.15 if i % 3 == 0 else 1.1e-3


def run(g: ThreadGovernor, machine: Machine, steps: int, start: int = 0) -> tuple[list[int], float]:
    """(the thread count of every step, the total seconds) of `steps` steps."""
    used, total = [], 0.0
    for i in range(start, start + steps):
        n = g.threads()
        t = machine(n, i)
        g.record(n, t)
        used.append(n)
        total += t
    return used, total


def test_a_quiet_machine_keeps_every_thread_and_probes_ever_less() -> None:
    random.seed(0)
    g = ThreadGovernor()
    used, total = run(g, quiet, 5000)
    assert g.current == 2
    assert used.count(1) / len(used) < 0.02  # probes of 1 thread: under 2% of the steps
    assert total < 1.02 * 5000 * 1.05e-3  # within 2% of always running on 2
    late = used[2500:]
    assert late.count(1) <= 8  # the probes have backed off


def test_a_busy_machine_moves_to_one_thread_at_once_and_stays() -> None:
    g = ThreadGovernor()
    used, total = run(g, busy, 5000)
    assert g.current == 1
    assert 1 in used[:8]  # the first probe comes after two steps
    # what the 2-thread probes cost: a few slow steps, not a steady share
    assert total < 1.05 * 5000 * 2e-3
    assert used[8:].count(2) <= 10


def test_the_machine_getting_busy_then_quiet_again() -> None:
    """Quiet -> busy: a step far slower than usual triggers a probe of fewer threads at once;
    busy -> quiet: periodic probes find the faster count again within the longest wait."""
    g = ThreadGovernor()
    run(g, quiet, 300)
    assert g.current == 2
    used, _ = run(g, busy, 300, start=300)
    assert g.current == 1 and used[30:].count(2) <= 6
    used, _ = run(g, quiet, PROBE_EVERY_MAX + 50, start=600)
    assert g.current == 2


def test_moving_down_waits_as_long_as_a_lost_probe_before_trying_more_threads() -> None:
    """2 threads steadily 4x slower than 1 (one busy process beside us): once the governor
    has moved down, the next 2-thread probe waits about r * COST_SPAN steps, not PROBE_EVERY,
    since each of its steps costs r one-thread steps."""

    def slow_two(n: int, i: int) -> float:
        return 8e-3 if n == 2 else 2e-3

    g = ThreadGovernor()
    used, _ = run(g, slow_two, 400)
    assert g.current == 1 and used[:2] == [2, 2]
    first = used.index(1)
    again = [i for i in range(first, len(used)) if used[i] == 2]
    assert again and again[0] - first >= 4 * threads.COST_SPAN - 10


def test_a_fixed_count_is_obeyed_and_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    g = ThreadGovernor()
    monkeypatch.setenv("TUI_GEN_THREADS", "1")
    used, _ = run(g, busy, 50)
    assert set(used) == {1} and g.switches == 0
    monkeypatch.delenv("TUI_GEN_THREADS")
    threads.fix(2)
    used, _ = run(g, busy, 50)
    assert set(used) == {2} and threads.fixed() == 2
    threads.fix(None)
    assert threads.fixed() is None


def test_a_busy_load_average_starts_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_busy", lambda: True)
    assert ThreadGovernor().threads() == 1


def test_torch_thread_count_changes_restart_the_choice() -> None:
    g = ThreadGovernor()
    run(g, busy, 100)
    assert g.current == 1
    torch.set_num_threads(4)
    assert g.threads() == 4 and g.counts == [1, 2, 4]


@pytest.mark.slow
def test_native_steps_give_the_same_tokens_on_any_count(tiny_llama: Path) -> None:
    """The native step splits its work by output rows: 1 thread, 2 threads and the governor
    switching between them mid-reply give the same greedy tokens, and every step is timed."""
    from tui_gen.engine.generator import Generator
    from tui_gen.engine.native import build

    if build.load() is None:
        pytest.skip(build.reason())
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    assert gen.decode_backend == "native"
    ids = list(range(3, 12))
    outs = []
    for n in (1, 2):
        threads.fix(n)
        outs.append(gen.generate_result(ids, max_new_tokens=24, do_sample=False).token_ids)
    threads.fix(None)
    assert gen._native is not None
    native = gen._native[0]
    seen: list[int] = []
    record = native.governor.record
    counts = itertools.cycle([1, 2, 2, 1])
    native.governor.threads = lambda: next(counts)  # type: ignore[method-assign]
    native.governor.record = lambda n, s: (seen.append(n), record(n, s))  # type: ignore[method-assign]
    outs.append(gen.generate_result(ids, max_new_tokens=24, do_sample=False).token_ids)
    assert outs[0] == outs[1] == outs[2]
    assert set(seen) == {1, 2} and len(seen) >= 23


def crowded(n: int, i: int) -> float:
    """A CPU-bound process on each core: every parallel region of a 2-thread step waits ~8 ms
    for a time slice (a SmolLM2 step, ~200 regions, takes a second); 1 thread 15 ms."""
    return 15e-3 if n == 1 else 1.0


def test_a_crowded_machine_turns_probes_away_for_the_price_of_a_few_regions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(threads, "_busy", lambda: True)  # the load average says so
    asked: list[int] = []

    def region_cost(n: int) -> float:
        asked.append(n)
        return 8e-3

    g = ThreadGovernor(region_cost)
    used, total = run(g, crowded, 3000)
    assert set(used) == {1}  # not one 2-thread step (each would cost a second)
    assert g.turned_away >= 5 and set(asked) == {2}
    region_seconds = len(asked) * 8e-3
    assert total + region_seconds < 1.03 * 3000 * 15e-3
    # without the check the same machine pays for whole probe steps
    used, total = run(ThreadGovernor(), crowded, 3000)
    assert 2 in used and total > 1.0


def test_a_quiet_machine_passes_the_region_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started on one thread (a busy load average a minute ago), the first probe finds the
    machine quiet again and moves to two threads."""
    monkeypatch.setattr(threads, "_busy", lambda: True)
    g = ThreadGovernor(lambda n: 20e-6)
    used, _ = run(g, quiet, 200)
    assert g.current == 2 and g.turned_away == 0 and used[:2] == [1, 1]
    assert used[20:].count(1) <= 8


def test_crowded_regions_at_the_start_or_after_a_pause_mean_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The load average misses one CPU-bound process on two cores (it reads ~1), and it lags
    a minute; empty regions on all threads show it now. Checked where the governor starts and
    on the first step after a pause (a new generation), not on every step."""
    clock = [100.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    cost = [8e-3]
    asked: list[int] = []

    def region_cost(n: int) -> float:
        asked.append(n)
        return cost[0]

    assert ThreadGovernor(region_cost).current == 1  # crowded when it was made
    cost[0] = 20e-6
    g = ThreadGovernor(region_cost)
    assert g.current == 2
    asked.clear()
    used, _ = run(g, quiet, 50)
    assert asked == [] and used.count(2) >= 45  # steps in a row: no checks
    cost[0] = 8e-3  # another process starts while we are idle...
    clock[0] += 0.1
    assert g.threads() == 2 and asked == []  # ...a short gap is not a pause
    clock[0] += threads.IDLE
    assert g.threads() == 1 and asked == [2, 2, 2]
    assert g.threads() == 1 and len(asked) == 3  # checked once per pause


def one_busy(n: int, i: int) -> float:
    """One CPU-bound process beside us on two cores: every other 2-thread step waits 30 ms
    at a barrier (SmolLM2 Q4_1 measured 20-60 ms), the others take 4 ms; 1 thread is steady
    at 6 ms."""
    if n == 1:
        return 6e-3
    return 30e-3 if i % 2 == 0 else 4e-3


def test_a_process_kept_runnable_turns_probes_away_where_empty_regions_look_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Empty regions miss one busy process on two cores; the kernel's runnable count does
    not. While it stays runnable no step runs on 2 threads after the first probe; once it
    is gone the next probe moves back to 2 threads."""
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    tasks = [2]  # this thread and the other process
    looks: list[int] = []

    def runnable() -> int:
        looks.append(tasks[0])
        return tasks[0]

    g = ThreadGovernor(lambda n: 20e-6, runnable)
    # where it starts a count of 2 may be this thread and a worker of ours still spinning
    # after the load: it starts on 2 threads, and the first probe (two steps in) moves down
    assert g.current == 2
    used, total = run(g, one_busy, 3000)
    assert used[:2] == [2, 2] and used[2:].count(2) == 0 and g.turned_away >= 5
    assert len(looks) <= 3000 // threads.RUNNABLE_EVERY + 20  # a look every few steps only
    assert total < 1.01 * 3000 * 6e-3
    # without the count the region check lets probes through, and they cost
    used, old = run(ThreadGovernor(lambda n: 20e-6, lambda: None), one_busy, 3000)
    assert used.count(2) >= 10 and old > total
    tasks[0] = 1  # the other process ended
    used, _ = run(g, quiet, 600, start=3000)
    assert g.current == 2 and used[-100:].count(2) >= 95


def test_after_a_pause_our_spinning_workers_are_not_another_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new turn's first step comes right after its prompt's forward, which ran on the same
    threads: their worker still spins (runnable) when the pause check looks. On a quiet
    machine that is 2 runnable tasks of ours, and the governor stays on 2 threads; with one
    more, 3, and it moves to 1, then probes again soon (not after the long wait its earlier
    probes had built up)."""
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    clock = [100.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    tasks = [2]  # this thread and our spinning worker
    g = ThreadGovernor(lambda n: 20e-6, lambda: tasks[0])
    run(g, quiet, 50)
    assert g.current == 2
    for _ in range(20):  # twenty turns, each after a pause
        clock[0] += threads.IDLE + 1
        used, _ = run(g, quiet, 40)
        assert used.count(2) >= 36
    tasks[0] = 3  # and another process
    clock[0] += threads.IDLE + 1
    assert g.threads() == 1
    tasks[0] = 1  # it was a moment's work after all: the probe two steps later finds out
    used, _ = run(g, quiet, 10)
    assert 2 in used[:4] and g.current == 2


def test_a_task_runnable_now_and_then_does_not_keep_threads_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread that runs now and then (a server's event loop, a UI) is runnable at some
    looks only: every look of the window must see the cores taken before a probe is turned
    away, so once 2 threads are fast again (after a stretch where they lost) they are found
    by the first probe."""
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    n = itertools.count(1)
    g = ThreadGovernor(lambda c: 20e-6, lambda: 2 if next(n) % 2 == 0 else 1)

    def slow_two(c: int, i: int) -> float:
        return 8e-3 if c == 2 else 2e-3

    run(g, slow_two, 100)
    assert g.current == 1
    used, _ = run(g, quiet, 600, start=100)
    assert g.current == 2 and g.turned_away == 0 and used[-200:].count(2) >= 190


def test_our_own_spinning_workers_are_not_counted_as_other_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On 4 of 4 cores, running on 2 threads (the 4-thread probe lost once), the runnable
    count right after a step includes our spinning worker: 2 tasks leave the cores free."""
    monkeypatch.setattr(threads, "_cores", lambda: 4)
    torch.set_num_threads(4)
    g: ThreadGovernor | None = None
    g = ThreadGovernor(None, lambda: g.current if g is not None else 1)  # ours only

    def two_best(c: int, i: int) -> float:
        return {1: 3e-3, 2: 1.5e-3, 4: 2e-3}[c] * (1 + 0.02 * random.random())

    random.seed(1)
    used, _ = run(g, two_best, 2000)
    assert g.current == 2 and g.turned_away == 0 and used.count(4) >= 12


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="Linux's /proc/loadavg")
def test_the_kernels_runnable_count_sees_a_busy_process(tmp_path: Path) -> None:
    """The real count, through the module's function (the fixture replaced the name only):
    this thread is runnable while it reads, and a spinning child process adds one at every
    look; an unreadable or garbled file gives None (the check is then off)."""
    import subprocess
    import sys
    import time

    count = kernel_runnable  # imported before the fixture replaced threads.runnable
    assert count is not threads.runnable
    assert min(count() or 0 for _ in range(20)) >= 1  # this thread, reading
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        # at every look: this thread and the spinning child (other tests' processes may add
        # more, so only the floor is certain)
        assert min(count() or 0 for _ in range(20)) >= 2
    finally:
        spin.kill()
        spin.wait()
    bad = tmp_path / "loadavg"
    bad.write_text("0.00 0.01 0.05 none 123\n")
    saved = threads._LOADAVG, threads._loadavg_fd
    try:
        threads._LOADAVG, threads._loadavg_fd = str(bad), None
        assert count() is None
        os.close(threads._loadavg_fd)
        threads._LOADAVG, threads._loadavg_fd = str(tmp_path / "missing"), None
        assert count() is None and threads._loadavg_fd == -1
    finally:
        if threads._loadavg_fd is not None and threads._loadavg_fd >= 0:
            os.close(threads._loadavg_fd)
        threads._LOADAVG, threads._loadavg_fd = saved


def test_torch_threads_follow_the_choice_within_a_block_only() -> None:
    assert torch.get_num_threads() == 2 and threads.available() == 2
    chosen = [1]
    block = threads.TorchThreads(lambda: chosen[0])
    with block:
        assert torch.get_num_threads() == 1
        assert threads.available() == 2  # the governors still choose among two
        g = ThreadGovernor()
        assert g.counts == [1, 2]
        with threads.TorchThreads(lambda: 2):  # nested: the outer count stays the reference
            assert torch.get_num_threads() == 2 and threads.available() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2 and threads._outer is None
    chosen[0] = 2
    with block:  # reusable, one block after another
        assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), threads.TorchThreads(lambda: 1):
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == 2 and threads._outer is None


def test_the_native_region_probe_runs_every_thread() -> None:
    from tui_gen.engine.native import build

    lib = build.load()
    if lib is None:
        pytest.skip(build.reason())
    assert lib.decode_region_probe(2, 3) == 6
    assert lib.decode_region_probe(1, 5) == 5


def test_a_generation_runs_torch_on_the_chosen_count_but_never_across_a_yield(
    tiny_llama: Path,
) -> None:
    """The decode governor chose one thread: the prompt, each step and its sampling run torch
    on one thread, while the consumer of every token sees the process's own two."""
    from tui_gen.engine.events import TokenEvent
    from tui_gen.engine.generator import Generator
    from tui_gen.engine.native import build

    if build.load() is None:
        pytest.skip(build.reason())
    gen = Generator.load(tiny_llama, device="cpu", dtype="float32")
    native = gen._native_decoder()
    native.chosen_threads = lambda: 1  # type: ignore[method-assign]
    inside: list[int] = []
    step, forward = native.step, gen.model.forward

    def counting_step(*a, **k):
        inside.append(torch.get_num_threads())
        return step(*a, **k)

    def counting_forward(*a, **k):
        inside.append(torch.get_num_threads())
        return forward(*a, **k)

    native.step = counting_step  # type: ignore[method-assign]
    gen.model.forward = counting_forward  # type: ignore[method-assign]
    outside = []
    for ev in gen.stream_events(list(range(3, 12)), max_new_tokens=8, do_sample=False):
        if isinstance(ev, TokenEvent):
            outside.append(torch.get_num_threads())
    assert len(outside) == 8 and set(outside) == {2}
    assert len(inside) >= 8 and set(inside) == {1}
    assert torch.get_num_threads() == 2


#: run in a fresh interpreter: the OpenMP pools of this pytest process are whatever earlier
#: tests left. Prints the process's thread counts (Linux /proc/self/task) at each mark.
_POOL_SCRIPT = """
import os, sys, torch
torch.set_num_threads(2)
def count():
    return len(os.listdir("/proc/self/task"))
marks = {"start": count()}
if sys.argv[1] == "import":
    import tui_gen.models.common, tui_gen.models.registry  # every family's module-level code
    marks["imported"] = count()
    torch.ones(1 << 22).sum()  # a parallel region on this thread: it makes a pool
    marks["parallel"] = count()
else:
    from tui_gen.engine.generator import Generator
    torch.ones(1 << 22).sum()
    marks["parallel"] = count()
    Generator.load(sys.argv[2], device="cpu", dtype="float32")
    marks["loaded"] = count()
print(marks)
"""


def _pool_marks(*args: str) -> dict[str, int]:
    import ast
    import subprocess
    import sys

    if not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2:
        pytest.skip("counts threads through Linux's /proc on 2+ CPUs")
    out = subprocess.run(
        [sys.executable, "-c", _POOL_SCRIPT, *args],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "OMP_NUM_THREADS": "2", "TUI_GEN_THREADS": ""},
    )  # fmt: skip
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_importing_the_models_starts_no_openmp_threads() -> None:
    """An idle pool on the importing thread (the server's main thread) once made every region
    of the scheduler thread's decode sleep and wake in the kernel: importing must run no
    parallel torch work. The parallel op after it shows the count would have moved."""
    marks = _pool_marks("import")
    assert marks["imported"] == marks["start"]
    assert marks["parallel"] > marks["imported"]


def test_a_loaded_generator_leaves_no_openmp_threads_on_the_loading_thread(
    tiny_llama: Path,
) -> None:
    """The thread that loads hands its OpenMP workers back (release_pool), so the thread that
    decodes owns the only pool (decode.c's release_thread_pool says why it matters)."""
    from tui_gen.engine.native import build

    if build.load() is None:
        pytest.skip(build.reason())
    marks = _pool_marks("load", str(tiny_llama))
    assert marks["loaded"] < marks["parallel"]


def test_release_pool_frees_this_threads_workers_and_regions_still_run() -> None:
    from tui_gen.engine.native import build

    lib = build.load()
    if lib is None:
        pytest.skip(build.reason())
    assert threads.release_pool()
    assert lib.decode_region_probe(2, 3) == 6  # a new pool, on demand
    assert threads.release_pool()
