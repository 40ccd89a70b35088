"""Session-wide fixtures: small glossy scenes rendered once with Blender and shared by every test.

Each fixture renders the Stanford bunny (metallic 1, roughness 0.2, courtyard HDRI) in one of NeRO's layouts and
returns the scene folder; ``<folder>/gt/`` holds the ground truth (``mesh.ply``, ``<name>-normal.npy``,
``<name>-depth.npy``, ``scene.json``; see docs/architecture.md). Tests must treat the folders as read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nero_nerfstudio.scenes.render_scene import RenderSceneConfig, render_scene

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
