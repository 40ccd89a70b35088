"""Session-wide fixtures: small glossy scenes rendered once with Blender and shared by every test.

Each fixture renders the Stanford bunny (metallic 1, roughness 0.2, courtyard HDRI) in one of NeRO's layouts and
returns the scene folder; ``<folder>/gt/`` holds the ground truth (``mesh.ply``, ``<name>-normal.npy``,
``<name>-depth.npy``, ``scene.json``; see docs/architecture.md). Tests must treat the folders as read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nero_nerfstudio.scenes.render_scene import RenderSceneConfig, render_scene
from shape_run import TrainedShapeRun, cpu_test_config, train

# One intra-op thread: the tests' tensors are small, and OpenMP's spinning worker threads slow a 2-core machine down
# many times over (measured: 123 s instead of 5 s for a tiny MLP fit) as soon as anything else runs beside the tests.
torch.set_num_threads(1)

TEST_SCENE_VIEWS = 24
TEST_SCENE_RESOLUTION = 48
TEST_SCENE_SAMPLES = 16


def _render_test_scene(tmp_path_factory: pytest.TempPathFactory, layout: str) -> Path:
    config = RenderSceneConfig(
        output_dir=tmp_path_factory.mktemp(f"{layout}_scene") / "bunny",
        layout=layout,  # type: ignore[arg-type]
        mesh="bunny",
        environment="courtyard",
        num_views=TEST_SCENE_VIEWS,
        resolution=TEST_SCENE_RESOLUTION,
        samples=TEST_SCENE_SAMPLES,
        metallic=1.0,
        roughness=0.2,
        seed=0,
    )
    return render_scene(config)


@pytest.fixture(scope="session")
def synthetic_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GlossySynthetic folder: ``<k>.png``, ``<k>-camera.pkl``, ``<k>-depth.png``, ``gt/``."""
    return _render_test_scene(tmp_path_factory, "synthetic")


@pytest.fixture(scope="session")
def real_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GlossyReal folder (``images/``, ``colmap/sparse/0``, ``object_point_cloud.ply``, ``gt/``).

    The object is not in NeRO's GlossyReal table: pass ``up``/``forward`` from ``gt/scene.json`` to the parser,
    and ``max_resolution=None`` (the images are tiny; raw_1024 would upsample them).
    """
    return _render_test_scene(tmp_path_factory, "real")


@pytest.fixture(scope="session")
def custom_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Custom-object folder: the GlossyReal files plus ``meta_info.txt`` (up, forward)."""
    return _render_test_scene(tmp_path_factory, "custom")


TRAINED_RUN_STEPS = 300
TRAINED_RUN_RAYS = 512


@pytest.fixture(scope="session")
def trained_shape_run(synthetic_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedShapeRun:
    """``nero-shape-small`` (schedule fitted to 300 steps, 512 rays per step) trained once on ``synthetic_scene``.

    A finished nerfstudio run directory (``config.yml``, ``dataparser_transforms.json``,
    ``nerfstudio_models/step-*.ckpt``) that tests of later stages (mesh export, evaluation) load, plus the loss of
    every training step.
    """
    from nero_nerfstudio.configs.method_configs import small_trainer_config

    torch.manual_seed(0)
    config = cpu_test_config(
        small_trainer_config(TRAINED_RUN_STEPS),
        synthetic_scene,
        tmp_path_factory.mktemp("trained_shape_run"),
        TRAINED_RUN_RAYS,
    )
    return train(config)

