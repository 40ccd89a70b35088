"""Stage II lights (method.md §4.3): outer (environment) light, inner (object self-emission) light, photographer light.

Incident radiance along a sampled direction ``w`` from a surface point ``x`` is found by casting ``x + 1e-5 w``
against the fixed mesh:

* miss: ``(1 - w_h) L_outer + w_h L_h`` (``L_outer`` alone without the photographer light);
* hit at ``x'`` with outward face normal ``n'``: ``L_inner(x', reflect(-w, n'))``, a network that memorises the
  radiance leaving the object (no recursion);
* hit at depth <= 1e-5 (the ray starts inside a face): 0.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Tuple

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nero_nerfstudio.field_components.encodings import (
    FrequencyEncoding,
    IntegratedDirectionalEncoding,
    integrated_positional_encoding,
)
from nero_nerfstudio.field_components.mlp import WeightNormMLP
from nero_nerfstudio.model_components.microfacet import reflect, sphere_exit_distance
from nero_nerfstudio.model_components.photographer_light import (
    PHOTOGRAPHER_IPE_SCALES,
    STAGE_TWO_PHOTOGRAPHER_LIGHT_BIAS,
    intersect_photographer_plane,
)
from nero_nerfstudio.raycasting.base import MeshRayCaster

OuterLightType = Literal["direction", "sphere_direction"]

LIGHT_BIAS = math.log(0.5)
"""Initial output of the outer and inner lights: 0.5."""
LIGHT_EXP_MAX = 5.0
"""Exponent cap of the outer and inner lights: radiance <= e^5."""
SECONDARY_RAY_OFFSET = 1e-5
"""Secondary rays start this far along their direction, and hits this close are treated as self-hits."""
MAX_START_RADIUS = 0.999


def sphere_exit_points(
    points: Float[Tensor, "*batch 3"], directions: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 3"]:
    """Where rays from ``points`` along unit ``directions`` leave the unit sphere.

    Points with ``|x| > 0.999`` are first multiplied by 0.999 (NeRO's Stage II rule; the result is not
    re-normalised, so exit points of such rays can lie marginally off the sphere).
    """
    norm = points.norm(dim=-1, keepdim=True)
    points = torch.where(norm > MAX_START_RADIUS, points * MAX_START_RADIUS, points)
    return points + directions * sphere_exit_distance(points, directions)


class OuterLightField(nn.Module):
    """Environment light seen along a direction.

    ``direction`` (synthetic scenes): ``IDE(w, 0)`` -> radiance, a distant environment. ``sphere_direction``
    (real/custom): ``[IDE(w, 0), IDE(q, 0)]`` with ``q`` where the ray leaves the unit sphere, a near-field
    environment that depends on the position.

    Args:
        light_type: ``"direction"`` or ``"sphere_direction"``.
        hidden_dim: MLP width (NeRO: 256).
        exp_max: exponent cap (NeRO: 5).
    """

    def __init__(self, light_type: OuterLightType, hidden_dim: int = 256, exp_max: float = LIGHT_EXP_MAX) -> None:
        super().__init__()
        if light_type not in ("direction", "sphere_direction"):
            raise ValueError(f"unknown outer light type {light_type!r}; use 'direction' or 'sphere_direction'")
        self.light_type = light_type
        self.direction_encoding = IntegratedDirectionalEncoding()
        in_dim = self.direction_encoding.get_out_dim() * (2 if light_type == "sphere_direction" else 1)
        self.mlp = WeightNormMLP(in_dim, 3, hidden_dim, 4, output_activation="exp", exp_max=exp_max, final_bias=LIGHT_BIAS)

    def forward(
        self, points: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"]
    ) -> Float[Tensor, "num_rays 3"]:
        """Radiance arriving at ``points`` from unit ``directions``."""
        no_blur = torch.zeros_like(directions[:, :1])
        encoded = self.direction_encoding(directions, no_blur)
        if self.light_type == "sphere_direction":
            exit_points = sphere_exit_points(points, directions)
            encoded = torch.cat([encoded, self.direction_encoding(exit_points, no_blur)], dim=-1)
        return self.mlp(encoded)


class InnerLightField(nn.Module):
    """Radiance leaving the object at a secondary hit ``x'`` towards the shading point.

    Input ``[gamma_8(x'), IDE(reflect(-w, n'), 0)]`` (``w`` the secondary ray's direction, ``n'`` the hit's face
    normal).

    Args:
        hidden_dim: MLP width (NeRO: 256).
        num_frequencies: octaves of the position encoding (NeRO: 8).
        exp_max: exponent cap (NeRO: 5).
    """

    def __init__(self, hidden_dim: int = 256, num_frequencies: int = 8, exp_max: float = LIGHT_EXP_MAX) -> None:
        super().__init__()
        self.position_encoding = FrequencyEncoding(3, num_frequencies)
        self.direction_encoding = IntegratedDirectionalEncoding()
        in_dim = self.position_encoding.get_out_dim() + self.direction_encoding.get_out_dim()
        self.mlp = WeightNormMLP(in_dim, 3, hidden_dim, 4, output_activation="exp", exp_max=exp_max, final_bias=LIGHT_BIAS)

    def forward(
        self,
        hit_points: Float[Tensor, "num_rays 3"],
        hit_normals: Float[Tensor, "num_rays 3"],
        directions: Float[Tensor, "num_rays 3"],
    ) -> Float[Tensor, "num_rays 3"]:
        """Radiance from ``hit_points`` back along the secondary rays of unit ``directions``."""
        reflect_dir = reflect(-directions, hit_normals)
        no_blur = torch.zeros_like(directions[:, :1])
        encoded = torch.cat([self.position_encoding(hit_points), self.direction_encoding(reflect_dir, no_blur)], dim=-1)
        return self.mlp(encoded)


class PhotographerLightField(nn.Module):
    """Light reflected off the photographer (method.md §3.5, Stage II: sharp hits, bias log 0.02, values <= 1).

    Args:
        hidden_dim: MLP width (NeRO: 256).
    """

    def __init__(self, hidden_dim: int = 256) -> None:
        super().__init__()
        in_dim = 4 * PHOTOGRAPHER_IPE_SCALES
        self.mlp = WeightNormMLP(
            in_dim, 4, hidden_dim, 4, output_activation="exp", final_bias=STAGE_TWO_PHOTOGRAPHER_LIGHT_BIAS
        )

    def forward(
        self,
        points: Float[Tensor, "num_rays 3"],
        directions: Float[Tensor, "num_rays 3"],
        photographer_w2p: Float[Tensor, "num_rays 3 4"],
    ) -> Tuple[Float[Tensor, "num_rays 3"], Float[Tensor, "num_rays 1"]]:
        """``(light [N, 3], weight [N, 1] in [0, 1])``; both 0 where the ray misses the photographer's plane."""
        plane_mean, plane_variance, plane_valid = intersect_photographer_plane(points, directions, photographer_w2p)
        output = self.mlp(integrated_positional_encoding(plane_mean, plane_variance, PHOTOGRAPHER_IPE_SCALES))
        output = output * plane_valid.to(points.dtype)
        return output[:, :3], output[:, 3:4].clamp(0.0, 1.0)


class StageTwoLights(nn.Module):
    """The three lights and the visibility rule that picks between them.

    Args:
        outer_light_type: see :class:`OuterLightField`.
        photographer_light: whether to model the photographer.
        hidden_dim: width of every light MLP.
        exp_max: exponent cap of the outer and inner lights.
    """

    def __init__(
        self,
        outer_light_type: OuterLightType,
        photographer_light: bool,
        hidden_dim: int = 256,
        exp_max: float = LIGHT_EXP_MAX,
    ) -> None:
        super().__init__()
        self.outer_light = OuterLightField(outer_light_type, hidden_dim, exp_max)
        self.inner_light = InnerLightField(hidden_dim, exp_max=exp_max)
        self.photographer_light = PhotographerLightField(hidden_dim) if photographer_light else None

    def incident_radiance(
        self,
        points: Float[Tensor, "num_points 3"],
        directions: Float[Tensor, "num_points num_samples 3"],
        ray_caster: MeshRayCaster,
        photographer_w2p: Optional[Float[Tensor, "num_points 3 4"]] = None,
    ) -> Float[Tensor, "num_points num_samples 3"]:
        """Radiance arriving at each surface point from each of its unit sample ``directions``.

        Each network only runs on the rays it applies to (outer/photographer on misses, inner on hits).
        """
        num_points, num_samples, _ = directions.shape
        flat_dirs = directions.reshape(-1, 3)
        flat_points = points[:, None, :].expand(num_points, num_samples, 3).reshape(-1, 3)
        with torch.no_grad():
            hits = ray_caster.cast(flat_points + SECONDARY_RAY_OFFSET * flat_dirs, flat_dirs)
        radiance = torch.zeros_like(flat_dirs)

        miss = ~hits.hit_mask
        if bool(miss.any()):
            miss_points, miss_dirs = flat_points[miss], flat_dirs[miss]
            environment = self.outer_light(miss_points, miss_dirs)
            if self.photographer_light is not None:
                if photographer_w2p is None:
                    raise ValueError("the photographer light is on but no photographer_w2p was given")
                poses = photographer_w2p[:, None].expand(num_points, num_samples, 3, 4).reshape(-1, 3, 4)[miss]
                light, weight = self.photographer_light(miss_points, miss_dirs, poses)
                environment = (1.0 - weight) * environment + weight * light
            radiance = radiance.index_put((miss.nonzero(as_tuple=True)[0],), environment)

        # Hits at (almost) zero distance mean the ray started inside a face: no light.
        lit_hit = hits.hit_mask & (hits.depth > SECONDARY_RAY_OFFSET)
        if bool(lit_hit.any()):
            inner = self.inner_light(hits.points[lit_hit], hits.face_normals[lit_hit], flat_dirs[lit_hit])
            radiance = radiance.index_put((lit_hit.nonzero(as_tuple=True)[0],), inner)
        return radiance.reshape(num_points, num_samples, 3)
