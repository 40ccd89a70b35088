"""Where a reflected ray meets the photographer's plane (method.md §3.5), as input to the photographer-light MLP.

The photographer frame of a camera (``nero_nerfstudio.core.photographer``) has its z = 0 plane vertical, through
the camera centre and facing the object. A reflected ray that hits this plane in front of the point sees the
photographer; the hit position, scaled, is encoded with the integrated positional encoding.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from jaxtyping import Bool, Float
from torch import Tensor

STAGE_ONE_PHOTOGRAPHER_LIGHT_BIAS = math.log(0.01)
"""Final-layer bias of the split-sum shader's photographer MLP (Stage I): light and weight start near 0.01."""
STAGE_TWO_PHOTOGRAPHER_LIGHT_BIAS = math.log(0.02)
"""Final-layer bias of Stage II's photographer light field: light and weight start near 0.02. A separate network
from Stage I's, which NeRO initialises differently."""
PHOTOGRAPHER_IPE_SCALES = 6
"""Scales of the integrated positional encoding of the plane hit (both stages)."""
PLANE_COORDINATE_SCALE = 0.3
"""Plane coordinates (normalised-frame units) are multiplied by this before encoding."""
MAX_PLANE_RADIUS = 1.5
"""Hits whose scaled plane position is this far (or farther) from the camera centre are ignored."""
MIN_ABS_DIRECTION_Z = 1e-4
"""Directions this close to parallel with the plane never hit it."""


def intersect_photographer_plane(
    points: Float[Tensor, "num_points 3"],
    directions: Float[Tensor, "num_points 3"],
    photographer_w2p: Float[Tensor, "num_points 3 4"],
    roughness: Optional[Float[Tensor, "num_points 1"]] = None,
) -> Tuple[Float[Tensor, "num_points 2"], Float[Tensor, "num_points 1"], Bool[Tensor, "num_points 1"]]:
    """Intersect rays ``points + t directions`` with each point's photographer plane.

    Args:
        points: ``[N, 3]`` ray origins (shading points) in the normalised frame.
        directions: ``[N, 3]`` ray directions (the reflection direction in Stage I).
        photographer_w2p: ``[N, 3, 4]`` world-to-photographer transform ``[R_h | t_h]`` of each point's camera.
        roughness: ``[N, 1]`` roughness widening the footprint (Stage I), or ``None`` for a sharp hit (Stage II).

    Returns:
        ``mean`` ``[N, 2]`` = ``0.3 * (hit x, hit y)`` in the photographer frame (0 where invalid),
        ``variance`` ``[N, 1]`` = ``roughness * (0.3 t)^2`` (0 where invalid or without roughness), and
        ``valid`` ``[N, 1]``: the ray hits the plane in front of the point (``t > 0``), not grazing
        (``|d_z| > 1e-4``), with ``|mean| < 1.5``.
    """
    rotation = photographer_w2p[..., :3]  # [N, 3, 3]
    translation = photographer_w2p[..., 3]  # [N, 3]
    points_p = (rotation @ points.unsqueeze(-1)).squeeze(-1) + translation
    directions_p = (rotation @ directions.unsqueeze(-1)).squeeze(-1)

    direction_z = directions_p[..., 2:3]
    crosses = direction_z.abs() > MIN_ABS_DIRECTION_Z
    safe_direction_z = torch.where(crosses, direction_z, torch.ones_like(direction_z))
    distance = -points_p[..., 2:3] / safe_direction_z  # [N, 1]
    hit_xy = points_p[..., :2] + distance * directions_p[..., :2]
    mean = PLANE_COORDINATE_SCALE * hit_xy
    valid = crosses & (distance > 0) & (mean.norm(dim=-1, keepdim=True) < MAX_PLANE_RADIUS)

    mean = torch.where(valid, mean, torch.zeros_like(mean))
    if roughness is None:
        variance = torch.zeros_like(distance)
    else:
        variance = torch.where(valid, roughness * (PLANE_COORDINATE_SCALE * distance) ** 2, torch.zeros_like(distance))
    return mean, variance, valid
