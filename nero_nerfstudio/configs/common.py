"""What the Stage I and Stage II method configs share: NeRO's learning-rate schedule and the trainer's cadence.

Imported by the entry-point config modules: keep it free of heavy imports.
"""

from __future__ import annotations

from typing import Any, Dict

from nerfstudio.configs.base_config import LoggingConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

from nero_nerfstudio.engine.schedulers import WarmUpCosineSchedulerConfig
from nero_nerfstudio.engine.trainer import NeroTrainerConfig

PAPER_LEARNING_RATE = 5e-4
"""NeRO's base learning rate, in both stages."""
LR_FLOOR = 0.05
"""The cosine decay ends at this fraction of the base learning rate."""


def rescale_step(paper_step: int, max_steps: int, paper_steps: int) -> int:
    """Step ``paper_step`` of a ``paper_steps`` schedule, moved to the same fraction of a ``max_steps`` run (at
    least 1)."""
    return max(1, round(paper_step * max_steps / paper_steps))


def adam_warm_up_cosine(learning_rate: float, warm_up_end: int, max_steps: int, eps: float = 1e-8) -> Dict[str, Any]:
    """One parameter group of NeRO's schedule: Adam (no weight decay), linear warm-up over ``warm_up_end`` steps, then
    a cosine down to ``LR_FLOOR`` at ``max_steps``."""
    return {
        "optimizer": AdamOptimizerConfig(lr=learning_rate, eps=eps),
        "scheduler": WarmUpCosineSchedulerConfig(warm_up_end=warm_up_end, max_steps=max_steps, min_factor=LR_FLOOR),
    }


def nero_trainer_config(
    method_name: str,
    max_steps: int,
    pipeline: VanillaPipelineConfig,
    optimizers: Dict[str, Any],
    steps_per_save: int,
    steps_per_eval: int,
    steps_per_log: int,
    **settings: Any,
) -> NeroTrainerConfig:
    """A single-precision trainer of ``max_steps`` steps that evaluates a batch and an image every ``steps_per_eval``
    steps and all images at the end; ``settings`` are further :class:`NeroTrainerConfig` fields."""
    return NeroTrainerConfig(
        method_name=method_name,
        max_num_iterations=max_steps,
        steps_per_save=steps_per_save,
        steps_per_eval_batch=steps_per_eval,
        steps_per_eval_image=steps_per_eval,
        steps_per_eval_all_images=max_steps,
        mixed_precision=False,
        pipeline=pipeline,
        optimizers=optimizers,
        logging=LoggingConfig(steps_per_log=steps_per_log),
        vis="viewer",
        **settings,
    )
