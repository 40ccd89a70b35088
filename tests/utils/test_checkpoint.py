"""nerfstudio checkpoints with numpy scalars load under torch's weights-only unpickler inside the allow-list."""

from __future__ import annotations

import pickle

import pytest
import torch
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

from nero_nerfstudio.utils.checkpoint import allow_numpy_in_checkpoints


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
