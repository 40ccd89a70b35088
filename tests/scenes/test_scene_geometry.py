"""Pure-numpy pieces of the scene generator: camera rig, frame similarities, depth encoding, ground-truth casting."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nero_nerfstudio.scenes.camera_rig import (
    fibonacci_sphere_directions,
    look_at_w2c,
    pinhole_intrinsics,
    tabletop_ring_centers,
)
from nero_nerfstudio.scenes.ground_truth import GroundTruthCaster, GroundTruthMesh, sample_surface_points
from nero_nerfstudio.scenes.similarity import (
    Similarity,
    blender_to_colmap,
    blender_to_synthetic,
    normalise_to_radius,
    random_rotation,
)
from nero_nerfstudio.scenes.synthetic_layout import encode_depth_png


def _project(w2c: np.ndarray, intrinsics: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``[N, 2]`` of world points ``[N, 3]`` in one OpenCV camera."""
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    pixels = cam @ intrinsics.T
    return pixels[:, :2] / pixels[:, 2:]


def test_fibonacci_directions_cover_both_hemispheres() -> None:
    directions = fibonacci_sphere_directions(32, seed=3)
    assert directions.shape == (32, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0, atol=1e-12)
    assert (directions[:, 2] > 0).sum() == 16 and (directions[:, 2] < 0).sum() == 16
    assert np.abs(directions.mean(axis=0)).max() < 0.1  # evenly spread
    assert not np.allclose(directions, fibonacci_sphere_directions(32, seed=4))


def test_tabletop_ring_walks_around_above_the_table() -> None:
    centers = tabletop_ring_centers(40, distance=3.5, seed=2)
    assert centers.shape == (40, 3)
    distance = np.linalg.norm(centers, axis=-1)
    elevation = np.degrees(np.arcsin(centers[:, 2] / distance))
    # Every fifth of the 10-60 degree band holds a fifth of the views (stratified), above any table under the object.
    np.testing.assert_array_equal(np.histogram(elevation, bins=5, range=(10.0, 60.0))[0], 8)
    assert centers[:, 2].min() >= 3.5 * 0.9 * np.sin(np.radians(10.0)) > 0
    # Heights go down and up three times along the ring, in steps of at most about 6 strata (7.5 degrees).
    height_steps = np.diff(elevation, append=elevation[:1])
    assert np.abs(height_steps).max() < 10.0
    assert (np.diff(np.sign(height_steps), append=np.sign(height_steps[:1])) != 0).sum() == 6
    # Distances are jittered within 10 %.
    assert 3.5 * 0.9 <= distance.min() and distance.max() <= 3.5 * 1.1 and distance.std() > 0.1
    # One walk around, in order, with no two views at the same azimuth.
    steps = np.diff(np.unwrap(np.arctan2(centers[:, 1], centers[:, 0])))
    assert steps.min() > 0 and steps.sum() < 2 * np.pi
    assert not np.allclose(centers, tabletop_ring_centers(40, distance=3.5, seed=3))
    band = tabletop_ring_centers(10, 1.0, seed=0, min_elevation_deg=20.0, max_elevation_deg=30.0)
    band_elevation = np.degrees(np.arcsin(band[:, 2] / np.linalg.norm(band, axis=-1)))
    assert 20.0 <= band_elevation.min() and band_elevation.max() <= 30.0


def test_look_at_points_cameras_at_origin_with_z_up() -> None:
    centers = 3.5 * fibonacci_sphere_directions(16, seed=0)
    w2c = look_at_w2c(centers)
    intrinsics = pinhole_intrinsics(64, 48, 30.0)
    for pose, center in zip(w2c, centers):
        rotation = pose[:, :3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        np.testing.assert_allclose(-rotation.T @ pose[:, 3], center, atol=1e-12)
        np.testing.assert_allclose(_project(pose, intrinsics, np.zeros((1, 3))), [[32.0, 24.0]], atol=1e-9)
        # World up (+z) points up in the image: a point above the origin lands on a smaller row.
        assert _project(pose, intrinsics, np.array([[0.0, 0.0, 0.1]]))[0, 1] < 24.0


def test_pinhole_intrinsics_field_of_view() -> None:
    intrinsics = pinhole_intrinsics(64, 64, 90.0)
    assert intrinsics[0, 0] == pytest.approx(32.0)
    assert intrinsics[0, 2] == 32.0 and intrinsics[1, 2] == 32.0


def test_synthetic_axis_swap_is_x_z_minus_y() -> None:
    similarity = blender_to_synthetic()
    np.testing.assert_allclose(similarity.apply_points(np.array([[1.0, 2.0, 3.0]])), [[1.0, 3.0, -2.0]])
    assert np.linalg.det(similarity.rotation) == pytest.approx(1.0)


def test_random_rotation_is_proper_and_seeded() -> None:
    rotation = random_rotation(7)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_array_equal(rotation, random_rotation(7))
    assert not np.allclose(rotation, random_rotation(8))


def test_similarity_keeps_projections_and_json_round_trip() -> None:
    similarity = blender_to_colmap(seed=1, scale=2.7, translation=(0.3, -1.2, 4.0))
    w2c = look_at_w2c(3.5 * fibonacci_sphere_directions(5, seed=0))
    intrinsics = pinhole_intrinsics(32, 32, 30.0)
    points = np.random.default_rng(0).uniform(-0.8, 0.8, size=(50, 3))
    moved_w2c = similarity.apply_w2c(w2c)
    for pose, moved_pose in zip(w2c, moved_w2c):
        np.testing.assert_allclose(moved_pose[:, :3] @ moved_pose[:, :3].T, np.eye(3), atol=1e-12)
        moved_pixels = _project(moved_pose, intrinsics, similarity.apply_points(points))
        np.testing.assert_allclose(moved_pixels, _project(pose, intrinsics, points), atol=1e-9)
    restored = Similarity.from_json(similarity.to_json())
    np.testing.assert_allclose(restored.apply_points(points), similarity.apply_points(points))


def test_normalise_to_radius_centres_bounding_box() -> None:
    vertices = np.random.default_rng(0).normal(size=(200, 3)) * [1.0, 2.0, 0.5] + [5.0, -3.0, 1.0]
    normalised = normalise_to_radius(vertices, 0.8)
    np.testing.assert_allclose((normalised.max(0) + normalised.min(0)) / 2, 0.0, atol=1e-12)
    assert np.linalg.norm(normalised, axis=-1).max() == pytest.approx(0.8)


def test_depth_png_encoding_saturates_background() -> None:
    depth = np.array([[0.0, np.inf, 3.0, 20.0]])
    encoded = encode_depth_png(depth)
    assert encoded.dtype == np.uint16
    np.testing.assert_array_equal(encoded, [[65535, 65535, round(3.0 / 15 * 65535), 65535]])


def _sphere_mesh(radius: float) -> GroundTruthMesh:
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    return GroundTruthMesh(np.asarray(sphere.vertices), np.asarray(sphere.faces), np.asarray(sphere.vertex_normals))


def test_cast_depth_and_normals_match_analytic_sphere() -> None:
    radius, distance = 0.8, 3.5
    mesh = _sphere_mesh(radius)
    w2c = look_at_w2c(np.array([[distance, 0.4, 0.3]]) / np.linalg.norm([distance, 0.4, 0.3]) * distance)[0]
    intrinsics = pinhole_intrinsics(40, 40, 30.0)
    depth, normals = GroundTruthCaster(mesh).depth_and_normals(w2c, intrinsics, 40, 40)
    assert depth.shape == (40, 40) and normals.shape == (40, 40, 3)
    hit = np.isfinite(depth)
    assert 0.1 < hit.mean() < 0.9
    assert np.all(normals[~hit] == 0)

    # Analytic z-depth along pixel-centre rays: |o + t d| = r with d = R^T K^-1 (u + .5, v + .5, 1).
    cols, rows = np.meshgrid(np.arange(40) + 0.5, np.arange(40) + 0.5)
    directions = np.stack([cols, rows, np.ones_like(cols)], -1) @ np.linalg.inv(intrinsics).T @ w2c[:, :3]
    origin = -w2c[:, :3].T @ w2c[:, 3]
    a = (directions**2).sum(-1)
    b = 2 * directions @ origin
    c = origin @ origin - radius**2
    disc = b**2 - 4 * a * c
    analytic_hit = disc > 0
    t_near = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    interior = analytic_hit & hit
    assert (analytic_hit != hit).mean() < 0.02  # only silhouette pixels may differ (tessellation)
    depth_error = np.abs(depth[interior] - t_near[interior])
    assert np.median(depth_error) < 1e-3 and depth_error.max() < 1e-2  # grazing rays amplify the facets
    points = origin + t_near[..., None] * directions
    cosine = (normals[interior] * points[interior] / radius).sum(-1)
    assert cosine.min() > 0.999


def test_sample_surface_points_lie_on_mesh() -> None:
    mesh = _sphere_mesh(0.5)
    points = sample_surface_points(mesh, 500, seed=0)
    assert points.shape == (500, 3)
    assert np.abs(np.linalg.norm(points, axis=-1) - 0.5).max() < 2e-3
    assert np.abs(points.mean(axis=0)).max() < 0.05
