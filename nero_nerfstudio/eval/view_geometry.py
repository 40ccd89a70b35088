"""Per-view geometry for shape evaluation: depth maps lifted to points, and a mesh ray-cast into a view."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from jaxtyping import Bool, Float

from nero_nerfstudio.raycasting.base import MeshRayCaster
from nero_nerfstudio.scenes.ground_truth import pixel_center_rays


def backproject_depth(
    depth: Float[np.ndarray, "H W"],
    mask: Bool[np.ndarray, "H W"],
    w2c: Float[np.ndarray, "3 4"],
    intrinsics: Float[np.ndarray, "3 3"],
) -> Float[np.ndarray, "N 3"]:
    """World points of the masked pixels of a z-depth map, as NeRO's Chamfer evaluator lifts them.

    Pixel ``(u, v)`` is lifted with its **integer** coordinates, ``K^-1 [u z, v z, z]`` (no +0.5), although the
    depth was measured through the pixel centre. This shifts every point by half a pixel in the image plane; GT
    and predicted points are lifted alike, so the shift mostly cancels in the distance, and keeping it makes our
    numbers comparable with NeRO's.
    """
    rows, cols = np.nonzero(mask)
    z = depth[rows, cols].astype(np.float64)
    camera_points = np.stack([cols * z, rows * z, z], axis=-1) @ np.linalg.inv(intrinsics).T
    rotation, translation = w2c[:3, :3], w2c[:3, 3]
    return (camera_points - translation) @ rotation  # R^T (x_cam - t)


def cast_view(
    caster: MeshRayCaster, w2c: Float[np.ndarray, "3 4"], intrinsics: Float[np.ndarray, "3 3"], width: int, height: int
) -> Tuple[Float[np.ndarray, "H W"], Float[np.ndarray, "H W 3"]]:
    """Z-depth and flat outward face normals of a mesh seen through the pixel centres of one camera.

    This replaces NeRO's OpenGL rasterisation of the predicted mesh: the ray through ``(u + 0.5, v + 0.5)`` is
    where a rasteriser samples the pixel.

    Returns:
        z-depth ``[H, W]`` (``inf`` where the mesh is missed) and world normals ``[H, W, 3]`` (zero on misses).
    """
    origins, directions = pixel_center_rays(w2c, intrinsics, width, height)
    directions = directions.reshape(-1, 3)
    hits = caster.cast(
        torch.tensor(origins.reshape(-1, 3), dtype=torch.float32), torch.tensor(directions, dtype=torch.float32)
    )
    # The directions are R^T K^-1 [u, v, 1]: camera z = 1, so z-depth = distance / |direction|.
    z_depth = hits.depth.numpy().astype(np.float64) / np.linalg.norm(directions, axis=-1)
    return z_depth.reshape(height, width), hits.face_normals.numpy().reshape(height, width, 3)


def normal_angular_error_deg(
    pred_normals: Float[np.ndarray, "N 3"], gt_normals: Float[np.ndarray, "N 3"]
) -> Float[np.ndarray, "N"]:
    """Angle in degrees between corresponding normals (both normalised first; inputs must be non-zero)."""
    pred_unit = pred_normals / np.linalg.norm(pred_normals, axis=-1, keepdims=True)
    gt_unit = gt_normals / np.linalg.norm(gt_normals, axis=-1, keepdims=True)
    cosine = np.clip((pred_unit * gt_unit).sum(-1), -1.0, 1.0)
    return np.degrees(np.arccos(cosine))
