"""Conversions between NeRO's camera convention and nerfstudio's.

NeRO stores world-to-camera poses ``[R | t]`` with OpenCV camera axes (x right, y down, z forward).
nerfstudio stores camera-to-world matrices with OpenGL axes (x right, y up, looking along -z).
"""

from __future__ import annotations

import numpy as np

# diag(1, -1, -1) flips the camera's y and z axes: OpenCV <-> OpenGL.
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def opencv_w2c_to_opengl_c2w(w2c: np.ndarray) -> np.ndarray:
    """World-to-camera (OpenCV) to camera-to-world (OpenGL).

    Args:
        w2c: ``[..., 3, 4]`` rotation and translation, ``x_cam = R x_world + t``.

    Returns:
        ``[..., 3, 4]`` camera-to-world with OpenGL camera axes.
    """
    rotation = w2c[..., :3, :3]
    translation = w2c[..., :3, 3:]
    rotation_c2w = np.swapaxes(rotation, -1, -2)
    center = -rotation_c2w @ translation
    return np.concatenate([rotation_c2w @ _FLIP_YZ, center], axis=-1)


def opengl_c2w_to_opencv_w2c(c2w: np.ndarray) -> np.ndarray:
    """Inverse of :func:`opencv_w2c_to_opengl_c2w`.

    Args:
        c2w: ``[..., 3, 4]`` camera-to-world with OpenGL camera axes.

    Returns:
        ``[..., 3, 4]`` world-to-camera with OpenCV camera axes.
    """
    rotation_c2w = c2w[..., :3, :3] @ _FLIP_YZ
    center = c2w[..., :3, 3:]
    rotation = np.swapaxes(rotation_c2w, -1, -2)
    return np.concatenate([rotation, -rotation @ center], axis=-1)


def camera_centers(w2c: np.ndarray) -> np.ndarray:
    """Camera centres ``c = -R^T t`` of world-to-camera poses ``[..., 3, 4]`` -> ``[..., 3]``."""
    rotation = w2c[..., :3, :3]
    translation = w2c[..., :3, 3:]
    return (-np.swapaxes(rotation, -1, -2) @ translation)[..., 0]
