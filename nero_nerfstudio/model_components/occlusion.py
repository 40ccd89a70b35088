"""The occlusion "ground truth" of NeRO's shape stage (method.md §3.8).

Surface samples look along their reflected direction: how much of the current SDF's surface lies between the point
and the unit sphere tells whether the reflection sees the object itself (indirect light, occlusion 1) or the
environment (occlusion 0). The occlusion MLP is trained towards that value.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nero_nerfstudio.model_components.microfacet import NERO_EPS_SPHERE_EXIT, sphere_exit_distance
from nero_nerfstudio.model_components.neus_alpha import entering_surface_weights, sample_pdf_deterministic

SdfFunction = Callable[[Float[Tensor, "num_points 3"]], Float[Tensor, "num_points 1"]]

SURFACE_BAND = 0.01
INSIDE_RADIUS = 0.999


@torch.no_grad()
def occlusion_target(
    sdf_fn: SdfFunction,
    points: Float[Tensor, "num_points 3"],
    reflect_dirs: Float[Tensor, "num_points 3"],
    inv_s: Union[float, Tensor],
    num_march: int = 64,
    num_resample: int = 16,
) -> Float[Tensor, "num_points 1"]:
    """Opacity the current SDF shows along each reflected ray, from the point to the unit sphere.

    March ``num_march`` uniform depths on ``[0, t_exit]``, weight the intervals that enter a surface, draw
    ``num_resample`` deterministic inverse-CDF depths from those weights and return the summed weights of the
    intervals between them (no gradients).

    Args:
        sdf_fn: SDF of points ``[M, 3] -> [M, 1]``.
        points: surface points inside the unit sphere.
        reflect_dirs: unit reflection directions.
        inv_s: the field's current NeuS sharpness ``exp(10 v)``.
    """
    num_points = points.shape[0]
    if num_points == 0:
        return points.new_zeros(0, 1)
    exit_distance = sphere_exit_distance(points, reflect_dirs, eps=NERO_EPS_SPHERE_EXIT)
    steps = torch.linspace(0.0, 1.0, num_march, device=points.device)
    depths = exit_distance * steps

    def sdf_along(depths_: Tensor) -> Tensor:
        march_points = points[:, None, :] + reflect_dirs[:, None, :] * depths_[..., None]
        return sdf_fn(march_points.reshape(-1, 3)).reshape(num_points, -1)

    weights = entering_surface_weights(depths, sdf_along(depths), inv_s)
    resampled = sample_pdf_deterministic(depths, weights, num_resample)
    weights = entering_surface_weights(resampled, sdf_along(resampled), inv_s)
    return weights.sum(dim=-1, keepdim=True)


def select_occlusion_points(
    points: Float[Tensor, "num_samples 3"],
    sdf: Float[Tensor, "num_samples 1"],
    gradients: Float[Tensor, "num_samples 3"],
    directions: Float[Tensor, "num_samples 3"],
    max_points: int,
    generator: Optional[torch.Generator] = None,
) -> Int[Tensor, "num_selected"]:
    """Indices of the samples the occlusion loss uses: near the surface, front-facing, inside radius 0.999.

    Keeps samples with ``|p| < 0.999``, ``|sdf| < 0.01`` and ``grad . d < 0`` (``d`` the ray direction); if there are
    more than ``max_points``, a random subset of ``max_points``.
    """
    selected: Bool[Tensor, "num_samples"] = (
        (points.norm(dim=-1) < INSIDE_RADIUS)
        & (sdf[:, 0].abs() < SURFACE_BAND)
        & ((gradients * directions).sum(dim=-1) < 0.0)
    )
    indices = torch.nonzero(selected, as_tuple=False)[:, 0]
    if indices.shape[0] > max_points:
        keep = torch.randperm(indices.shape[0], device=indices.device, generator=generator)[:max_points]
        indices = indices[keep]
    return indices
