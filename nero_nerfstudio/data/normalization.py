"""The similarity that puts a real (COLMAP) scene into NeRO's normalised frame (method.md §2.2).

``x_n = s * R_n (x_colmap - c)``: the centre ``c`` of the object's bounding sphere goes to the origin, its radius
``1 / s`` to 1, "up" to +z and the part of "forward" orthogonal to up to +x (the sphere, up and forward come from
:mod:`nero_nerfstudio.data.object_frame`). Pure numpy, no file access; the
``source`` arguments only name the file an error message should point at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.errors import NeroDataError

# |cos(up, forward)| above this leaves forward with almost no component orthogonal to up.
_MAX_UP_FORWARD_COS = 0.99


def _unit(vector: np.ndarray, source: Union[str, Path], name: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64).reshape(-1)
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise NeroDataError(source, f"{name} must be three finite numbers, got {vector.tolist()}")
    norm = np.linalg.norm(vector)
    if norm < 1e-12:
        raise NeroDataError(source, f"{name} vector is zero")
    return vector / norm


def frame_rotation(up: np.ndarray, forward: np.ndarray, source: Union[str, Path] = "up/forward") -> np.ndarray:
    """``[3, 3]`` rotation whose rows are x (forward made orthogonal to up), y (up x forward) and z (up).

    Raises:
        NeroDataError: a vector is not three finite numbers, is zero, or up and forward are (nearly) parallel.
    """
    up_unit = _unit(up, source, "up")
    forward_unit = _unit(forward, source, "forward")
    cos_angle = float(up_unit @ forward_unit)
    if abs(cos_angle) > _MAX_UP_FORWARD_COS:
        raise NeroDataError(
            source, f"up and forward are (nearly) parallel (cos = {cos_angle:.4f}); forward must point sideways"
        )
    y_axis = np.cross(up_unit, forward_unit)
    y_axis /= np.linalg.norm(y_axis)
    x_axis = np.cross(y_axis, up_unit)
    x_axis /= np.linalg.norm(x_axis)
    return np.stack([x_axis, y_axis, up_unit], axis=0)


def apply_to_points(points: np.ndarray, rotation: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """``[P, 3]`` dataset-frame points -> ``[P, 3]`` normalised points ``s R (x - c)``."""
    return scale * (np.asarray(points) - center) @ rotation.T


def apply_to_w2c(w2c: np.ndarray, rotation: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """Rewrites world-to-camera poses for the normalised world.

    From ``x_cam = R x + t`` and ``x = R_n^T x_n / s + c``: ``R' = R R_n^T`` and ``t' = s (t + R c)``; the camera
    coordinates are scaled by ``s`` too, which leaves the image projection unchanged.

    Args:
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses in the dataset frame.

    Returns:
        ``[N, 3, 4]`` poses in the normalised frame.
    """
    w2c = np.asarray(w2c, dtype=np.float64)
    camera_rotation = w2c[:, :3, :3]
    translation = w2c[:, :3, 3]
    new_rotation = camera_rotation @ rotation.T
    new_translation = scale * (translation + camera_rotation @ center)
    return np.concatenate([new_rotation, new_translation[:, :, None]], axis=-1)


def check_cameras_outside_unit_sphere(
    w2c: np.ndarray, source: Union[str, Path] = "object point cloud", sphere_origin: str = ""
) -> None:
    """Raises when a normalised camera sits inside the unit sphere, where the object is assumed to be.

    Args:
        w2c: ``[N, 3, 4]`` world-to-camera poses in the normalised frame.
        source: file (or folder) named in the error.
        sphere_origin: how the sphere was found, for the message.
    """
    distances = np.linalg.norm(camera_centers(np.asarray(w2c)), axis=-1)
    inside = np.flatnonzero(distances <= 1.0)
    if len(inside) > 0:
        origin = f" (sphere from: {sphere_origin})" if sphere_origin else ""
        raise NeroDataError(
            source,
            f"{len(inside)} camera(s) end up inside the object's bounding sphere{origin} (closest at distance "
            f"{distances.min():.3f} <= 1, camera index {int(inside[0])}); crop the point cloud to the object only, "
            "or give the sphere with --object-center/--object-radius or an edited nero_frame.json",
        )


def camera_ring_up(
    centers: np.ndarray,
    optical_axes: np.ndarray,
    object_center: np.ndarray,
    source: Union[str, Path] = "cameras",
) -> np.ndarray:
    """``[3]`` unit normal of the plane the cameras lie closest to (least squares), signed to point from the object
    towards the cameras (people photograph from above); when the cameras are level with the object, signed against
    the mean viewing direction (cameras look down, against up).

    Args:
        centers: ``[N, 3]`` camera centres.
        optical_axes: ``[N, 3]`` viewing directions (third row of each OpenCV world-to-camera rotation).
        object_center: ``[3]`` object centre.
        source: file named in errors.
    """
    centers = np.asarray(centers, dtype=np.float64)
    optical_axes = np.asarray(optical_axes, dtype=np.float64)
    object_center = np.asarray(object_center, dtype=np.float64)
    if len(centers) < 3:
        raise NeroDataError(source, f"need at least 3 cameras to estimate up, got {len(centers)}")
    offsets = centers - centers.mean(axis=0)
    _, singular_values, right_vectors = np.linalg.svd(offsets, full_matrices=False)
    if singular_values[1] < 1e-6 * max(singular_values[0], 1e-12):
        raise NeroDataError(source, "cameras lie on a line; cannot estimate the up direction, give --up and --forward")
    up = right_vectors[2]
    height = float(up @ (centers.mean(axis=0) - object_center))
    spread = float(np.linalg.norm(offsets, axis=1).mean())
    if abs(height) > 1e-3 * spread:
        return up if height > 0 else -up
    return up if float(up @ optical_axes.mean(axis=0)) < 0 else -up


def forward_towards_camera(
    camera_center: np.ndarray, object_center: np.ndarray, up: np.ndarray, source: Union[str, Path] = "cameras"
) -> np.ndarray:
    """``[3]`` unit direction from ``object_center`` towards a camera, made orthogonal to the unit ``up``."""
    to_camera = np.asarray(camera_center, dtype=np.float64) - np.asarray(object_center, dtype=np.float64)
    forward = to_camera - (to_camera @ up) * up
    norm = float(np.linalg.norm(forward))
    if norm < 1e-9 * max(float(np.linalg.norm(to_camera)), 1e-12):
        raise NeroDataError(
            source, "the first camera is straight above the object; cannot pick forward, give --up and --forward"
        )
    return forward / norm
