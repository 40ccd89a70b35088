"""nerfstudio's trainer with three reliability fixes: atomic checkpoints, batches with a NaN/inf loss or gradient
skipped instead of stepped into the weights, and resumed runs that end at the planned step.

* ``save_checkpoint`` writes the same ``step-XXXXXXXXX.ckpt`` as nerfstudio through a temporary file in the same
  folder and ``os.replace``: a crash mid-write never leaves a truncated checkpoint behind.
* ``train_iteration``: when the total loss or any gradient is not finite, the gradients are dropped and the
  optimizers do not step; a warning names the step and the offending terms, and training goes on.
* ``--load-dir`` resumes from the newest readable checkpoint (a damaged newer one is skipped with a warning) and
  ``max_num_iterations`` counts steps from the start of the run, so an interrupted and resumed run stops at the same
  step as an uninterrupted one (nerfstudio would run ``max_num_iterations`` more steps).

``last_train_loss`` holds the total loss of the latest step for training callbacks, which nerfstudio calls with the
step number only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Type, cast

import torch
from nerfstudio.engine.trainer import TRAIN_INTERATION_OUTPUT, Trainer, TrainerConfig
from nerfstudio.utils import profiler
from nerfstudio.utils.decorators import check_main_thread
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.data.object_frame import FRAME_FILE_NAME
from nero_nerfstudio.utils.checkpoint import checkpoint_file_name, read_checkpoint, read_latest_checkpoint
from nero_nerfstudio.engine.non_finite import describe_non_finite_batch, non_finite_gradients
from nero_nerfstudio.utils.io import atomic_path


@dataclass
class NeroTrainerConfig(TrainerConfig):
    """nerfstudio's ``TrainerConfig``; ``max_num_iterations`` is the last step + 1 of the run, also when resuming."""

    _target: Type = field(default_factory=lambda: NeroTrainer)

    def save_config(self) -> None:
        """nerfstudio's ``config.yml``, with the dataset folder and a ``--frame-file`` made absolute first (Stage II's
        mesh already is): the file keeps them, and ``ns-viewer``, ``nero-export`` and ``nero-eval`` then load the run from any folder (a path
        as typed would only work from the folder training started in)."""
        datamanager = self.pipeline.datamanager
        if getattr(datamanager, "data", None) is not None:
            datamanager.data = Path(datamanager.data).absolute()
        dataparser = getattr(datamanager, "dataparser", None)
        if dataparser is not None and getattr(dataparser, "data", None) not in (None, Path()):
            dataparser.data = Path(dataparser.data).absolute()
        if getattr(dataparser, "frame_file", None) is not None:
            dataparser.frame_file = Path(dataparser.frame_file).absolute()
        super().save_config()


class NeroTrainer(Trainer):
    """nerfstudio's ``Trainer`` with atomic checkpoints, non-finite batches skipped, and exact resumes."""

    config: NeroTrainerConfig

    def __init__(self, config: NeroTrainerConfig, local_rank: int = 0, world_size: int = 1) -> None:
        super().__init__(config, local_rank, world_size)
        self.num_skipped_steps = 0
        """Batches whose optimizer step was skipped because of a non-finite loss or gradient."""
        self.last_train_loss: Optional[torch.Tensor] = None
        """Total loss of the latest training step (detached), for AFTER_TRAIN_ITERATION callbacks such as
        ``engine/step_timer.py``: nerfstudio calls them with the step number only."""

    def train(self) -> None:
        """nerfstudio's training loop, run from the loaded step up to step ``max_num_iterations - 1``."""
        planned_steps = self.config.max_num_iterations
        remaining_steps = max(planned_steps - self._start_step, 0)
        if self._start_step > 0 and remaining_steps == 0:
            CONSOLE.print(
                f"[bold yellow]The checkpoint is at step {self._start_step - 1}: the run's {planned_steps} steps are "
                "done, nothing left to train."
            )
            # nerfstudio's loop then saves the loaded state as this run's final checkpoint.
            self.step = self._start_step - 1
        self._save_object_frame()
        # nerfstudio runs max_num_iterations steps from the loaded one; it reads the count once, at the loop's start.
        self.config.max_num_iterations = remaining_steps
        try:
            super().train()
        finally:
            self.config.max_num_iterations = planned_steps

    @check_main_thread
    def _save_object_frame(self) -> None:
        """Photo formats: the object's frame beside nerfstudio's ``dataparser_transforms.json``, for the user to read
        or reuse (``--frame-file``) and for ``nero-export`` to cut the table."""
        outputs = getattr(self.pipeline.datamanager, "train_dataparser_outputs", None)
        frame = None if outputs is None else outputs.metadata.get(NeroKey.OBJECT_FRAME)
        if frame is not None:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            frame.write(self.base_dir / FRAME_FILE_NAME)

    def _load_checkpoint(self) -> None:
        """Load the pipeline, optimizers, schedulers and scaler of ``--load-dir`` (newest readable checkpoint, or
        ``--load-step``'s) or of ``--load-checkpoint``; a damaged file gives a NeroDataError naming it."""
        load_dir = self.config.load_dir
        if load_dir is not None and self.config.load_step is None:
            checkpoint_path, loaded_state = read_latest_checkpoint(load_dir)
        elif load_dir is not None:
            checkpoint_path = load_dir / checkpoint_file_name(self.config.load_step)
            loaded_state = read_checkpoint(checkpoint_path)
        elif self.config.load_checkpoint is not None:
            checkpoint_path = self.config.load_checkpoint
            loaded_state = read_checkpoint(checkpoint_path)
        else:
            CONSOLE.print("No Nerfstudio checkpoint to load, so training from scratch.")
            return
        self._start_step = loaded_state["step"] + 1
        self.pipeline.load_pipeline(loaded_state["pipeline"], loaded_state["step"])
        self.optimizers.load_optimizers(loaded_state["optimizers"])
        if "schedulers" in loaded_state and self.config.load_scheduler:
            self.optimizers.load_schedulers(loaded_state["schedulers"])
        self.grad_scaler.load_state_dict(loaded_state["scalers"])
        CONSOLE.print(f"Done loading Nerfstudio checkpoint from {checkpoint_path}")

    def checkpoint_state(self, step: int) -> Dict[str, Any]:
        """What nerfstudio stores in a checkpoint: step, pipeline, optimizers, schedulers, gradient scaler."""
        pipeline = self.pipeline.module if hasattr(self.pipeline, "module") else self.pipeline
        return {
            "step": step,
            "pipeline": pipeline.state_dict(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.optimizers.items()},
            "schedulers": {name: scheduler.state_dict() for name, scheduler in self.optimizers.schedulers.items()},
            "scalers": self.grad_scaler.state_dict(),
        }

    @check_main_thread
    def save_checkpoint(self, step: int) -> None:
        """Write ``step-XXXXXXXXX.ckpt`` atomically; with ``save_only_latest_checkpoint``, delete the other
        checkpoints (and temporary files a killed run left) only once the new one is in place."""
        checkpoint_path = self.checkpoint_dir / checkpoint_file_name(step)
        with atomic_path(checkpoint_path) as temporary_path:
            torch.save(self.checkpoint_state(step), temporary_path)
        if self.config.save_only_latest_checkpoint:
            for old_path in self.checkpoint_dir.glob("*.ckpt"):
                if old_path != checkpoint_path:
                    old_path.unlink()

    @profiler.time_function
    def train_iteration(self, step: int) -> TRAIN_INTERATION_OUTPUT:
        """nerfstudio's iteration (forward, backward, optimizer, scaler and scheduler steps), except that a batch whose
        total loss or gradients are not finite updates no weight.

        With the gradient scaler enabled (mixed precision), inf/NaN gradients are left to it: it skips those steps
        itself and lowers its scale, which is how it calibrates. The schedulers step in any case, so the learning
        rate keeps following the step count.
        """
        needs_zero = [
            group for group in self.optimizers.parameters if step % self.gradient_accumulation_steps[group] == 0
        ]
        self.optimizers.zero_grad_some(needs_zero)
        device_type = self.device.split(":")[0]
        device_type = "cpu" if device_type == "mps" else device_type
        with torch.autocast(device_type=device_type, enabled=self.mixed_precision):
            _, loss_dict, metrics_dict = self.pipeline.get_train_loss_dict(step=step)
            loss = functools.reduce(torch.add, loss_dict.values())
        self.last_train_loss = loss.detach()
        self.grad_scaler.scale(loss).backward()  # type: ignore

        bad_gradients = [] if self.grad_scaler.is_enabled() else non_finite_gradients(self.pipeline.named_parameters())
        if bad_gradients or not bool(torch.isfinite(loss).all()):
            self._skip_optimizer_step(step, describe_non_finite_batch(loss, loss_dict, bad_gradients))
            self.optimizers.scheduler_step_all(step)
            return loss, loss_dict, metrics_dict

        needs_step = [
            group
            for group in self.optimizers.parameters
            if step % self.gradient_accumulation_steps[group] == self.gradient_accumulation_steps[group] - 1
        ]
        self.optimizers.optimizer_scaler_step_some(self.grad_scaler, needs_step)
        if self.config.log_gradients:
            metrics_dict.update(self._gradient_norms())
        scale = self.grad_scaler.get_scale()
        self.grad_scaler.update()
        # A lowered scale means the scaler skipped the step (overflow): nerfstudio then holds the schedulers.
        if scale <= self.grad_scaler.get_scale():
            self.optimizers.scheduler_step_all(step)
        return loss, loss_dict, metrics_dict

    def _skip_optimizer_step(self, step: int, problem: str) -> None:
        """Drop every gradient (also those accumulated over earlier batches) and report the skipped batch."""
        self.optimizers.zero_grad_all()
        self.num_skipped_steps += 1
        CONSOLE.print(
            f"[bold yellow]Step {step}: non-finite {problem}; skipped the optimizer step "
            f"({self.num_skipped_steps} batch{'es' if self.num_skipped_steps != 1 else ''} skipped so far)."
        )

    def _gradient_norms(self) -> Dict[str, torch.Tensor]:
        """nerfstudio's ``log_gradients`` metrics: the gradient norm of every model parameter and their sum."""
        norms = {
            f"Gradients/{name}": parameter.grad.norm()
            for name, parameter in self.pipeline.model.named_parameters()
            if parameter.grad is not None
        }
        norms["Gradients/Total"] = cast(torch.Tensor, sum(norms.values()))
        return norms
