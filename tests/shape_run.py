"""Train a nero-shape run from tests the way ``ns-train`` does, recording the loss of every step.

Used by the ``trained_shape_run`` fixture in tests/conftest.py and by tests/models.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from nerfstudio.engine.trainer import Trainer, TrainerConfig

from nero_nerfstudio.engine.step_timer import StepTimer


@dataclass
class TrainedShapeRun:
    """A finished training run."""

    scene: Path
    """The dataset folder it was trained on."""
    run_dir: Path
    """``<output>/<experiment>/nero-shape-small/<timestamp>``."""
    config_path: Path
    """``run_dir / "config.yml"`` (load it with ``nerfstudio.utils.eval_utils.eval_setup``)."""
    checkpoint_path: Path
    """The last checkpoint."""
    losses: List[float]
    """Total training loss of every step."""
    trainer: Trainer
    """The trainer that ran (its pipeline holds the trained model, on CPU)."""


def cpu_test_config(
    config: TrainerConfig, scene: Path, output_dir: Path, num_rays: int, load_dir: Optional[Path] = None
) -> TrainerConfig:
    """A copy of ``config`` set up for a quiet CPU run in ``output_dir`` (no viewer, no periodic evaluation)."""
    config = copy.deepcopy(config)
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.viewer.quit_on_train_completion = True
    config.output_dir = output_dir
    config.experiment_name = "shape"
    config.pipeline.datamanager.data = scene
    config.pipeline.datamanager.train_num_rays_per_batch = num_rays
    config.pipeline.datamanager.eval_num_rays_per_batch = num_rays
    config.steps_per_eval_batch = config.max_num_iterations + 1
    config.steps_per_eval_image = config.max_num_iterations + 1
    config.steps_per_eval_all_images = config.max_num_iterations + 1
    config.logging.steps_per_log = config.max_num_iterations + 1
    config.logging.local_writer.enable = False
    config.load_dir = load_dir
    config.set_timestamp()
    return config


def train(config: TrainerConfig) -> TrainedShapeRun:
    """Runs ``config`` like ``ns-train`` does (config.yml saved first) and records the loss of every step."""
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    # The loss of each step comes through nerfstudio's training callbacks (NeroTrainer exposes it to them).
    step_timer = StepTimer().attach(trainer)
    trainer.train()
    checkpoints = sorted((config.get_base_dir() / "nerfstudio_models").glob("step-*.ckpt"))
    return TrainedShapeRun(
        scene=Path(config.pipeline.datamanager.data),
        run_dir=config.get_base_dir(),
        config_path=config.get_base_dir() / "config.yml",
        checkpoint_path=checkpoints[-1],
        losses=step_timer.losses,
        trainer=trainer,
    )
