"""StepTimer: one time and one loss per training step, through nerfstudio's training callbacks."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import List

import pytest
import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

from nero_nerfstudio.configs.method_configs import small_trainer_config
from nero_nerfstudio.engine.step_timer import StepTimer
from nero_nerfstudio.scripts.bench_train import start_trainer
from shape_run import cpu_test_config

SLOW_CALLBACK_SECONDS = 0.2
ITERATION_SECONDS = 0.01


class FakeTrainer:
    """nerfstudio's training loop reduced to its callbacks (and NeroTrainer's ``last_train_loss``), with slow
    callbacks of a model around a fast iteration."""

    def __init__(self) -> None:
        nap = lambda step: time.sleep(SLOW_CALLBACK_SECONDS)  # noqa: E731
        self.callbacks = [
            TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], nap),
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], nap),
        ]
        self.last_train_loss = None

    def train_iteration(self, step: int) -> None:
        time.sleep(ITERATION_SECONDS)
        self.last_train_loss = torch.tensor(10.0 + step)

    def train(self, num_steps: int) -> None:
        for step in range(num_steps):
            for callback in self.callbacks:
                callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
            self.train_iteration(step)
            for callback in self.callbacks:
                callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)


def test_step_timer_times_the_iteration_only():
    trainer = FakeTrainer()
    steps: List[int] = []
    timer = StepTimer(on_step=lambda step: (steps.append(step), time.sleep(SLOW_CALLBACK_SECONDS)))
    timer.attach(trainer)  # type: ignore[arg-type]
    trainer.train(3)
    assert steps == [0, 1, 2]
    assert timer.losses == [10.0, 11.0, 12.0]
    assert len(timer.seconds) == 3
    # Neither the model's slow callbacks nor on_step are training time.
    assert all(ITERATION_SECONDS <= seconds < SLOW_CALLBACK_SECONDS * 0.75 for seconds in timer.seconds)
    assert timer.total_seconds == pytest.approx(sum(timer.seconds))


@pytest.mark.slow
def test_step_timer_on_a_nero_trainer(synthetic_scene: Path, tmp_path: Path):
    """Three steps of nero-shape-small: one time and one finite loss per step, called back after each step."""
    config = cpu_test_config(small_trainer_config(3), synthetic_scene, tmp_path, num_rays=64)
    trainer = start_trainer(config, threads=1, seed=0)
    steps: List[int] = []
    timer = StepTimer(on_step=steps.append).attach(trainer)
    start = time.perf_counter()
    trainer.train()
    wall_seconds = time.perf_counter() - start
    assert steps == [0, 1, 2]
    assert len(timer.seconds) == len(timer.losses) == 3
    assert all(seconds > 0 for seconds in timer.seconds) and timer.total_seconds < wall_seconds
    assert all(math.isfinite(loss) and loss > 0 for loss in timer.losses)
    assert float(trainer.last_train_loss) == timer.losses[-1]
