"""Stage II tells a glossy dielectric from a rough one: short nero-material-small runs on rendered spheres (CPU).

Two red dielectric spheres under the courtyard HDRI differ only in roughness (0.05 and 0.5). On the ground-truth
mesh, the glossy one must come out glossy and not metallic, the rough one rough: the failure this guards against is
Stage II explaining a highlight away with a rough, nearly diffuse surface (or a sharp one with a blurred light).
"""

from __future__ import annotations

import copy
from typing import Dict

import pytest
import torch
from shape_run import cpu_test_config

from nero_nerfstudio.configs.material_configs import small_trainer_config
from nero_nerfstudio.scenes.render_scene import RenderSceneConfig, render_scene

pytestmark = pytest.mark.slow

TRAIN_STEPS = 400
TRAIN_RAYS = 256
NUM_POINTS = 2000
"""Hit points (seen by the training views) the mean materials are taken over."""


def recovered_materials(roughness: float, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, float]:
    """Render the sphere, train Stage II on its GT mesh and return the mean materials at seen surface points."""
    scene = render_scene(
        RenderSceneConfig(
            output_dir=tmp_path_factory.mktemp(f"sphere_{roughness}") / "scene",
            mesh="sphere",
            environment="courtyard",
            num_views=24,
            resolution=48,
            samples=16,
            metallic=0.0,
            roughness=roughness,
            albedo=(0.7, 0.08, 0.06),
            seed=0,
        )
    )
    torch.manual_seed(0)
    config = copy.deepcopy(small_trainer_config(TRAIN_STEPS))
    config.pipeline.model.mesh_path = (scene / "gt" / "mesh.ply").absolute()
    config = cpu_test_config(config, scene, tmp_path_factory.mktemp(f"run_{roughness}"), TRAIN_RAYS)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    points = trainer.pipeline.datamanager.hit_pool.points
    points = points[torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:NUM_POINTS]]
    model = trainer.pipeline.model
    with torch.no_grad():
        materials = model.material_fn(points.to(model.device))
    return {name: float(value.mean()) for name, value in materials.items()}


def test_a_glossy_dielectric_sphere_comes_out_glossy_and_not_metallic(tmp_path_factory: pytest.TempPathFactory):
    materials = recovered_materials(0.05, tmp_path_factory)
    print(f"glossy sphere (roughness 0.05, metallic 0): {materials}")
    assert materials["roughness"] < 0.3 and materials["metallic"] < 0.3


def test_a_rough_dielectric_sphere_comes_out_rough(tmp_path_factory: pytest.TempPathFactory):
    materials = recovered_materials(0.5, tmp_path_factory)
    print(f"rough sphere (roughness 0.5, metallic 0): {materials}")
    assert materials["roughness"] > 0.3 and materials["metallic"] < 0.3
