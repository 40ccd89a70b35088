"""NeRO's ray sampler (method.md §3.6): uniform + NeuS up-sampling inside the unit sphere, inverse-depth background.

Per ray: ``num_coarse`` uniform depths on the chord ``[near, far]`` around the unit sphere, then ``num_upsample_rounds``
rounds of ``num_upsample_per_round`` deterministic NeuS importance samples, then ``num_background`` depths spaced
in inverse depth from just beyond ``far`` to about ``1000 far``. The result is one sorted list of "inside-range"
depths followed by the background depths, as nerfstudio :class:`RaySamples` whose bins run from each depth to the
next (so a sample's shading point is the middle of its interval, as in NeRO's renderer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple, Type

import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.model_components.ray_samplers import Sampler
from torch import Tensor

from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.model_components.neus_alpha import sample_pdf_deterministic, upsample_weights

SdfFunction = Callable[[Float[Tensor, "num_points 3"]], Float[Tensor, "num_points 1"]]

NEAR_MIN = 1e-3


def sphere_near_far(
    origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"]
) -> Tuple[Float[Tensor, "num_rays 1"], Float[Tensor, "num_rays 1"]]:
    """NeuS near/far: one unit either side of the ray's closest approach to the origin.

    ``near = max(t_mid - 1, 1e-3)`` and ``far = t_mid + 1`` with ``t_mid = -o . d`` (unit ``d``). ``far`` is kept
    beyond ``near`` so that rays pointing away from the object (viewer cameras) still get a valid range.
    """
    t_mid = -(origins * directions).sum(dim=-1, keepdim=True)
    nears = (t_mid - 1.0).clamp_min(NEAR_MIN)
    fars = torch.maximum(t_mid + 1.0, nears + NEAR_MIN)
    return nears, fars


def coarse_depths(
    nears: Float[Tensor, "num_rays 1"], fars: Float[Tensor, "num_rays 1"], num_samples: int, perturb: bool
) -> Float[Tensor, "num_rays num_samples"]:
    """Evenly spaced depths on ``[near, far]``; in training the whole set moves by one offset per ray in
    ``[-1/num_samples, 1/num_samples)`` (absolute units)."""
    steps = torch.linspace(0.0, 1.0, num_samples, device=nears.device)
    depths = nears + (fars - nears) * steps
    if perturb:
        depths = depths + (torch.rand_like(nears) - 0.5) * (2.0 / num_samples)
    return depths


def background_depths(
    fars: Float[Tensor, "num_rays 1"], num_samples: int, perturb: bool
) -> Float[Tensor, "num_rays num_samples"]:
    """Inverse-depth spaced depths beyond ``far`` (NeRF++ outer samples), ascending.

    Values ``s = linspace(1e-3, 1 - 1/(n+1), n)`` (stratified-jittered within their bins in training) become
    ``t = far / s + 1/n``, from just beyond ``far`` to about ``1000 far``.
    """
    values = torch.linspace(1e-3, 1.0 - 1.0 / (num_samples + 1), num_samples, device=fars.device)
    values = values.expand(fars.shape[0], num_samples)
    if perturb:
        mids = 0.5 * (values[:, 1:] + values[:, :-1])
        upper = torch.cat([mids, values[:, -1:]], dim=-1)
        lower = torch.cat([values[:, :1], mids], dim=-1)
        values = lower + (upper - lower) * torch.rand_like(values)
    return fars / torch.flip(values, dims=[-1]) + 1.0 / num_samples


def points_at(
    origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"], depths: Float[Tensor, "num_rays n"]
) -> Float[Tensor, "num_rays n 3"]:
    """``o + t d`` for every depth of every ray."""
    return origins[:, None, :] + directions[:, None, :] * depths[..., None]


@dataclass
class StageOneSamplerConfig(InstantiateConfig):
    """What the Stage I model asks of a sampler config: ``setup()`` gives a sampler called as ``sampler(ray_bundle,
    sdf_fn=..., inv_s=...)`` -> ``RaySamples`` (optionally with a ``metadata["active"]`` mask). The model builds its
    sampler from this config alone, so another sampler is swapped in by giving the model another config."""


@dataclass
class NeroSamplerConfig(StageOneSamplerConfig):
    """Configuration of :class:`NeroSampler` (defaults = NeRO's)."""

    _target: Type = field(default_factory=lambda: NeroSampler)
    num_coarse: int = 64
    """Uniform samples on the unit-sphere chord."""
    num_upsample_rounds: int = 4
    """Rounds of NeuS up-sampling."""
    num_upsample_per_round: int = 16
    """Samples added per up-sampling round."""
    num_background: int = 32
    """Inverse-depth samples beyond the sphere."""
    base_variance: float = 64.0
    """NeuS sharpness of up-sampling round i is base_variance * 2^i."""
    clip_sample_variance: bool = True
    """Cap the up-sampling sharpness at the field's current inv_s."""


class NeroSampler(Sampler):
    """Sampler of NeRO's shape stage (method.md §3.6).

    Args:
        config: the sampler's settings (:class:`NeroSamplerConfig`).
    """

    def __init__(self, config: NeroSamplerConfig) -> None:
        super().__init__()
        if config.num_coarse < 2:
            raise NeroSettingsError("num_coarse", f"must be at least 2, got {config.num_coarse}")
        if config.num_background < 1:
            raise NeroSettingsError("num_background", f"must be at least 1, got {config.num_background}")
        self.config = config

    @property
    def num_inside(self) -> int:
        """Number of depths on the sphere chord (coarse + up-sampled)."""
        return self.config.num_coarse + self.config.num_upsample_rounds * self.config.num_upsample_per_round

    @property
    def num_samples_per_ray(self) -> int:
        return self.num_inside + self.config.num_background

    @torch.no_grad()
    def upsample(
        self,
        origins: Float[Tensor, "num_rays 3"],
        directions: Float[Tensor, "num_rays 3"],
        depths: Float[Tensor, "num_rays num_coarse"],
        sdf_fn: SdfFunction,
        inv_s: Optional[float] = None,
    ) -> Float[Tensor, "num_rays num_inside"]:
        """NeuS hierarchical up-sampling; the SDF is evaluated once per new depth (never after the last round)."""
        num_rays = depths.shape[0]
        points = points_at(origins, directions, depths)
        sdf = sdf_fn(points.reshape(-1, 3)).reshape(num_rays, -1)
        radius = points.norm(dim=-1)
        for round_index in range(self.config.num_upsample_rounds):
            sharpness = self.config.base_variance * 2**round_index
            if self.config.clip_sample_variance and inv_s is not None:
                sharpness = min(sharpness, inv_s)
            weights = upsample_weights(depths, sdf, radius, sharpness)
            new_depths = sample_pdf_deterministic(depths, weights, self.config.num_upsample_per_round)
            depths, order = torch.sort(torch.cat([depths, new_depths], dim=-1), dim=-1)
            if round_index < self.config.num_upsample_rounds - 1:
                new_points = points_at(origins, directions, new_depths)
                new_sdf = sdf_fn(new_points.reshape(-1, 3)).reshape(num_rays, -1)
                sdf = torch.gather(torch.cat([sdf, new_sdf], dim=-1), 1, order)
                radius = torch.gather(torch.cat([radius, new_points.norm(dim=-1)], dim=-1), 1, order)
        return depths

    def generate_ray_samples(
        self,
        ray_bundle: Optional[RayBundle] = None,
        sdf_fn: Optional[SdfFunction] = None,
        inv_s: Optional[float] = None,
    ) -> RaySamples:
        """Samples for a flat bundle of unit-direction rays.

        Args:
            ray_bundle: ``[num_rays]`` rays; its nears/fars are ignored (the unit sphere sets the range).
            sdf_fn: SDF of points ``[M, 3] -> [M, 1]`` (called without gradients).
            inv_s: the field's current NeuS sharpness, used when ``clip_sample_variance`` is on.

        Returns:
            ``[num_rays, num_inside + num_background]`` samples; bins run from each depth to the next (the last
            bin repeats the previous length).
        """
        if ray_bundle is None or sdf_fn is None:
            raise ValueError("NeroSampler needs a ray bundle and an SDF function")
        if ray_bundle.origins.dim() != 2:
            raise ValueError(f"NeroSampler expects a flat ray bundle [num_rays], got shape {ray_bundle.shape}")
        origins, directions = ray_bundle.origins, ray_bundle.directions
        nears, fars = sphere_near_far(origins, directions)
        perturb = self.training
        inside = coarse_depths(nears, fars, self.config.num_coarse, perturb)
        if self.config.num_upsample_rounds > 0 and self.config.num_upsample_per_round > 0:
            inside = self.upsample(origins, directions, inside, sdf_fn, inv_s)
        depths = torch.cat([inside, background_depths(fars, self.config.num_background, perturb)], dim=-1)
        deltas = depths[:, 1:] - depths[:, :-1]
        deltas = torch.cat([deltas, deltas[:, -1:]], dim=-1)
        return ray_bundle.get_ray_samples(bin_starts=depths[..., None], bin_ends=(depths + deltas)[..., None])
