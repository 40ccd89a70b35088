"""Relight cameras: NeRO's half orbit, dataset cameras moved into Blender's frame, Blender lens parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from relight_helpers import write_camera_folder

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.relight.cameras import (
    Y_UP_TO_Z_UP,
    blender_camera_parameters,
    dataset_cameras,
    object_rotation,
    orbit_cameras,
    project_points,
)


def test_orbit_is_a_half_circle_at_45_degrees():
    cameras = orbit_cameras(num_frames=5, resolution=64)
    centers = camera_centers(cameras.w2c)
    np.testing.assert_allclose(np.linalg.norm(centers, axis=-1), 3.0)
    np.testing.assert_allclose(centers[:, 2], 3.0 * np.sin(np.radians(45.0)))
    # Azimuths -90, -45, 0, 45, 90 around the front view (camera on -y).
    np.testing.assert_allclose(centers[2, :2] / np.linalg.norm(centers[2, :2]), [0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(centers[0, :2] / np.linalg.norm(centers[0, :2]), [-1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(centers[4, :2] / np.linalg.norm(centers[4, :2]), [1.0, 0.0], atol=1e-12)
    assert cameras.names == ["0", "1", "2", "3", "4"]
    # Blender's default camera: 50 mm on a 36 mm sensor.
    np.testing.assert_allclose(cameras.intrinsics[:, 0, 0], 50.0 / 36.0 * 64)


def test_orbit_looks_at_the_origin_with_z_up_in_the_image():
    cameras = orbit_cameras(num_frames=3, resolution=32)
    for w2c, intrinsics in zip(cameras.w2c, cameras.intrinsics):
        origin, above = project_points(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.3]]), w2c, intrinsics)
        np.testing.assert_allclose(origin, [16.0, 16.0], atol=1e-9)
        assert above[1] < origin[1]  # +z is up on screen (rows grow downwards)


def test_object_rotation_stands_y_up_meshes_upright():
    np.testing.assert_allclose(object_rotation("y") @ [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(object_rotation("y") @ [0.0, 0.0, 1.0], [0.0, -1.0, 0.0])  # p_b = (x, -z, y)
    np.testing.assert_allclose(object_rotation("z"), np.eye(3))
    with pytest.raises(ValueError):
        object_rotation("x")


def test_dataset_cameras_see_the_rotated_object_at_the_same_pixels(tmp_path: Path):
    rng = np.random.default_rng(0)
    orbit = orbit_cameras(3, 32, azimuth_center_deg=70.0)
    intrinsics = np.array([[40.0, 0.0, 14.0], [0.0, 40.0, 11.0], [0.0, 0.0, 1.0]])
    folder = write_camera_folder(tmp_path, orbit.w2c, intrinsics, width=30, height=20)
    cameras = dataset_cameras(folder, Y_UP_TO_Z_UP, view_ids=["0", "2"])
    assert cameras.names == ["0", "2"] and (cameras.width, cameras.height) == (30, 20)
    points_dataset = rng.uniform(-0.5, 0.5, size=(10, 3))
    points_blender = points_dataset @ Y_UP_TO_Z_UP.T
    for converted, original in zip(cameras.w2c, orbit.w2c[[0, 2]]):
        np.testing.assert_allclose(
            project_points(points_blender, converted, intrinsics),
            project_points(points_dataset, original.astype(np.float32).astype(np.float64), intrinsics),
            atol=1e-3,
        )


def test_dataset_camera_errors(tmp_path: Path):
    with pytest.raises(NeroDataError, match="camera folder does not exist"):
        dataset_cameras(tmp_path / "missing", np.eye(3))
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(NeroDataError, match="no <k>-camera.pkl"):
        dataset_cameras(tmp_path / "empty", np.eye(3))
    orbit = orbit_cameras(2, 32)
    non_square = np.array([[40.0, 0.0, 16.0], [0.0, 44.0, 16.0], [0.0, 0.0, 1.0]])
    folder = write_camera_folder(tmp_path / "cams", orbit.w2c, non_square, 32, 32)
    with pytest.raises(NeroDataError, match="square pixels"):
        dataset_cameras(folder, np.eye(3))
    with pytest.raises(NeroDataError, match=r"no camera for view ids \['7'\]"):
        dataset_cameras(folder, np.eye(3), view_ids=["7"])


def test_blender_lens_and_shift_from_intrinsics():
    w2c = orbit_cameras(1, 32).w2c[0]
    centred = blender_camera_parameters(w2c, np.array([[50.0, 0, 20.0], [0, 50.0, 15.0], [0, 0, 1]]), 40, 30)
    assert centred["lens_mm"] == pytest.approx(50.0 * 36.0 / 40.0)
    assert centred["shift_x"] == pytest.approx(0.0) and centred["shift_y"] == pytest.approx(0.0)
    # Principal point left of and below the centre: the axis lands at (W/2 - shift_x W, H/2 + shift_y W).
    shifted = blender_camera_parameters(w2c, np.array([[50.0, 0, 12.0], [0, 50.0, 21.0], [0, 0, 1]]), 40, 30)
    assert 20.0 - shifted["shift_x"] * 40 == pytest.approx(12.0)
    assert 15.0 + shifted["shift_y"] * 40 == pytest.approx(21.0)
    camera_to_world = np.asarray(centred["camera_to_world"])
    np.testing.assert_allclose(camera_to_world[:3, 3], camera_centers(w2c[None])[0])
    np.testing.assert_allclose(camera_to_world[3], [0, 0, 0, 1])
    # OpenGL camera axes: the camera looks along its -z, i.e. towards the origin.
    looking = -camera_to_world[:3, 2]
    np.testing.assert_allclose(looking, -camera_to_world[:3, 3] / np.linalg.norm(camera_to_world[:3, 3]), atol=1e-12)
