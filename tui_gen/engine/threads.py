"""How many threads a native decode step runs on, chosen from how fast steps actually go.

Why: every OpenMP parallel region ends in a barrier, so a step is as slow as its slowest
thread. When another process holds one of the cores, the thread the OS put there waits for a
time slice at every barrier, tens of times per token, and a 2-thread step becomes many times
slower than a 1-thread one (measured on this 2-core machine with a training run on both
cores: the cooking model decoded at 6-195 tok/s on 2 threads against 380-407 on 1). The OS
does not announce when that starts or stops, so the governor measures instead: it times each
step, now and then runs a couple of steps on another thread count (at once when a step is far
slower than usual), and keeps the fastest. A probe that loses waits twice as long before the
next one, so a machine that stays busy costs a few slow steps per thousands.

Trying more threads is what costs on a crowded machine: with a CPU-bound process on each
core, every parallel region waits ~8 ms for a time slice, and one 2-thread probe step of
SmolLM2 (about 200 regions) took a second. So before such a probe the governor times a few
empty regions on the larger count (`region_cost`, a native function): slower than
REGION_BUSY, the probe is turned away for the price of those regions, and asked again later.

Empty regions miss one CPU-bound process on two cores: a woken thread gets a core at once
(the scheduler favours it over the process that has been running), so three empty regions
look quiet while a 2-thread step pays 20-60 ms at a few of its barriers. What does see it is
the kernel's count of tasks runnable right now (/proc/loadavg's fourth field, read through a
kept descriptor in ~1.5 us): a CPU-bound process is runnable at every look, a short-lived
one is not. The governor looks every RUNNABLE_EVERY steps while it runs on fewer threads
than it could, and a count above the cores the others leave free is turned away as a
crowded region would be, for the price of a read (SmolLM2 Q4_1 beside one busy process:
auto 156-171 tok/s against 1 thread's 154-171, where it had been 125-167 against 159-175).

Torch follows the same choice within a generation (`TorchThreads`): its prompt
forward and sampling ops on two threads kept waking a thread the native steps had stopped
using (a 2-thread prefill on that machine ran at 12 tok/s against 135 on one thread, and the
decode at 28 tok/s against 55).

`TUI_GEN_THREADS=N` (or `fix(N)`, which `tui-gen bench --threads N` calls) turns the choice
off: every step runs on N threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

import torch

#: steps between probes of another thread count, at first and after a probe that won
PROBE_EVERY = 32
#: the longest wait between probes, after probes that kept losing
PROBE_EVERY_MAX = 4096
#: steps per probe (the first of them also wakes the other threads up)
PROBE_STEPS = 4
#: a step this many times the recent median of its thread count starts a probe at once
SLOW = 3.0
#: recent step times kept per thread count
WINDOW = 8
#: after a losing probe whose steps were r times slower, wait at least r * COST_SPAN steps
COST_SPAN = 50

#: an empty parallel region slower than this (seconds, the median of REGION_ROUNDS) means a
#: thread waits for a time slice (quiet: 5-30 us; one CPU-bound process per core: ~8 ms)
REGION_BUSY = 300e-6
REGION_ROUNDS = 3
#: the longest wait between probes the region check turned away (each costs ~3 regions)
REGION_EVERY_MAX = 256
#: seconds without a step after which the machine may have changed (a new generation, a
#: pause between turns): the first step after such a gap checks the regions before it runs
#: on more than one thread
IDLE = 0.5

#: while on fewer threads than it could use, the governor counts the runnable tasks every
#: this many steps, and keeps the last RUNNABLE_WINDOW counts: more threads are crowded when
#: every one of them (and one taken at the moment) leaves too few cores free
RUNNABLE_EVERY = 4
RUNNABLE_WINDOW = 4
_LOADAVG = "/proc/loadavg"
_loadavg_fd: int | None = None  # opened at the first look; -1: there is no such file
_loadavg_lock = threading.Lock()

_fixed: int | None = None  # set by fix(); one assignment, so no lock is needed
_outer: int | None = None  # torch's thread count outside the outermost TorchThreads block


def fix(threads: int | None) -> None:
    """Run every native step on `threads` threads (None: choose them from measurements)."""
    global _fixed
    _fixed = threads if threads is None else max(1, int(threads))


def fixed() -> int | None:
    """The fixed thread count (fix() or TUI_GEN_THREADS), or None when the governor chooses."""
    if _fixed is not None:
        return _fixed
    env = os.environ.get("TUI_GEN_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return None


def available() -> int:
    """The threads the process was given: torch's count outside any TorchThreads block."""
    return _outer if _outer is not None else torch.get_num_threads()


def _busy() -> bool:
    """Whether the machine looked busy over the last minute (load average at least the core
    count): where the first steps start, before any of them has been timed."""
    try:
        cores = len(os.sched_getaffinity(0))
        return os.getloadavg()[0] >= cores - 0.5
    except (AttributeError, OSError):  # not Linux / no load average
        return False


def runnable() -> int | None:
    """How many tasks are runnable right now on the whole machine, this thread included
    (Linux's /proc/loadavg); None where that cannot be read."""
    global _loadavg_fd
    if _loadavg_fd is None:
        with _loadavg_lock:  # two decoding threads' first looks open it once
            if _loadavg_fd is None:
                try:
                    _loadavg_fd = os.open(_LOADAVG, os.O_RDONLY)
                except OSError:
                    _loadavg_fd = -1
    if _loadavg_fd < 0:
        return None
    try:
        return int(os.pread(_loadavg_fd, 128, 0).split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _cores() -> int:
    """The machine's CPUs: the runnable count is the whole machine's, whatever our affinity
    (so a process limited to a few CPUs of a big, busy host is not called crowded by this)."""
    return os.cpu_count() or 1


class ThreadGovernor:
    """The thread count for the next step (`threads()`) and what that step took (`record`).

    Candidates are 1, half and all of torch's thread count (all: what the step would use
    without the governor, where it starts unless the load average says the machine is
    busy). Each keeps its last few step times; the current
    count is the one whose recent mean is lowest. The mean, not the best or the median: on a
    busy machine a multi-thread step is usually as fast as on a quiet one and now and then
    20-100x slower (a thread waiting for a time slice at a barrier), and it is those rare
    steps that decide the throughput (measured: 2 threads, best 1.1 ms, median 3.9 ms, worst
    170 ms, against 1 thread's steady 2.1 ms).
    """

    def __init__(
        self,
        region_cost: Callable[[int], float] | None = None,
        tasks: Callable[[], int | None] | None = None,
    ) -> None:
        """`region_cost(n)`: seconds one empty parallel region takes on n threads right now
        (None: no region check); `tasks()`: the machine's runnable tasks right now, this
        thread included, None when unknown (default: `runnable`, the kernel's count)."""
        self._region_cost = region_cost
        self._tasks = tasks or runnable
        self._others: deque[int] = deque(maxlen=RUNNABLE_WINDOW)
        self.turned_away = 0  # probes the region check saved (for tests and bench)
        self._most = 0
        self._reset(available())

    def _reset(self, most: int) -> None:
        self._most = max(1, most)
        self.counts = sorted({1, max(1, self._most // 2), self._most})
        # where the first steps run: all threads unless the machine looks busy, by the load
        # average or by empty regions on all threads right now (one CPU-bound process beside
        # us leaves the load average near 1 on two cores, yet a 2-thread step there took 3x
        # a 1-thread one: 19 of a first generation's 64 steps ran on 2 threads before this)
        self._others.clear()
        # (our workers may still spin after the load's parallel work: counted as ours)
        self.current = 1 if _busy() or self._crowded(self._most, self._most - 1) else self._most
        self._last_step = time.monotonic()
        self._times: dict[int, deque[float]] = {c: deque(maxlen=WINDOW) for c in self.counts}
        self._probe: list[int] = []
        self._every = PROBE_EVERY
        self._since = PROBE_EVERY - 2  # the first probe after two steps: a busy machine
        # would otherwise be found out only 32 steps in
        self.switches = 0  # how often the choice changed (for tests and bench)

    def threads(self) -> int:
        n = fixed()
        if n is not None:
            return n
        most = available()
        if most != self._most:  # torch's count changed (torch.set_num_threads): start over
            self._reset(most)
        if self._probe:
            return self._probe[0]
        if self.current > 1 and time.monotonic() - self._last_step > IDLE:
            # idle a while: a process that started meanwhile would make these threads wait at
            # every barrier (SmolLM2 Q4_1 beside one: 2-thread steps 20-60 ms against 6 on
            # one thread); a few empty regions (~30 us when quiet) say so before a step pays
            self._last_step = time.monotonic()
            self._others.clear()  # counts from before the pause say nothing of now
            # the prompt's forward just ran on these threads: their workers still spin
            if self._crowded(self.current, self.current - 1):
                self.current = 1
                self.switches += 1
                # a probe soon, as where the governor starts: a look can mistake another
                # thread of ours that ran just then for a busy process
                self._every = PROBE_EVERY
                self._since = PROBE_EVERY - 2
        return self.current

    def chosen(self) -> int:
        """The thread count for torch's work around the steps (a prompt's forward, sampling):
        the fixed count, else the current choice (never a probe's)."""
        n = fixed()
        return n if n is not None else min(self.current, available())

    def record(self, threads: int, seconds: float) -> None:
        """The step just run on `threads` threads took `seconds` (wall clock)."""
        if fixed() is not None or threads not in self._times:
            return
        self._last_step = time.monotonic()
        times = self._times[threads]
        usual = sorted(times)[len(times) // 2] if len(times) >= 3 else None  # median
        times.append(seconds)
        if self._probe:
            self._probe.pop(0)
            mine = self._times[self.current]
            if mine and seconds > SLOW * (sum(mine) / len(mine)):  # losing badly: stop here
                self._probe = [c for c in self._probe if c != threads]
            if not self._probe:
                self._decide()
            return
        self._since += 1
        if self.current < self._most and self._since % RUNNABLE_EVERY == 0:
            self._look(spinning=self.current - 1)
        if self._since >= self._every:
            self._start_probe([c for c in self.counts if c != self.current])
        elif usual is not None and seconds > SLOW * usual:
            # a step far slower than usual: the machine got busy, which fewer threads may
            # weather better (more threads would not)
            self._start_probe([c for c in self.counts if c < self.current])

    def _look(self, spinning: int) -> int | None:
        """Count the tasks other than ours that are runnable now, and keep the count.
        `spinning`: our OpenMP workers that may still be spinning after a step (counted
        runnable by the kernel; after a pause they sleep)."""
        n = self._tasks()
        if n is None:
            return None
        others = max(0, n - 1 - spinning)
        self._others.append(others)
        return others

    def _crowded(self, threads: int, spinning: int) -> bool:
        """Whether `threads` threads would wait for time slices: other tasks kept runnable
        leave fewer cores free (every recent count, RUNNABLE_WINDOW), or empty regions are
        slower than REGION_BUSY. `spinning`: how many of our OpenMP workers may be runnable
        now (those of the count that last ran)."""
        if threads <= 1:
            return False
        if self._look(spinning) is not None and min(self._others) > _cores() - threads:
            return True
        if self._region_cost is None:
            return False
        times = sorted(self._region_cost(threads) for _ in range(REGION_ROUNDS))
        return times[len(times) // 2] > REGION_BUSY

    def _start_probe(self, others: list[int]) -> None:
        self._since = 0
        # the fewest threads above the current count that would wait for time slices: those
        # and any more are dropped unasked
        more = sorted(c for c in others if c > self.current)
        crowded = next((c for c in more if self._crowded(c, self.current - 1)), None)
        if crowded is not None:
            others = [c for c in others if c < crowded]
            self.turned_away += 1
            if not others:
                self._every = max(self._every, min(2 * self._every, REGION_EVERY_MAX))
                return
        if not others:
            if len(self.counts) == 1:  # one core: nothing to choose
                self._every = PROBE_EVERY_MAX
            return
        for c in others:  # compare with times from this stretch of load only
            self._times[c].clear()
        self._probe = [c for c in others for _ in range(PROBE_STEPS)]

    def _decide(self) -> None:
        means = {c: sum(t) / len(t) for c, t in self._times.items() if t}
        best = min(means, key=lambda c: (means[c], c))
        if best != self.current:
            left = self.current
            self.current = best
            self._others.clear()
            self.switches += 1
            self._every = PROBE_EVERY
            if best < left and left in means:
                # moved down because more threads got r times slower: a probe of them costs
                # steps like that, so wait as long as after a losing probe (r * COST_SPAN)
                r = means[left] / means[best]
                self._every = int(min(max(PROBE_EVERY, r * COST_SPAN), PROBE_EVERY_MAX))
            return
        # the probe lost: wait twice as long, and at least long enough that a probe step
        # costing r steps of the current count stays a few percent of the time (r * COST_SPAN)
        probed = [means[c] / means[best] for c in means if c != best]
        r = max(probed, default=1.0)
        self._every = int(min(max(self._every * 2, r * COST_SPAN), PROBE_EVERY_MAX))


def release_pool() -> bool:
    """Free this thread's OpenMP worker threads (decode.c's release_thread_pool says why: a
    loader thread's idle pool made every region of another thread's decode sleep and wake in
    the kernel). Called on the thread that loaded a model, once it is loaded; a thread that
    runs parallel work afterwards gets a new pool. False when the kernels are not built or the
    OpenMP runtime has no omp_pause_resource_all."""
    from tui_gen.engine.native import build

    lib = build.load()
    return lib is not None and lib.release_thread_pool() == 0


class TorchThreads:
    """A block (one step of a generation, with its sampling; one prompt's forward; one turn
    of the server's scheduler loop) in which torch, and the native kernels that take its
    count, run on `chosen()` threads; torch's count is restored when it ends.

    Blocks, not a setting held across a generation: a generator that yields tokens must not
    leave the whole process on one thread while its consumer runs. Entering costs about a
    microsecond. The governors keep choosing among `available()` threads inside a block.
    One instance is not re-entrant; blocks may nest (the outermost one decides `available()`).
    """

    def __init__(self, chosen: Callable[[], int]) -> None:
        self._chosen = chosen
        self._before = 0
        self._outermost = False

    def __enter__(self) -> None:
        global _outer
        self._before = torch.get_num_threads()
        self._outermost = _outer is None
        if self._outermost:
            _outer = self._before
        n = self._chosen()
        if 1 <= n != self._before:
            torch.set_num_threads(n)

    def __exit__(self, *exc: object) -> None:
        global _outer
        if self._outermost:
            _outer = None
        if torch.get_num_threads() != self._before:
            torch.set_num_threads(self._before)
