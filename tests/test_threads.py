"""ThreadTuner: torch's CPU thread count follows the measured step times (a simulated clock:
each step costs what the thread count it ran at costs on a machine that is idle or busy)."""

import pytest
import torch

from topovae.models import ConfigError, ThreadTuner, TrainConfig

# seconds per sample at 2 threads and at 1, idle (False) and with one competing process (True):
# the demo's step on 2 cores, measured 2.9 / 5.0 ms alone, 9.5 / 5.6 ms contended
COST = {False: {2: 2.9e-3, 1: 5.0e-3}, True: {2: 9.5e-3, 1: 5.6e-3}}


class Machine:
    """A clock that each training step advances by what it costs at its thread count."""

    def __init__(self) -> None:
        self.now = 0.0
        self.busy = False

    def clock(self) -> float:
        return self.now

    def step(self, tuner: ThreadTuner, samples: int = 64) -> int:
        tuner.begin()
        threads = torch.get_num_threads()
        self.now += COST[self.busy][threads] * samples
        tuner.end(samples)
        return threads


@pytest.fixture
def restore_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def test_the_tuner_keeps_every_core_on_an_idle_machine_and_one_thread_on_a_busy_one(
    restore_threads,
):
    m = Machine()
    tuner = ThreadTuner(2, clock=m.clock, period=100)
    used = [m.step(tuner) for _ in range(300)]
    assert tuner.current == 2 and tuner.switches == 0
    assert used.count(1) <= 3 * tuner.probe  # the first probe and one every 100 steps

    m.busy = True  # another process takes a core
    used = [m.step(tuner) for _ in range(40)]
    assert tuner.current == 1 and tuner.switches == 1
    assert used[-20:] == [1] * 20
    assert used.index(1) <= tuner.window  # the slow-down starts a probe at once

    m.busy = False  # it ended: the next periodic probe finds every core faster again
    used = [m.step(tuner) for _ in range(tuner.period + 2 * tuner.probe)]
    assert tuner.current == 2 and tuner.switches == 2
    assert used[-tuner.probe :] == [2] * tuner.probe


def test_a_tuner_of_one_thread_never_changes_the_count(restore_threads):
    torch.set_num_threads(1)
    m = Machine()
    tuner = ThreadTuner(1, clock=m.clock)
    assert {m.step(tuner) for _ in range(50)} == {1}
    assert tuner.switches == 0


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_threads_must_be_a_count(bad):
    with pytest.raises(ConfigError, match="threads must be an integer >= 0"):
        TrainConfig(threads=bad)


@pytest.mark.parametrize("threads", [0, 2])
def test_training_runs_at_the_set_threads_and_restores_them(data, tmp_path, threads):
    from topovae.datasets import TopologyDataset
    from topovae.models import Trainer, VAEConfig

    train, val = (TopologyDataset(data, s, in_memory=True) for s in ("train", "val"))
    mcfg = VAEConfig(kind="vae", height=12, width=12, latent_dim=4, base_width=4, depth=2)
    tcfg = TrainConfig(epochs=1, batch_size=16, device="cpu", plots=False, threads=threads)
    trainer = Trainer(mcfg, tcfg, train, val, tmp_path)
    seen = []
    real = trainer._terms

    def spy(*a, **kw):
        seen.append(torch.get_num_threads())
        return real(*a, **kw)

    trainer._terms = spy
    before = torch.get_num_threads()  # 1 in the tests (conftest)
    trainer.fit(progress=False)
    assert torch.get_num_threads() == before
    if threads:
        assert set(seen) == {threads}
        assert trainer.tuner is None
    else:  # the tuner starts at torch's count (1 here): it has nothing to choose from
        assert set(seen) == {before} and trainer.tuner.most == before
