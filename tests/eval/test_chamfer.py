"""Chamfer distances on point sets and meshes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nero_nerfstudio.eval.chamfer import (
    ChamferDistance,
    chamfer_distance,
    mesh_chamfer_distance,
    mesh_to_points_chamfer_distance,
    voxel_downsample,
)
from eval_helpers import sphere_mesh


def _sphere_points(radius: float, count: int, seed: int) -> np.ndarray:
    directions = np.random.default_rng(seed).normal(size=(count, 3))
    return radius * directions / np.linalg.norm(directions, axis=-1, keepdims=True)


def test_identical_point_sets_are_at_distance_zero() -> None:
    points = _sphere_points(0.5, 1000, 0)
    assert chamfer_distance(points, points) == ChamferDistance(0.0, 0.0, 0.0)


def test_chamfer_is_the_mean_of_both_directions() -> None:
    pred = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    gt = np.array([[0.0, 0.0, 0.0]])
    # pred -> gt: (0 + 1) / 2 = 0.5; gt -> pred: 0.
    assert chamfer_distance(pred, gt) == ChamferDistance(0.25, 0.5, 0.0)


def test_concentric_spheres_after_voxel_downsampling_are_their_radius_gap_apart() -> None:
    gt = voxel_downsample(_sphere_points(0.5, 400_000, 0))
    pred = voxel_downsample(_sphere_points(0.51, 400_000, 1))
    distance = chamfer_distance(pred, gt)
    # The radial gap is 0.01; the voxel means sit a little inside the spheres and add tangential offsets.
    assert distance.chamfer == pytest.approx(0.01, abs=1.5e-3)
    assert distance.pred_to_gt == pytest.approx(distance.gt_to_pred, rel=0.1)


def test_voxel_downsample_keeps_one_point_per_occupied_voxel() -> None:
    cluster = np.array([[0.001, 0.001, 0.001], [0.002, 0.003, 0.004], [0.5, 0.5, 0.5]])
    reduced = voxel_downsample(cluster, 0.01)
    assert len(reduced) == 2
    np.testing.assert_allclose(sorted(reduced.tolist()), [[0.0015, 0.002, 0.0025], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="voxel_size must be positive"):
        voxel_downsample(cluster, 0.0)


def test_empty_point_sets_are_rejected() -> None:
    with pytest.raises(ValueError, match="predicted points is empty"):
        chamfer_distance(np.zeros((0, 3)), np.zeros((3, 3)))


def test_mesh_chamfer_of_identical_meshes_is_zero() -> None:
    mesh = sphere_mesh(0.5, subdivisions=3)
    assert mesh_chamfer_distance(mesh, mesh.copy(), num_samples=5000).chamfer < 1e-6


def test_mesh_chamfer_of_concentric_spheres_is_their_radius_gap() -> None:
    distance = mesh_chamfer_distance(sphere_mesh(0.51), sphere_mesh(0.5), num_samples=5000)
    # Point-to-surface: exactly 0.01 up to the icospheres' faceting (~1e-4 at subdivision 5).
    assert distance.chamfer == pytest.approx(0.01, abs=3e-4)


def test_mesh_chamfer_sees_a_missing_part() -> None:
    full = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    half = trimesh.creation.box(extents=(1.0, 1.0, 0.5))
    half.apply_translation((0.0, 0.0, -0.25))
    distance = mesh_chamfer_distance(half, full, num_samples=20000)
    # half -> full: only the half box's new top face (1/4 of its area) is off the full box's surface; its mean
    # distance to the full box's sides is the mean distance to the unit square's border, 1/6 -> 1/24.
    assert distance.pred_to_gt == pytest.approx(1.0 / 24.0, abs=0.004)
    # full -> half: the top face (1/6 of the area) is 0.5 away, the upper side strips (2/6) 0.25 on average.
    assert distance.gt_to_pred == pytest.approx(0.5 / 6.0 + 0.25 * 2.0 / 6.0, abs=0.006)


def test_mesh_against_a_gt_point_cloud() -> None:
    gt_points = np.asarray(trimesh.sample.sample_surface(sphere_mesh(0.5), 200_000, seed=3)[0])
    same = mesh_to_points_chamfer_distance(sphere_mesh(0.5), gt_points, num_samples=5000)
    # GT points lie on the surface (exact 0 that way); surface samples are ~half a point spacing from a GT point.
    assert same.gt_to_pred < 1e-6 and same.pred_to_gt < 2e-3
    larger = mesh_to_points_chamfer_distance(sphere_mesh(0.51), gt_points, num_samples=5000)
    assert larger.chamfer == pytest.approx(0.01 + same.chamfer, abs=1e-3)
