"""The photographer ("human") frame of each camera, where NeRO's photographer light lives (method.md §3.5).

The frame stands upright at the camera: its z = 0 plane is the vertical plane through the (dropped) camera centre,
orthogonal to the horizontal viewing direction. Assumes a z-up world.
"""

from __future__ import annotations

import numpy as np

from nero_nerfstudio.core.camera_conventions import camera_centers

_WORLD_DOWN = np.array([0.0, 0.0, -1.0])


def photographer_w2p(w2c: np.ndarray, fixed_camera: bool = False) -> np.ndarray:
    """World-to-photographer transforms ``[R_h | t_h]``.

    Args:
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses in a z-up world.
        fixed_camera: keep the camera height; otherwise the photographer stands at the object's height (z = 0).

    Returns:
        ``[N, 3, 4]`` rows ``X, Y, Z`` of ``R_h`` with ``Y = (0, 0, -1)``, ``Z`` the horizontal viewing direction,
        ``X = Y x Z``, and ``t_h = -R_h c``.
    """
    w2c = np.asarray(w2c, dtype=np.float64)
    centers = camera_centers(w2c)
    if not fixed_camera:
        centers[:, 2] = 0.0

    view_horizontal = w2c[:, 2, :3].copy()
    view_horizontal[:, 2] = 0.0
    # A camera looking straight down has no horizontal viewing direction; the top of its image (-y_cam) is where the
    # photographer faces then.
    image_up_horizontal = -w2c[:, 1, :3].copy()
    image_up_horizontal[:, 2] = 0.0
    vertical = np.linalg.norm(view_horizontal, axis=-1) < 1e-6
    view_horizontal[vertical] = image_up_horizontal[vertical]
    z_axis = view_horizontal / np.linalg.norm(view_horizontal, axis=-1, keepdims=True)

    y_axis = np.broadcast_to(_WORLD_DOWN, z_axis.shape)
    x_axis = np.cross(y_axis, z_axis, axis=-1)
    rotation = np.stack([x_axis, y_axis, z_axis], axis=1)
    translation = -(rotation @ centers[:, :, None])
    return np.concatenate([rotation, translation], axis=-1)
