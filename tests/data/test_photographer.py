"""Photographer frame (method.md §3.5)."""

import numpy as np
import pytest

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.photographer import photographer_w2p
from nero_fixtures import look_at_w2c, ring_centers


@pytest.mark.parametrize("fixed_camera", [False, True])
def test_frame_is_upright_at_the_camera(fixed_camera):
    centers = ring_centers(5, radius=3.0, height=1.2, up_axis=2)
    w2c = np.stack([look_at_w2c(c, np.array([0.1, 0.0, 0.0]), np.array([0, 0, 1.0])) for c in centers])
    w2p = photographer_w2p(w2c, fixed_camera=fixed_camera)
    rotation = w2p[:, :, :3]
    np.testing.assert_allclose(rotation @ np.swapaxes(rotation, 1, 2), np.broadcast_to(np.eye(3), (5, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-12)
    np.testing.assert_allclose(rotation[:, 1], np.tile([0, 0, -1.0], (5, 1)))
    # Z is the horizontal part of the viewing direction.
    view = w2c[:, 2, :3] * [1, 1, 0]
    np.testing.assert_allclose(rotation[:, 2], view / np.linalg.norm(view, axis=1, keepdims=True), atol=1e-12)
    origin = camera_centers(w2c)
    if not fixed_camera:
        origin[:, 2] = 0.0
    np.testing.assert_allclose(np.einsum("nij,nj->ni", rotation, origin) + w2p[:, :, 3], 0.0, atol=1e-12)
    # The camera centre lies on the photographer's z = 0 plane either way.
    camera_in_frame = np.einsum("nij,nj->ni", rotation, camera_centers(w2c)) + w2p[:, :, 3]
    np.testing.assert_allclose(camera_in_frame[:, 2], 0.0, atol=1e-12)


def test_camera_looking_straight_down_faces_its_image_top():
    w2c = look_at_w2c(np.array([0, 0, 3.0]), np.zeros(3), np.array([0, 1.0, 0]))[None]
    w2p = photographer_w2p(w2c)
    assert np.all(np.isfinite(w2p))
    np.testing.assert_allclose(w2p[0, 2, :3], [0, 1.0, 0], atol=1e-12)
