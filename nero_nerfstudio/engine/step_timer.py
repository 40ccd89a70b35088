"""Wall time and loss of every training step, measured through nerfstudio's training callbacks.

``StepTimer().attach(trainer)`` after ``trainer.setup()`` adds two ``TrainingCallback``s to the trainer's callback
list: the clock starts after every other BEFORE_TRAIN_ITERATION callback and stops before every other
AFTER_TRAIN_ITERATION callback, so a step's time is that of ``train_iteration`` alone. ``on_step`` runs right after
the clock stops, so work it does (a benchmark meshing the SDF for a Chamfer-vs-time curve) is not training time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, List, Optional

import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

if TYPE_CHECKING:
    from nerfstudio.engine.trainer import Trainer


@dataclass
class StepTimer:
    """Records the wall time (and, with ``NeroTrainer``, the total loss) of each training step."""

    synchronize_cuda: bool = False
    """Wait for queued CUDA work before stopping the clock (CUDA steps return before the GPU has finished)."""
    on_step: Optional[Callable[[int], None]] = None
    """Called with the step number after each step is recorded, outside the clock."""
    seconds: List[float] = field(default_factory=list)
    """Wall time of each step's ``train_iteration``, in step order."""
    losses: List[float] = field(default_factory=list)
    """Total loss of each step, read from ``NeroTrainer.last_train_loss`` (empty with a plain nerfstudio trainer)."""
    _trainer: Optional["Trainer"] = field(default=None, init=False, repr=False)
    _start: float = field(default=0.0, init=False, repr=False)

    @property
    def total_seconds(self) -> float:
        """Training time so far: the sum of the step times."""
        return float(sum(self.seconds))

    def attach(self, trainer: Trainer) -> "StepTimer":
        """Register the timer on a set-up ``trainer`` (``trainer.setup()`` builds the callback list it joins)."""
        self._trainer = trainer
        start = TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], self._start_clock)
        stop = TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self._stop_clock)
        # nerfstudio runs the callbacks in list order: start last and stop first bracket train_iteration exactly.
        trainer.callbacks = [stop, *trainer.callbacks, start]
        return self

    def _start_clock(self, step: int) -> None:
        self._start = time.perf_counter()

    def _stop_clock(self, step: int) -> None:
        if self.synchronize_cuda:
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)
        loss = getattr(self._trainer, "last_train_loss", None)
        if loss is not None:
            self.losses.append(float(loss))
        if self.on_step is not None:
            self.on_step(step)
