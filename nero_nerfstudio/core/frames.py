"""The one transform between the dataset frame (files on disk) and the normalised frame (what the models see).

nerfstudio's parsers report ``dataparser_transform`` ``T = [R | t]`` (``[3, 4]``) and ``dataparser_scale`` ``s`` with
``x_n = s (R x_d + t)``. Meshes go in (Stage II's mesh) and out (exports) through the functions here only.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float


def dataset_to_normalised_matrix(transform: Float[np.ndarray, "3 4"], scale: float) -> Float[np.ndarray, "4 4"]:
    """Homogeneous ``[4, 4]`` matrix of ``x_n = s (R x_d + t)``.

    Raises:
        ValueError: ``transform`` is not ``[3, 4]`` or ``scale`` is not positive.
    """
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape != (3, 4):
        raise ValueError(f"dataparser_transform must be [3, 4], got {transform.shape}")
    if not scale > 0:
        raise ValueError(f"dataparser_scale must be positive, got {scale}")
    matrix = np.eye(4)
    matrix[:3, :] = float(scale) * transform
    return matrix


def normalised_to_dataset_matrix(transform: Float[np.ndarray, "3 4"], scale: float) -> Float[np.ndarray, "4 4"]:
    """Inverse of :func:`dataset_to_normalised_matrix`: ``x_d = R^-1 (x_n / s - t)``."""
    return np.linalg.inv(dataset_to_normalised_matrix(transform, scale))


def dataset_to_normalised(
    points: Float[np.ndarray, "num_points 3"], transform: Float[np.ndarray, "3 4"], scale: float
) -> Float[np.ndarray, "num_points 3"]:
    """Dataset-frame points moved to the normalised frame (float64)."""
    matrix = dataset_to_normalised_matrix(transform, scale)
    return np.asarray(points, dtype=np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def dataset_plane_to_normalised(
    plane: Float[np.ndarray, "4"], transform: Float[np.ndarray, "3 4"], scale: float
) -> Float[np.ndarray, "4"]:
    """A plane ``n . x + d = 0`` of the dataset frame in the normalised frame, with a unit normal.

    From ``x_d = A x_n + b`` (:func:`normalised_to_dataset_matrix`): ``(A^T n) . x_n + (n . b + d) = 0``.
    """
    matrix = normalised_to_dataset_matrix(transform, scale)
    plane = np.asarray(plane, dtype=np.float64)
    normal = matrix[:3, :3].T @ plane[:3]
    offset = float(plane[:3] @ matrix[:3, 3] + plane[3])
    norm = float(np.linalg.norm(normal))
    return np.concatenate([normal, [offset]]) / norm
