"""End to end on CPU: nero-material-small trains on the rendered bunny with its ground-truth mesh."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from nerfstudio.engine.trainer import Trainer
from nerfstudio.utils import eval_utils
from nerfstudio.utils.eval_utils import eval_setup
from shape_run import cpu_test_config

from nero_nerfstudio.configs.material_configs import small_trainer_config
from nero_nerfstudio.models.nero_material import NeroMaterialModel

pytestmark = pytest.mark.slow

TRAIN_STEPS = 200
TRAIN_RAYS = 256


@dataclass
class MaterialRun:
    trainer: Trainer
    config_path: Path
    checkpoint_path: Path
    losses: List[float]
    psnr_before: float
    psnr_after: float


def hit_pixel_psnr(model: NeroMaterialModel, cameras, image: torch.Tensor) -> float:
    """PSNR over the pixels of camera 0 whose ray hits the mesh."""
    model.eval()
    outputs = model.get_outputs_for_camera(cameras[0:1])
    model.train()
    hit = outputs["hit_mask"][..., 0] > 0.5
    assert hit.sum() > 50
    mse = torch.mean((outputs["rgb"][hit] - image[hit]) ** 2).item()
    return -10.0 * float(np.log10(mse))


@pytest.fixture(scope="module")
def material_run(synthetic_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> MaterialRun:
    torch.manual_seed(0)
    config = copy.deepcopy(small_trainer_config(TRAIN_STEPS))
    config.pipeline.model.mesh_path = (synthetic_scene / "gt" / "mesh.ply").absolute()
    config = cpu_test_config(config, synthetic_scene, tmp_path_factory.mktemp("material_run"), TRAIN_RAYS)
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    model = trainer.pipeline.model
    dataset = trainer.pipeline.datamanager.train_dataset
    image = dataset[0]["image"][..., :3]
    psnr_before = hit_pixel_psnr(model, dataset.cameras, image)

    losses: List[float] = []
    train_iteration = trainer.train_iteration

    def recording_train_iteration(step: int):
        result = train_iteration(step)
        losses.append(float(result[0]))
        return result

    trainer.train_iteration = recording_train_iteration  # type: ignore[method-assign]
    trainer.train()
    psnr_after = hit_pixel_psnr(model, dataset.cameras, image)
    checkpoints = sorted((config.get_base_dir() / "nerfstudio_models").glob("step-*.ckpt"))
    return MaterialRun(trainer, config.get_base_dir() / "config.yml", checkpoints[-1], losses, psnr_before, psnr_after)


def test_training_improves_the_hit_pixels_of_a_training_view(material_run: MaterialRun):
    assert len(material_run.losses) == TRAIN_STEPS and all(np.isfinite(material_run.losses))
    print(f"hit-pixel PSNR: {material_run.psnr_before:.2f} dB before, {material_run.psnr_after:.2f} dB after")
    assert material_run.psnr_after > material_run.psnr_before + 1.0


def test_checkpoint_loads_weights_only(material_run: MaterialRun):
    state = torch.load(material_run.checkpoint_path)  # torch's default weights-only loader
    assert state["step"] == TRAIN_STEPS - 1
    assert any("material_field" in key for key in state["pipeline"])
    assert any("lights.outer_light" in key for key in state["pipeline"])
    learning_rates = [group["lr"] for optimizer in state["optimizers"].values() for group in optimizer["param_groups"]]
    assert all(type(lr) is float and lr > 0 for lr in learning_rates)


def test_material_fn_of_the_trained_model_is_in_range(material_run: MaterialRun):
    model = material_run.trainer.pipeline.model
    points = torch.from_numpy(model.ray_caster.vertices[::7].copy())
    with torch.no_grad():
        materials = model.material_fn(points)
    assert materials["metallic"].shape == (points.shape[0], 1)
    assert materials["roughness"].shape == (points.shape[0], 1)
    assert materials["albedo"].shape == (points.shape[0], 3)
    for value in materials.values():
        assert torch.isfinite(value).all() and value.min() >= 0.0 and value.max() <= 1.0
    assert materials["roughness"].min() >= 0.04 - 1e-6


def test_eval_setup_renders_from_the_saved_run(material_run: MaterialRun, monkeypatch: pytest.MonkeyPatch):
    # eval_setup looks the method up by name; register it even where the package's entry points are not installed.
    monkeypatch.setitem(eval_utils.all_methods, "nero-material-small", small_trainer_config())
    _, pipeline, checkpoint_path, step = eval_setup(material_run.config_path, test_mode="inference")
    assert step == TRAIN_STEPS - 1 and checkpoint_path == material_run.checkpoint_path
    cameras = pipeline.datamanager.train_dataset.cameras
    height, width = int(cameras.height[0]), int(cameras.width[0])
    outputs = pipeline.model.get_outputs_for_camera(cameras[0:1])
    channels = {"rgb": 3, "albedo": 3, "metallic": 1, "roughness": 1, "depth": 1, "hit_mask": 1, "accumulation": 1}
    for name, count in channels.items():
        assert outputs[name].shape == (height, width, count), name
    trained_model = material_run.trainer.pipeline.model
    trained_model.eval()
    trained = trained_model.get_outputs_for_camera(cameras[0:1])
    trained_model.train()
    assert torch.allclose(outputs["rgb"], trained["rgb"], atol=1e-5)
