"""Normalising similarity (sphere of a point cloud, rotation from up/forward), up/forward estimation and their failure
modes."""

import numpy as np
import pytest
from nero_fixtures import look_at_w2c, random_rotation, ring_centers

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.normalization import (
    apply_to_points,
    apply_to_w2c,
    camera_ring_up,
    check_cameras_outside_unit_sphere,
    forward_towards_camera,
    frame_rotation,
)
from nero_nerfstudio.data.object_frame import point_cloud_sphere


def test_random_similarity_round_trips():
    rng = np.random.default_rng(1)
    rotation0, center0, scale0 = random_rotation(rng), rng.normal(size=3) * 5, 0.2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float) / np.sqrt(3)
    normalised_points = np.concatenate([corners, rng.uniform(-0.4, 0.4, size=(30, 3))])
    dataset_points = normalised_points @ rotation0 / scale0 + center0
    up, forward = rotation0.T @ [0, 0, 1], rotation0.T @ [1, 0, 0] + 0.3 * rotation0.T @ [0, 0, 1]

    rotation = frame_rotation(up * 7.0, forward)
    center, radius = point_cloud_sphere(dataset_points, "cloud.ply")
    scale = 1.0 / radius
    np.testing.assert_allclose(rotation, rotation0, atol=1e-10)
    np.testing.assert_allclose(center, center0, atol=1e-10)
    assert scale == pytest.approx(scale0)
    np.testing.assert_allclose(apply_to_points(dataset_points, rotation, center, scale), normalised_points, atol=1e-10)
    assert np.linalg.norm(apply_to_points(dataset_points, rotation, center, scale), axis=1).max() == pytest.approx(1.0)

    # A camera sees every point at the same pixel before and after normalising.
    w2c = look_at_w2c(np.array([3.0, 1.0, 2.0]), center0, up)[None]
    new_w2c = apply_to_w2c(w2c, rotation, center, scale)
    point = dataset_points[3]
    before = w2c[0, :, :3] @ point + w2c[0, :, 3]
    after = new_w2c[0, :, :3] @ apply_to_points(point[None], rotation, center, scale)[0] + new_w2c[0, :, 3]
    np.testing.assert_allclose(after[:2] / after[2], before[:2] / before[2], atol=1e-10)
    np.testing.assert_allclose(new_w2c[0, :, :3] @ new_w2c[0, :, :3].T, np.eye(3), atol=1e-10)


def test_parallel_up_forward_is_refused():
    with pytest.raises(NeroDataError, match="meta_info.txt.*parallel"):
        frame_rotation([0, 0, 1], [0.01, 0, -2], "meta_info.txt")


@pytest.mark.parametrize(
    "points, problem",
    [
        (np.zeros((0, 3)), "at least 4 points"),
        (np.ones((10, 3)), "zero extent"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [np.nan, 0, 0]]), "NaN"),
    ],
)
def test_degenerate_point_clouds_are_refused(points, problem):
    with pytest.raises(NeroDataError, match=f"object_point_cloud.ply: .*{problem}"):
        point_cloud_sphere(points, "object_point_cloud.ply")


def test_camera_inside_unit_sphere_is_refused():
    outside = np.stack([look_at_w2c(c, np.zeros(3), np.array([0, 0, 1.0])) for c in ring_centers(4, 2.0, 0.5, 2)])
    check_cameras_outside_unit_sphere(outside)
    inside = outside.copy()
    inside[2] = look_at_w2c(np.array([0.5, 0.2, 0.1]), np.zeros(3), np.array([0, 0, 1.0]))
    with pytest.raises(NeroDataError, match="cloud.ply: 1 camera.*inside"):
        check_cameras_outside_unit_sphere(inside, source="cloud.ply")


@pytest.mark.parametrize("height", [1.5, 0.0])
def test_camera_ring_up_and_forward_recover_a_tilted_ring(height):
    rng = np.random.default_rng(3)
    rotation0 = random_rotation(rng)  # rows: true forward, side, up in the dataset frame
    object_center = rng.normal(size=3)
    ring = ring_centers(12, radius=4.0, height=height, up_axis=2) + rng.normal(scale=0.02, size=(12, 3))
    # Cameras a little above the object still look slightly down when on its level (aimed below the centre).
    w2c_normalised = np.stack([look_at_w2c(c, np.array([0, 0, -0.5]), np.array([0, 0, 1.0])) for c in ring])
    centers = ring @ rotation0 + object_center
    optical_axes = w2c_normalised[:, 2, :3] @ rotation0

    up = camera_ring_up(centers, optical_axes, object_center)
    forward = forward_towards_camera(centers[0], object_center, up)
    np.testing.assert_allclose(up, rotation0[2], atol=0.02)
    expected_forward = ring[0] * [1, 1, 0] / np.linalg.norm(ring[0, :2])
    np.testing.assert_allclose(forward, expected_forward @ rotation0, atol=0.02)
    assert abs(up @ forward) < 1e-9


def test_camera_ring_up_refuses_cameras_on_a_line_and_forward_a_camera_overhead():
    centers = np.stack([np.linspace(0, 1, 5), np.zeros(5), np.zeros(5)], axis=1)
    with pytest.raises(NeroDataError, match="images.bin: .*line"):
        camera_ring_up(centers, np.tile([0, 1.0, 0], (5, 1)), np.zeros(3), source="images.bin")
    with pytest.raises(NeroDataError, match="images.bin: the first camera is straight above"):
        forward_towards_camera(np.array([0.0, 0.0, 3.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]), "images.bin")


def test_camera_centers_follow_the_similarity():
    rng = np.random.default_rng(5)
    w2c = np.stack([look_at_w2c(c, np.zeros(3), np.array([0, 0, 1.0])) for c in ring_centers(3, 2.0, 1.0, 2)])
    rotation, center, scale = random_rotation(rng), rng.normal(size=3), 0.7
    moved = apply_to_w2c(w2c, rotation, center, scale)
    np.testing.assert_allclose(camera_centers(moved), apply_to_points(camera_centers(w2c), rotation, center, scale),
                               atol=1e-10)
