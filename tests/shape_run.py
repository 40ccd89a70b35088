"""Train a nero-shape run from tests the way ``ns-train`` does, recording the loss of every step.

Used by the ``trained_shape_run`` fixture in tests/conftest.py and by tests/models.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest
import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.engine.step_timer import StepTimer
from nero_nerfstudio.models.nero_shape import NeroShapeModel


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


@dataclass
class NanInjectedRun:
    """A run whose losses were poisoned at two steps, and what it printed."""

    run: TrainedShapeRun
    console_output: str


def train_with_nan_steps(
    config: TrainerConfig,
    nan_gradient_step: int,
    nan_loss_step: int,
    parameter: Callable[[NeroShapeModel], torch.nn.Parameter],
) -> NanInjectedRun:
    """Trains ``config`` with a finite loss but a NaN gradient into ``parameter(model)`` at ``nan_gradient_step`` and a
    NaN loss term at ``nan_loss_step`` (the model computes its losses once per step: no evaluation in the run)."""
    get_loss_dict = NeroShapeModel.get_loss_dict
    training_step = itertools.count()

    def poisoned_get_loss_dict(model: NeroShapeModel, *args, **kwargs) -> Dict[str, torch.Tensor]:
        loss_dict = get_loss_dict(model, *args, **kwargs)
        step, name = next(training_step), next(iter(loss_dict))
        if step == nan_gradient_step:
            # Forward value 0, backward NaN: the gradient of sqrt at a negative number leaks through where().
            target = parameter(model)
            trap = torch.where(torch.tensor(True), 0.0 * target.sum(), (-1.0 - target.abs().sum()).sqrt())
            loss_dict[name] = loss_dict[name] + trap
        if step == nan_loss_step:
            loss_dict[name] = loss_dict[name] * float("nan")
        return loss_dict

    with pytest.MonkeyPatch.context() as monkeypatch, CONSOLE.capture() as capture:
        monkeypatch.setattr(NeroShapeModel, "get_loss_dict", poisoned_get_loss_dict)
        run = train(config)
    return NanInjectedRun(run=run, console_output=capture.get())
