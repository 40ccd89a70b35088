"""Vertex visibility and material errors against a scene's ground-truth material."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from eval_helpers import sphere_mesh, write_synthetic_scene

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.eval.material_metrics import (
    GroundTruthMaterial,
    ground_truth_material,
    material_errors,
    visible_vertices,
)
from nero_nerfstudio.eval.scene_views import SceneView
from nero_nerfstudio.raycasting.factory import make_ray_caster
from nero_nerfstudio.relight.material_inputs import VertexMaterials
from nero_nerfstudio.scenes.camera_rig import look_at_w2c, pinhole_intrinsics
from nero_nerfstudio.scripts.eval import EvalMaterials, run
from nero_nerfstudio.utils.color import linear_to_srgb

SCENE_MATERIAL = {"metallic": 1.0, "roughness": 0.2, "albedo": [0.8, 0.6, 0.4]}


def _view_from(center: np.ndarray, resolution: int = 64) -> SceneView:
    w2c = look_at_w2c(center[None], up=np.array([0.0, 1.0, 0.0]))[0]
    return SceneView("v", w2c, pinhole_intrinsics(resolution, resolution, 40.0), resolution, resolution)


def test_one_camera_sees_the_near_half_of_a_sphere() -> None:
    mesh = sphere_mesh(0.5, subdivisions=3)
    caster = make_ray_caster(mesh.vertices, mesh.faces, backend="open3d")
    visible = visible_vertices(caster, [_view_from(np.array([0.0, 0.0, 3.0]))])
    z = mesh.vertices[:, 2]
    # From distance 3 the visible cap ends at z = r^2 / d = 0.083.
    assert np.all(visible[z > 0.12]) and not np.any(visible[z < 0.05])


def test_occluded_vertices_are_not_visible() -> None:
    front = sphere_mesh(0.3, subdivisions=3)
    front.apply_translation((0.0, 0.0, 1.0))
    back = sphere_mesh(0.1, subdivisions=2)  # right behind the front sphere, seen from +z
    mesh = trimesh.util.concatenate([front, back])
    caster = make_ray_caster(mesh.vertices, mesh.faces, backend="open3d")
    visible = visible_vertices(caster, [_view_from(np.array([0.0, 0.0, 3.0]))])
    assert visible[: len(front.vertices)].any()
    assert not visible[len(front.vertices) :].any()
    # From the other side the small sphere shows.
    visible_back = visible_vertices(caster, [_view_from(np.array([0.0, 0.0, -3.0]))])
    assert visible_back[len(front.vertices) :].any()


def test_material_errors_are_zero_for_a_perfect_prediction_and_exact_for_an_offset() -> None:
    ground_truth = ground_truth_material(SCENE_MATERIAL, Path("scene.json"))
    num_vertices = 10
    perfect = VertexMaterials(
        albedo=np.tile(ground_truth.albedo, (num_vertices, 1)),
        metallic=np.full(num_vertices, 1.0),
        roughness=np.full(num_vertices, 0.2),
    )
    mask = np.ones(num_vertices, dtype=bool)
    zero = {"metallic_mae": 0.0, "roughness_mae": 0.0, "albedo_mae": 0.0}
    assert material_errors(perfect, ground_truth, mask) == zero
    offset = VertexMaterials(
        albedo=perfect.albedo - np.array([0.1, 0.0, 0.2]),
        metallic=perfect.metallic - 0.25,
        roughness=perfect.roughness + np.where(np.arange(num_vertices) < 5, 0.1, 0.3),
    )
    errors = material_errors(offset, ground_truth, mask)
    assert errors["metallic_mae"] == pytest.approx(0.25)
    assert errors["roughness_mae"] == pytest.approx(0.2)
    assert errors["albedo_mae"] == pytest.approx(0.1)
    # Hidden vertices do not count: only the first five (roughness off by 0.1) are selected.
    assert material_errors(offset, ground_truth, np.arange(num_vertices) < 5)["roughness_mae"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no vertex selected"):
        material_errors(offset, ground_truth, np.zeros(num_vertices, dtype=bool))


def test_ground_truth_material_rejects_bad_json() -> None:
    with pytest.raises(NeroDataError, match=r"scene\.json: expected numeric"):
        ground_truth_material({"metallic": 1.0}, Path("scene.json"))
    assert isinstance(ground_truth_material(SCENE_MATERIAL, Path("scene.json")), GroundTruthMaterial)


def _write_materials(folder: Path, num_vertices: int, metallic: float, roughness: float, albedo: np.ndarray) -> None:
    """NeRO's export: all three arrays sRGB-encoded, float32, one row per vertex."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "metallic.npy", linear_to_srgb(np.full((num_vertices, 1), metallic)).astype(np.float32))
    np.save(folder / "roughness.npy", linear_to_srgb(np.full((num_vertices, 1), roughness)).astype(np.float32))
    np.save(folder / "albedo.npy", linear_to_srgb(np.tile(albedo, (num_vertices, 1))).astype(np.float32))


@pytest.fixture(scope="module")
def material_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("materials") / "scene"
    return write_synthetic_scene(folder, sphere_mesh(0.5, 3), num_views=6, resolution=32, scene_info=SCENE_MATERIAL)


def test_materials_command_decodes_srgb_and_scores_visible_vertices(material_scene: Path, tmp_path: Path) -> None:
    mesh_path = material_scene / "gt" / "mesh.ply"
    num_vertices = len(trimesh.load(mesh_path, process=False).vertices)
    _write_materials(tmp_path / "perfect", num_vertices, 1.0, 0.2, np.array([0.8, 0.6, 0.4]))
    report = run(EvalMaterials(mesh_path, tmp_path / "perfect", material_scene, output=tmp_path / "perfect.json"))
    assert report["metallic_mae"] < 1e-6 and report["roughness_mae"] < 1e-6 and report["albedo_mae"] < 1e-6
    assert 0 < report["num_visible_vertices"] <= report["num_vertices"] == num_vertices
    assert json.loads((tmp_path / "perfect.json").read_text())["albedo_mae"] == report["albedo_mae"]

    _write_materials(tmp_path / "offset", num_vertices, 0.7, 0.5, np.array([0.5, 0.6, 0.7]))
    report = run(EvalMaterials(mesh_path, tmp_path / "offset", material_scene))
    # Linear errors, not errors of the sRGB-encoded numbers.
    assert report["metallic_mae"] == pytest.approx(0.3, abs=1e-5)
    assert report["roughness_mae"] == pytest.approx(0.3, abs=1e-5)
    assert report["albedo_mae"] == pytest.approx(0.2, abs=1e-5)


def test_materials_command_rejects_mismatched_rows(material_scene: Path, tmp_path: Path) -> None:
    _write_materials(tmp_path / "short", 5, 1.0, 0.2, np.array([0.8, 0.6, 0.4]))
    with pytest.raises(NeroDataError, match="rows but the mesh has"):
        run(EvalMaterials(material_scene / "gt" / "mesh.ply", tmp_path / "short", material_scene))


def test_materials_on_a_rendered_real_scene_use_its_colmap_cameras(real_scene: Path, tmp_path: Path) -> None:
    scene_info = json.loads((real_scene / "gt" / "scene.json").read_text())
    mesh_path = real_scene / "gt" / "mesh.ply"
    num_vertices = len(trimesh.load(mesh_path, process=False).vertices)
    metallic, roughness, albedo = scene_info["metallic"], scene_info["roughness"], np.array(scene_info["albedo"])
    _write_materials(tmp_path / "m", num_vertices, metallic - 0.1, roughness, albedo)
    report = run(EvalMaterials(mesh_path, tmp_path / "m", real_scene))
    assert report["metallic_mae"] == pytest.approx(0.1, abs=1e-5)
    assert report["roughness_mae"] < 1e-5 and report["albedo_mae"] < 1e-5
    # 24 cameras all around: nearly every bunny vertex is seen, a few in crevices are not.
    assert 0.8 * num_vertices < report["num_visible_vertices"] <= num_vertices
