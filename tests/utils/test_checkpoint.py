"""nerfstudio checkpoints with numpy scalars load under torch's weights-only unpickler inside the allow-list, and a
checkpoint nerfstudio's own loader cannot read is named in one line."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.utils.eval_utils import eval_load_checkpoint

from nero_nerfstudio.utils.checkpoint import allow_numpy_in_checkpoints, nerfstudio_loader_error


def test_nerfstudio_scheduler_state_loads_only_with_the_allow_list(tmp_path):
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.Adam([parameter], lr=1e-3)
    scheduler = ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=10).setup().get_scheduler(optimizer, 1e-3)
    for _ in range(3):
        optimizer.zero_grad()
        (parameter**2 - parameter).sum().backward()
        optimizer.step()
        scheduler.step()
    path = tmp_path / "step-000000003.ckpt"
    torch.save({"step": 3, "optimizers": optimizer.state_dict(), "schedulers": scheduler.state_dict()}, path)

    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu")
    with allow_numpy_in_checkpoints():
        loaded = torch.load(path, map_location="cpu")
    assert loaded["schedulers"]["_last_lr"] == pytest.approx(scheduler.state_dict()["_last_lr"])
    assert loaded["optimizers"]["param_groups"][0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    torch.testing.assert_close(loaded["optimizers"]["state"][0]["exp_avg"], optimizer.state[parameter]["exp_avg"])


def _error_of_nerfstudio_loader(folder: Path, load_pipeline=None):
    """The exception nerfstudio's own loader (``ns-viewer``, ``ns-render``, ``ns-eval``) raises on ``folder``."""
    config = SimpleNamespace(load_dir=folder, load_step=None)
    pipeline = SimpleNamespace(load_pipeline=load_pipeline or (lambda state, step: None))
    with pytest.raises(BaseException) as caught:
        eval_load_checkpoint(config, pipeline)  # type: ignore[arg-type]
    return caught.value, caught.tb


def test_a_checkpoint_nerfstudio_s_loader_cannot_read_is_named_with_what_to_do(tmp_path: Path):
    torch.save({"pipeline": {}, "step": 5}, tmp_path / "step-000000005.ckpt")
    (tmp_path / "step-000000009.ckpt").write_bytes(b"PK\x03\x04 cut short")
    error = nerfstudio_loader_error(*_error_of_nerfstudio_loader(tmp_path))
    assert error is not None and error.path == tmp_path / "step-000000009.ckpt"
    assert "unreadable checkpoint" in error.problem and "to load step-000000005.ckpt instead" in error.problem
    (tmp_path / "step-000000005.ckpt").unlink()
    error = nerfstudio_loader_error(*_error_of_nerfstudio_loader(tmp_path))
    assert error is not None and "the run has no other checkpoint" in error.problem


def test_only_torch_s_reading_errors_in_nerfstudio_s_loader_are_translated(tmp_path: Path):
    torch.save({"pipeline": {}, "step": 5}, tmp_path / "step-000000005.ckpt")

    def refuse(state, step):
        raise RuntimeError("Error(s) in loading state_dict: size mismatch")

    assert nerfstudio_loader_error(*_error_of_nerfstudio_loader(tmp_path, refuse)) is None
    (tmp_path / "step-000000009.ckpt").write_bytes(b"cut short")
    _, trace = _error_of_nerfstudio_loader(tmp_path)
    assert nerfstudio_loader_error(KeyboardInterrupt(), trace) is None
    assert nerfstudio_loader_error(MemoryError(), trace) is None
