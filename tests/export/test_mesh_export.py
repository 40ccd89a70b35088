"""Marching-cubes export on analytic SDFs, the dataset-frame transform and atomic mesh files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.frames import normalised_to_dataset_matrix
from nero_nerfstudio.export.mesh import (
    NoSurfaceError,
    cut_at_table,
    evaluate_sdf_grid,
    extract_mesh,
    load_dataparser_transform,
    mesh_from_sdf_grid,
    nudge_off_zero,
    save_mesh,
    transform_to_dataset_frame,
)

RESOLUTION = 96
VOXEL = 2.0 / (RESOLUTION - 1)


def sphere_sdf(points: torch.Tensor, radius: float = 0.5) -> torch.Tensor:
    """[N, 3] -> [N, 1]"""
    return torch.linalg.vector_norm(points, dim=-1, keepdim=True) - radius


def box_sdf(points: torch.Tensor, half_extents=(0.4, 0.3, 0.2)) -> torch.Tensor:
    """Exact box SDF, [N, 3] -> [N] (the 1-D output form)."""
    offset = points.abs() - torch.tensor(half_extents, dtype=points.dtype)
    outside = torch.linalg.vector_norm(offset.clamp(min=0.0), dim=-1)
    inside = offset.max(dim=-1).values.clamp(max=0.0)
    return outside + inside


def torus_sdf(points: torch.Tensor, major: float = 0.5, minor: float = 0.2) -> torch.Tensor:
    """Torus around the z axis, [N, 3] -> [N, 1]."""
    ring = torch.linalg.vector_norm(points[:, :2], dim=-1) - major
    return (torch.sqrt(ring**2 + points[:, 2] ** 2) - minor)[:, None]


def _as_tensor(points: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(points, dtype=np.float32))


def assert_closed_and_outward(mesh: trimesh.Trimesh) -> None:
    assert len(mesh.faces) > 0
    assert mesh.is_watertight
    assert mesh.volume > 0.0  # signed volume: positive only for outward winding


def test_sphere_is_closed_outward_and_on_the_surface():
    mesh = extract_mesh(sphere_sdf, resolution=RESOLUTION)
    assert_closed_and_outward(mesh)
    outward = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center)
    assert np.all(outward > 0.0)
    radii = np.linalg.norm(mesh.vertices, axis=-1)
    assert np.abs(radii - 0.5).max() < VOXEL
    assert mesh.volume == pytest.approx(4.0 / 3.0 * math.pi * 0.5**3, rel=0.02)


def test_box_accepts_one_dimensional_sdf_output():
    mesh = extract_mesh(box_sdf, resolution=RESOLUTION)
    assert_closed_and_outward(mesh)
    assert np.abs(box_sdf(_as_tensor(mesh.vertices)).numpy()).max() < VOXEL
    np.testing.assert_allclose(mesh.bounds, [[-0.4, -0.3, -0.2], [0.4, 0.3, 0.2]], atol=VOXEL)
    assert mesh.volume == pytest.approx(0.8 * 0.6 * 0.4, rel=0.05)


def test_torus_has_genus_one():
    mesh = extract_mesh(torus_sdf, resolution=RESOLUTION)
    assert_closed_and_outward(mesh)
    assert mesh.euler_number == 0  # a closed surface with one hole
    assert np.abs(torus_sdf(_as_tensor(mesh.vertices)).numpy()).max() < VOXEL
    assert mesh.volume == pytest.approx(2.0 * math.pi**2 * 0.5 * 0.2**2, rel=0.05)


def test_surface_crossing_the_unit_sphere_is_closed_there():
    """Half-space z < 0.3: everything below the plane and inside the unit sphere is "inside"."""
    mesh = extract_mesh(lambda points: points[:, 2:3] - 0.3, resolution=RESOLUTION)
    assert_closed_and_outward(mesh)
    below_plane = mesh.vertices[:, 2] < 0.3 - VOXEL
    assert below_plane.any()
    assert np.abs(np.linalg.norm(mesh.vertices[below_plane], axis=-1) - 1.0).max() < 2 * VOXEL
    cap_height = 0.7
    expected_volume = 4.0 / 3.0 * math.pi - math.pi * cap_height**2 * (3.0 - cap_height) / 3.0
    assert mesh.volume == pytest.approx(expected_volume, rel=0.03)


def test_custom_bounds_map_vertices_to_world_coordinates():
    """Anisotropic voxels and an off-centre box: vertices still land on the true surface."""
    centre = torch.tensor([0.2, -0.1, 0.05])
    bounds = ((-0.3, -0.6, -0.4), (0.7, 0.4, 0.5))
    mesh = extract_mesh(lambda points: sphere_sdf(points - centre, radius=0.3), resolution=64, bounds=bounds)
    assert_closed_and_outward(mesh)
    largest_voxel = 1.0 / 63
    radii = np.linalg.norm(mesh.vertices - centre.numpy(), axis=-1)
    assert np.abs(radii - 0.3).max() < largest_voxel
    np.testing.assert_allclose(mesh.centroid, centre.numpy(), atol=largest_voxel)


def test_grid_is_evaluated_in_chunks_inside_the_unit_sphere_only():
    batch_sizes, max_norms = [], []

    def recording_sdf(points: torch.Tensor) -> torch.Tensor:
        assert points.dtype == torch.float32
        batch_sizes.append(points.shape[0])
        max_norms.append(float(torch.linalg.vector_norm(points, dim=-1).max()))
        return sphere_sdf(points)

    chunked = evaluate_sdf_grid(recording_sdf, resolution=32, chunk_size=1000)
    assert max(batch_sizes) <= 1000
    assert len(batch_sizes) > 10
    assert max(max_norms) < 1.0
    whole = evaluate_sdf_grid(sphere_sdf, resolution=32, chunk_size=32**3)
    np.testing.assert_array_equal(chunked, whole)
    assert chunked.shape == (32, 32, 32) and chunked.dtype == np.float32
    # Grid index [i, j, k] is the point (x_i, y_j, z_k) of a linspace including the endpoints.
    axis = np.linspace(-1.0, 1.0, 32)
    i, j, k = 10, 14, 20
    assert chunked[i, j, k] == pytest.approx(np.linalg.norm([axis[i], axis[j], axis[k]]) - 0.5, abs=1e-6)
    assert chunked[0, 0, 0] > 0 and chunked[31, 16, 16] > 0  # outside the sphere: forced positive


def test_sdf_without_surface_gives_a_clear_error():
    with pytest.raises(NoSurfaceError, match="no surface inside the unit sphere"):
        extract_mesh(lambda points: sphere_sdf(points) + 1.0, resolution=32)
    with pytest.raises(NoSurfaceError, match="NaN"):
        extract_mesh(lambda points: sphere_sdf(points) * float("nan"), resolution=32)


def test_sdf_with_wrong_output_shape_is_rejected():
    with pytest.raises(ValueError, match="expected"):
        extract_mesh(lambda points: points[:, :2], resolution=16)


def _rotation(axis, angle_deg: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(math.radians(angle_deg), axis)[:3, :3]


@pytest.mark.parametrize("reflect", [False, True])
def test_transform_round_trip_with_a_known_similarity(reflect: bool):
    """x_ns = s * R (x - c) as a nerfstudio parser stores it; the export inverts it exactly and keeps faces outward."""
    rotation = _rotation([0.3, -0.5, 0.8], 37.0)
    if reflect:
        rotation = rotation @ np.diag([1.0, 1.0, -1.0])
    centre, scale = np.array([0.4, -1.2, 2.5]), 0.37
    transform = np.hstack([rotation, (-rotation @ centre)[:, None]])

    dataset_mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.3)
    dataset_mesh.apply_translation(centre + [0.1, 0.2, -0.3])
    normalized_vertices = scale * (dataset_mesh.vertices @ transform[:, :3].T + transform[:, 3])
    normalized_faces = dataset_mesh.faces[:, ::-1] if reflect else dataset_mesh.faces  # keep it outward
    normalized_mesh = trimesh.Trimesh(normalized_vertices, normalized_faces, process=False)
    assert normalized_mesh.volume > 0

    restored = transform_to_dataset_frame(normalized_mesh, transform, scale)
    np.testing.assert_allclose(restored.vertices, dataset_mesh.vertices, atol=1e-9)
    assert restored.volume == pytest.approx(dataset_mesh.volume, rel=1e-9)
    np.testing.assert_array_equal(normalized_mesh.vertices, normalized_vertices)  # the input is left untouched


def test_inverse_matches_nerfstudio_pose_transform():
    """Our inverse agrees with nerfstudio's own transform_poses_to_original_space on camera positions."""
    from nerfstudio.cameras.cameras import Cameras
    from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
    from nerfstudio.data.scene_box import SceneBox

    rotation = _rotation([1.0, 2.0, 0.5], -71.0)
    transform = np.hstack([rotation, np.array([[0.3], [-0.2], [1.1]])])
    scale = 2.5
    positions = np.random.default_rng(0).uniform(-0.8, 0.8, size=(5, 3))
    poses = torch.eye(4)[None, :3, :].repeat(5, 1, 1)
    poses[:, :, 3] = torch.from_numpy(positions).float()
    outputs = DataparserOutputs(
        image_filenames=[],
        cameras=Cameras(camera_to_worlds=poses, fx=1.0, fy=1.0, cx=1.0, cy=1.0, width=2, height=2),
        scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
        dataparser_transform=torch.from_numpy(transform).float(),
        dataparser_scale=scale,
    )
    expected = outputs.transform_poses_to_original_space(poses)[:, :3, 3].numpy()
    ours = trimesh.transform_points(positions, normalised_to_dataset_matrix(transform, scale))
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_nudge_off_zero_keeps_the_sign_and_moves_only_near_zero_values():
    grid = np.array([-0.5, -1e-3, -1e-9, -0.0, 0.0, 1e-9, 1e-3, 0.5], dtype=np.float64).reshape(2, 2, 2)
    nudged = nudge_off_zero(grid, epsilon=1e-4)
    assert nudged.dtype == np.float32
    np.testing.assert_array_equal(
        nudged.ravel(), np.array([-0.5, -1e-3, -1e-4, 1e-4, 1e-4, 1e-4, 1e-3, 0.5], dtype=np.float32)
    )
    assert grid[1, 1, 0] == 1e-3 and grid[0, 1, 0] == -1e-9  # the input is left untouched


def _sphere_grid_with_band(value: float, resolution: int = 48) -> np.ndarray:
    """Sphere SDF of radius 0.5 whose grid points within 0.3 voxel of the surface all hold ``value``."""
    axis = np.linspace(-1.0, 1.0, resolution)
    grid = np.linalg.norm(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1), axis=-1) - 0.5
    grid[np.abs(grid) < 0.3 * 2.0 / (resolution - 1)] = value
    return grid.astype(np.float32)


@pytest.mark.parametrize(
    "grid_name",
    ["box_face_on_a_grid_plane", "sphere_band_at_zero", "sphere_band_at_5e-8", "sphere_band_at_-5e-8"],
)
def test_grid_values_at_zero_stay_closed_in_a_dataset_frame_ply(tmp_path, grid_name: str):
    """SDF values at (or within float error of) 0 on grid points: the dataset-frame PLY (float32 coordinates, merged
    on load) must keep every vertex and face and stay closed. Before the grid was nudged off zero, the marching-cubes
    vertices around such a point were a few float32 steps apart, merged on load, and left non-manifold edges."""
    if grid_name == "box_face_on_a_grid_plane":
        grid = evaluate_sdf_grid(box_sdf, resolution=RESOLUTION)  # z = 0.2 is grid plane 57 of 96
        assert np.count_nonzero(np.abs(grid) < 1e-7) > 1000
    else:
        grid = _sphere_grid_with_band({"zero": 0.0, "5e-8": 5e-8, "-5e-8": -5e-8}[grid_name.rsplit("_", 1)[1]])
    mesh = mesh_from_sdf_grid(grid)
    assert_closed_and_outward(mesh)

    rotation = _rotation([0.3, -0.5, 0.8], 37.0)
    transform, scale = np.hstack([rotation, np.array([[0.3], [-1.2], [4.0]])]), 0.8
    path = save_mesh(transform_to_dataset_frame(mesh, transform, scale), tmp_path / "mesh.ply")
    loaded = trimesh.load(path, force="mesh")
    assert (len(loaded.vertices), len(loaded.faces)) == (len(mesh.vertices), len(mesh.faces))
    assert_closed_and_outward(loaded)
    assert loaded.volume == pytest.approx(mesh.volume / scale**3, rel=1e-5)


def test_load_dataparser_transform(tmp_path):
    path = tmp_path / "dataparser_transforms.json"
    transform = np.hstack([_rotation([0, 0, 1], 90.0), np.ones((3, 1))])
    path.write_text(json.dumps({"transform": transform.tolist(), "scale": 0.5}))
    loaded, scale = load_dataparser_transform(path)
    np.testing.assert_allclose(loaded, transform)
    assert scale == 0.5

    path.write_text(json.dumps({"transform": [[1, 0, 0]], "scale": 1.0}))
    with pytest.raises(NeroDataError, match="dataparser_transforms.json.*3x4"):
        load_dataparser_transform(path)
    with pytest.raises(NeroDataError, match="not found"):
        load_dataparser_transform(tmp_path / "missing" / "dataparser_transforms.json")


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_save_mesh_formats_round_trip_without_leftovers(tmp_path, suffix: str):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    path = save_mesh(mesh, tmp_path / "out" / f"mesh{suffix}")
    assert [p.name for p in path.parent.iterdir()] == [f"mesh{suffix}"]
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == len(mesh.faces)
    assert loaded.is_watertight
    assert loaded.volume == pytest.approx(mesh.volume, rel=1e-5)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "mesh.ply"
    save_mesh(trimesh.creation.box(), path)
    old_bytes = path.read_bytes()

    def export_half_then_fail(self, file_obj=None, file_type=None, **kwargs):
        with open(file_obj, "wb") as handle:
            handle.write(b"ply\nformat binary_little_endian 1.0\n")
        raise OSError("disk full")

    monkeypatch.setattr(trimesh.Trimesh, "export", export_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_mesh(trimesh.creation.icosphere(), path)
    assert path.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["mesh.ply"]


def test_save_mesh_rejects_unknown_formats(tmp_path):
    with pytest.raises(NeroDataError, match=r"mesh\.stl.*unsupported mesh format"):
        save_mesh(trimesh.creation.box(), tmp_path / "mesh.stl")
    assert not any(tmp_path.iterdir())


def test_cut_at_table_keeps_the_object_and_drops_the_table():
    # A ball standing on a table slab (what Stage I reconstructs inside the unit sphere), in a tilted frame.
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    ball.apply_translation([0.0, 0.0, 0.4 - 0.5])
    slab = trimesh.creation.box(extents=[1.6, 1.6, 0.1])
    slab.apply_translation([0.0, 0.0, -0.5 - 0.05])
    bump = trimesh.creation.box(extents=[0.1, 0.1, 0.03])  # a bump of the reconstructed table surface
    bump.apply_translation([0.6, 0.0, -0.5 + 0.015])
    scene = trimesh.util.concatenate([ball, slab, bump])
    tilt = trimesh.transformations.rotation_matrix(0.4, [1.0, 0.3, 0.0])
    scene.apply_transform(tilt)
    plane_normal = tilt[:3, :3] @ np.array([0.0, 0.0, 1.0])
    table_point = tilt[:3, :3] @ np.array([0.0, 0.0, -0.5])
    plane = np.concatenate([plane_normal, [-plane_normal @ table_point]])

    cut = cut_at_table(scene, plane, offset=0.02)
    heights = cut.vertices @ plane_normal + plane[3]
    assert heights.min() >= 0.02 - 1e-6  # nothing of the slab or the bump is left
    assert heights.max() == pytest.approx(0.8, abs=0.01)  # the ball's top is
    assert len(cut.split(only_watertight=False)) == 1
    # The kept ball is the ball above the cut: its area is nearly all of the ball's.
    assert cut.area == pytest.approx(ball.area, rel=0.05)
