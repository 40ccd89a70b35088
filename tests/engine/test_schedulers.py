"""NeRO's warm-up + cosine learning-rate schedule with python-float learning rates."""

from __future__ import annotations

import io
import math

import pytest
import torch

from nero_nerfstudio.engine.schedulers import WarmUpCosineSchedulerConfig, warm_up_cosine_factor


def test_factor_follows_nero_formula():
    assert warm_up_cosine_factor(0, 5000, 300000, 0.05) == 0.0
    assert warm_up_cosine_factor(2500, 5000, 300000, 0.05) == pytest.approx(0.5)
    assert warm_up_cosine_factor(5000, 5000, 300000, 0.05) == pytest.approx(1.0)
    middle = 5000 + (300000 - 5000) // 2
    assert warm_up_cosine_factor(middle, 5000, 300000, 0.05) == pytest.approx(0.5 * 0.95 + 0.05, abs=1e-4)
    assert warm_up_cosine_factor(300000, 5000, 300000, 0.05) == pytest.approx(0.05)
    assert warm_up_cosine_factor(400000, 5000, 300000, 0.05) == pytest.approx(0.05)
    step = 123456
    progress = (step - 5000) / (300000 - 5000)
    assert warm_up_cosine_factor(step, 5000, 300000, 0.05) == pytest.approx(
        (math.cos(math.pi * progress) + 1) / 2 * 0.95 + 0.05
    )


def test_scheduler_state_is_python_floats_and_loads_weights_only():
    parameter = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([parameter], lr=5e-4)
    scheduler = WarmUpCosineSchedulerConfig(warm_up_end=3, max_steps=10).setup().get_scheduler(optimizer, 5e-4)
    learning_rates = []
    for _ in range(12):
        optimizer.step()
        scheduler.step()
        learning_rates.append(scheduler.get_last_lr()[0])
    assert all(type(lr) is float for lr in learning_rates)
    assert learning_rates[2] == pytest.approx(5e-4) and learning_rates[-1] == pytest.approx(5e-4 * 0.05)
    buffer = io.BytesIO()
    torch.save({"scheduler": scheduler.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded["scheduler"]["_last_lr"] == scheduler.get_last_lr()


def test_rejects_bad_schedule():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="warm_up_end"):
        WarmUpCosineSchedulerConfig(warm_up_end=10, max_steps=10).setup().get_scheduler(optimizer, 1.0)
