"""Depth lifting, mesh casting and the whole shape evaluation on analytic and Blender-rendered scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from eval_helpers import sphere_mesh, write_synthetic_scene

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.splits import SYNTHETIC_TEST_IDS
from nero_nerfstudio.eval.scene_views import dataset_to_normalized_scale, select_synthetic_ids
from nero_nerfstudio.eval.shape_metrics import evaluate_shape, frame_mismatch
from nero_nerfstudio.eval.view_geometry import backproject_depth, cast_view, normal_angular_error_deg
from nero_nerfstudio.raycasting.factory import make_ray_caster
from nero_nerfstudio.scenes.camera_rig import look_at_w2c, pinhole_intrinsics


@pytest.fixture(scope="module")
def sphere_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 views of a radius-0.5 sphere at 128 px (pixels ~0.014 units, close to NeRO's 0.01 voxels)."""
    folder = tmp_path_factory.mktemp("sphere") / "scene"
    write_synthetic_scene(folder, sphere_mesh(0.5), num_views=12, resolution=128)
    sphere_mesh(0.5).export(folder.parent / "same.ply")
    sphere_mesh(0.51).export(folder.parent / "larger.ply")
    return folder


def test_backprojection_uses_integer_pixel_coordinates() -> None:
    w2c = look_at_w2c(np.array([[0.3, -2.0, 1.0]]))[0]
    intrinsics = pinhole_intrinsics(16, 12, 50.0)
    depth = np.full((12, 16), 2.0)
    mask = np.zeros((12, 16), dtype=bool)
    mask[5, 7] = True
    point = backproject_depth(depth, mask, w2c, intrinsics)
    assert point.shape == (1, 3)
    projected = intrinsics @ (w2c[:, :3] @ point[0] + w2c[:, 3])
    # Pixel (u=7, v=5) without +0.5, at z-depth 2.
    np.testing.assert_allclose(projected / projected[2], [7.0, 5.0, 1.0], atol=1e-9)
    assert projected[2] == pytest.approx(2.0)


def test_cast_view_gives_z_depth_and_outward_normals() -> None:
    caster = make_ray_caster(sphere_mesh(0.5).vertices, sphere_mesh(0.5).faces, backend="open3d")
    w2c = look_at_w2c(np.array([[0.0, 0.0, 3.0]]), up=np.array([0.0, 1.0, 0.0]))[0]
    depth, normals = cast_view(caster, w2c, pinhole_intrinsics(33, 33, 40.0), 33, 33)
    # The centre pixel looks straight at the sphere: z-depth 3 - 0.5, normal towards the camera (+z).
    assert depth[16, 16] == pytest.approx(2.5, abs=2e-3)
    np.testing.assert_allclose(normals[16, 16], [0.0, 0.0, 1.0], atol=0.02)
    assert np.isinf(depth[0, 0]) and np.all(normals[0, 0] == 0.0)
    hit = np.isfinite(depth)
    assert 50 < hit.sum() < hit.size / 2
    # Every hit, lifted through its pixel centre at its z-depth (not the ray length), lies on the sphere.
    rows, cols = np.nonzero(hit)
    pixel_centres = np.stack([cols + 0.5, rows + 0.5, np.ones_like(cols)], axis=-1) * depth[hit][:, None]
    camera_points = pixel_centres @ np.linalg.inv(pinhole_intrinsics(33, 33, 40.0)).T
    world_points = (camera_points - w2c[:, 3]) @ w2c[:, :3]
    np.testing.assert_allclose(np.linalg.norm(world_points, axis=-1), 0.5, atol=1e-3)
    assert np.all(normals[hit][:, 2] > 0.0)


def test_normal_angular_error() -> None:
    reference = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    predicted = np.array([[0.0, 0.0, 2.0], [0.0, 1.0, 1.0], [-1.0, 0.0, 0.0]])
    np.testing.assert_allclose(normal_angular_error_deg(predicted, reference), [0.0, 45.0, 180.0], atol=1e-6)


def test_test_view_selection() -> None:
    all_ids = [str(k) for k in range(128)]
    assert select_synthetic_ids(all_ids, "test") == list(SYNTHETIC_TEST_IDS)
    assert len(select_synthetic_ids(all_ids, "all")) == 128
    # A folder without every test id falls back to all its views.
    assert select_synthetic_ids(all_ids[:24], "test") == all_ids[:24]


def test_identical_mesh_scores_zero(sphere_scene: Path) -> None:
    result = evaluate_shape(
        sphere_scene.parent / "same.ply", sphere_scene, sphere_scene / "gt" / "mesh.ply", num_mesh_samples=5000
    )
    assert result.chamfer is not None and result.chamfer_gt_mesh is not None
    # Same rays, exact depth: only the 16-bit depth quantisation (2.3e-4) separates the point sets.
    assert result.chamfer.chamfer < 2e-4
    assert result.chamfer_gt_mesh.chamfer < 1e-6
    # Flat faces against smooth vertex normals of a 20k-face icosphere.
    assert result.normal_error_deg is not None and result.normal_error_deg < 1.0
    assert len(result.view_names) == 12 and result.num_gt_points > 10_000
    assert any("32 test views" in note for note in result.notes)


def test_sphere_one_percent_larger_is_0_01_away(sphere_scene: Path) -> None:
    result = evaluate_shape(
        sphere_scene.parent / "larger.ply", sphere_scene, sphere_scene / "gt" / "mesh.ply", num_mesh_samples=5000
    )
    assert result.chamfer is not None and result.chamfer_gt_mesh is not None
    assert result.chamfer.chamfer == pytest.approx(0.01, abs=1.5e-3)
    assert result.chamfer_gt_mesh.chamfer == pytest.approx(0.01, abs=3e-4)


def test_depth_chamfer_ignores_hidden_interior_geometry(sphere_scene: Path, tmp_path: Path) -> None:
    # A small sphere inside the prediction is hidden from every view: NeRO's protocol does not see it, the
    # mesh-to-mesh Chamfer does.
    with_junk = trimesh.util.concatenate([sphere_mesh(0.5), sphere_mesh(0.2, subdivisions=3)])
    with_junk.export(tmp_path / "junk.ply")
    gt_mesh = sphere_scene / "gt" / "mesh.ply"
    result = evaluate_shape(tmp_path / "junk.ply", sphere_scene, gt_mesh, num_mesh_samples=5000)
    assert result.chamfer is not None and result.chamfer.chamfer < 2e-4
    assert result.chamfer_gt_mesh is not None and result.chamfer_gt_mesh.chamfer > 0.01


def test_mesh_outside_every_view_is_reported(sphere_scene: Path, tmp_path: Path) -> None:
    # Far smaller than a pixel footprint (~0.014), and no pixel-centre ray passes through the origin.
    sphere_mesh(1e-4, subdivisions=2).export(tmp_path / "speck.ply")
    with pytest.raises(NeroDataError, match="not seen by any evaluation view"):
        evaluate_shape(tmp_path / "speck.ply", sphere_scene)


def test_bad_mesh_files_give_one_line_errors(sphere_scene: Path, tmp_path: Path) -> None:
    with pytest.raises(NeroDataError, match=r"missing\.ply: mesh file not found"):
        evaluate_shape(tmp_path / "missing.ply", sphere_scene)
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(10, 3))).export(tmp_path / "points.ply")
    with pytest.raises(NeroDataError, match=r"points\.ply: file holds no triangles"):
        evaluate_shape(tmp_path / "points.ply", sphere_scene)


def test_gt_mesh_against_its_own_blender_scene(synthetic_scene: Path) -> None:
    result = evaluate_shape(synthetic_scene / "gt" / "mesh.ply", synthetic_scene, num_mesh_samples=5000)
    assert result.chamfer is not None and result.chamfer_gt_mesh is None
    # Same pixel-centre rays as the generator's depth; measured 6.6e-5 (48 px, 24 views).
    assert result.chamfer.chamfer < 1e-3
    # Flat faces of the bunny against its smooth normals; measured 2.9 degrees.
    assert result.normal_error_deg is not None and 0.1 < result.normal_error_deg < 5.0


def test_real_scene_has_no_depth_maps_so_only_the_gt_mesh_chamfer(real_scene: Path, tmp_path: Path) -> None:
    gt_mesh = real_scene / "gt" / "mesh.ply"
    result = evaluate_shape(gt_mesh, real_scene, gt_mesh, num_mesh_samples=5000)
    assert result.chamfer is None and result.normal_error_deg is None
    assert result.chamfer_gt_mesh is not None and result.chamfer_gt_mesh.chamfer < 1e-6
    assert any("no depth maps" in note for note in result.notes)
    with pytest.raises(NeroDataError, match="pass --gt-mesh"):
        evaluate_shape(gt_mesh, real_scene)


def test_real_scene_distances_are_in_the_normalised_frame(real_scene: Path, tmp_path: Path) -> None:
    # The COLMAP frame is scaled by colmap_scale; the GT-mesh Chamfer must be reported in unit-sphere units.
    scale = dataset_to_normalized_scale(real_scene)
    gt_mesh = trimesh.load(real_scene / "gt" / "mesh.ply", process=False)
    # 1% larger in the normalised frame = grown by 0.01 / scale dataset units along the normals.
    grown = gt_mesh.copy()
    grown.vertices = grown.vertices + (0.01 / scale) * grown.vertex_normals
    grown.export(tmp_path / "grown.ply")
    result = evaluate_shape(tmp_path / "grown.ply", real_scene, real_scene / "gt" / "mesh.ply", num_mesh_samples=5000)
    assert scale < 0.9
    assert result.chamfer_gt_mesh is not None
    assert result.chamfer_gt_mesh.chamfer == pytest.approx(0.01, rel=0.15)


def test_gt_point_cloud_is_accepted_as_gt_mesh(sphere_scene: Path, tmp_path: Path) -> None:
    points = trimesh.sample.sample_surface(sphere_mesh(0.5), 100_000, seed=0)[0]
    trimesh.PointCloud(points).export(tmp_path / "scan.ply")
    larger = sphere_scene.parent / "larger.ply"
    result = evaluate_shape(larger, sphere_scene, tmp_path / "scan.ply", num_mesh_samples=5000)
    assert result.chamfer_gt_mesh is not None
    assert result.chamfer_gt_mesh.chamfer == pytest.approx(0.01, abs=2e-3)


def test_a_mesh_in_another_frame_is_flagged(sphere_scene: Path, tmp_path: Path) -> None:
    """A mesh 3x too large (say, scaled wrongly) scores a Chamfer, with a note that says why it is meaningless."""
    assert frame_mismatch(sphere_mesh(0.5).vertices, sphere_mesh(0.5).vertices) is None
    assert frame_mismatch(sphere_mesh(0.5).vertices + 5.0, sphere_mesh(0.5).vertices) == (
        "its bounding box does not overlap the ground truth's"
    )
    sphere_mesh(1.5).export(tmp_path / "large.ply")
    result = evaluate_shape(tmp_path / "large.ply", sphere_scene, sphere_scene / "gt" / "mesh.ply", num_mesh_samples=2000)
    (note,) = [note for note in result.notes if "bounding box" in note]
    assert note.startswith("large.ply: its bounding box is 3x the size of the ground truth's; is it in the scene's")
    same = evaluate_shape(sphere_scene.parent / "same.ply", sphere_scene, sphere_scene / "gt" / "mesh.ply", num_mesh_samples=2000)
    assert not any("bounding box" in note for note in same.notes)
