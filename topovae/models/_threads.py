"""torch's CPU thread count during training, chosen from measured step times.

On a small machine torch's intra-op threads split every operation evenly and wait for each
other, so when another busy process takes one core the threads on the others spin and wait:
the demo's training step ran 3.3x slower with one competing process on 2 cores at 2 threads,
1.2x slower at 1 thread (benchmarks/bench_train.py --contention). `ThreadTuner` keeps the
faster of "every core" and "one thread" as the machine's load changes: it times every training
step, and now and then, or as soon as the steps slow down, runs a few steps at the other count
and keeps whichever is faster per sample.

Changing the thread count changes the order of floating-point sums (results differ in the last
digits), so a run that must repeat bit for bit fixes ``TrainConfig.threads``.
"""

from __future__ import annotations

import os
import statistics
import time

import torch


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class ThreadTuner:
    """Choose between ``most`` threads (default: every core) and 1 from per-sample step times
    (see the module).

    Call `begin()` before a step and `end(samples)` after it. After the first ``window``
    steps, then every ``period`` steps, or as soon as the median of the last ``window`` steps
    at the current count is ``slower`` times the best such median seen, the next ``probe``
    steps run at the other count (the first of them is not timed: it warms up the new
    threads); the other count is kept when its median is ``gain`` times faster. ``clock``
    gives the time in seconds.
    """

    def __init__(
        self, most: int | None = None, *, period: int = 100, window: int = 5, probe: int = 4,
        slower: float = 1.5, gain: float = 0.9, clock=time.perf_counter,
    ) -> None:  # fmt: skip
        self.most = available_cores() if most is None else max(1, int(most))
        self.period, self.window, self.probe = period, window, probe
        self.slower, self.gain = slower, gain
        self.current = self.most
        self.best: float | None = None  # the best median per-sample time at `current`
        self.recent: list[float] = []  # per-sample times at `current`
        self.trial: list[float] = []  # per-sample times at the other count, while probing
        self.since = period  # steps since the last probe: the first window ends in one
        self.probing = False
        self.switches = 0
        self.clock = clock
        self._t = 0.0

    @property
    def other(self) -> int:
        return 1 if self.current != 1 else self.most

    def begin(self) -> None:
        wanted = self.other if self.probing else self.current
        if self.most > 1 and torch.get_num_threads() != wanted:  # only when it changes
            torch.set_num_threads(wanted)
        self._t = self.clock()

    def end(self, samples: int) -> None:
        if self.most == 1 or samples <= 0:
            return
        t = (self.clock() - self._t) / samples
        if self.probing:
            self.trial.append(t)
            if len(self.trial) >= self.probe:  # the first probe step warms up, the rest count
                self._decide()
            return
        self.recent = [*self.recent, t][-self.window :]
        self.since += 1
        if len(self.recent) < self.window:
            return
        median = statistics.median(self.recent)
        self.best = median if self.best is None else min(self.best, median)
        if self.since >= self.period or median > self.slower * self.best:
            self.probing, self.trial = True, []

    def _decide(self) -> None:
        trial = statistics.median(self.trial[1:])
        if trial < self.gain * statistics.median(self.recent):
            self.current = self.other
            self.switches += 1
            self.recent, self.best = self.trial[1:], trial
        else:  # stay; forget the slow spell that triggered the probe
            self.best = statistics.median(self.recent)
        self.probing, self.trial, self.since = False, [], 0
