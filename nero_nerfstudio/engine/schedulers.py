"""NeRO's "warm_up_cos" learning-rate schedule (method.md §1.2) as a nerfstudio scheduler.

nerfstudio's :class:`~nerfstudio.engine.schedulers.CosineDecayScheduler` has the same formula but computes it with
numpy, so the learning rates stored in checkpoints are numpy floats, which torch's default weights-only
``torch.load`` refuses. This one works in python floats, so checkpoints of our methods load with plain
``torch.load(path)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Type

from nerfstudio.engine.schedulers import Scheduler, SchedulerConfig
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from nero_nerfstudio.core.errors import NeroSettingsError


def warm_up_cosine_factor(step: int, warm_up_end: int, max_steps: int, min_factor: float) -> float:
    """Multiplier of the base learning rate at ``step``.

    Linear from 0 to 1 over ``warm_up_end`` steps, then a half cosine from 1 down to ``min_factor`` at ``max_steps``
    (held there afterwards).
    """
    if step < warm_up_end:
        return float(step) / float(warm_up_end)
    progress = min(1.0, (step - warm_up_end) / float(max(1, max_steps - warm_up_end)))
    return (math.cos(math.pi * progress) + 1.0) * 0.5 * (1.0 - min_factor) + min_factor


@dataclass
class WarmUpCosineSchedulerConfig(SchedulerConfig):
    """Linear warm-up then cosine decay to a floor (NeRO Stage I: 5000 / 300000 / 0.05)."""

    _target: Type = field(default_factory=lambda: WarmUpCosineScheduler)
    warm_up_end: int = 5000
    """Step at which the linear warm-up from 0 reaches the base learning rate."""
    max_steps: int = 300000
    """Step at which the cosine reaches its floor."""
    min_factor: float = 0.05
    """Floor of the schedule as a fraction of the base learning rate."""


class WarmUpCosineScheduler(Scheduler):
    """Builds a :class:`LambdaLR` whose multipliers are python floats."""

    config: WarmUpCosineSchedulerConfig

    def get_scheduler(self, optimizer: Optimizer, lr_init: float) -> LRScheduler:
        config = self.config
        if config.warm_up_end < 0 or config.max_steps <= config.warm_up_end:
            raise NeroSettingsError(
                "warm_up_end", f"need 0 <= warm_up_end < max_steps, got {config.warm_up_end} and {config.max_steps}"
            )

        def factor(step: int) -> float:
            return warm_up_cosine_factor(step, config.warm_up_end, config.max_steps, config.min_factor)

        return LambdaLR(optimizer, lr_lambda=factor)
