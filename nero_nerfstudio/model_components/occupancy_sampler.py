"""Empty-space skipping for Stage I: a cached grid of the SDF, refreshed from the field (method.md §3.11).

The grid caches the SDF at its cell centres (refreshed every few training steps). Each ray's chord through the unit
sphere is cut into evenly spaced bins, and a bin is kept only where the cached SDF, trilinearly interpolated at its
middle, says the surface is near: ``|sdf| <= max(cell_margin * cell, band / inv_s) + 1 / num_march``. The first
bound keeps the bin that holds a zero crossing despite interpolation error and a cache a few steps old; the second
keeps every bin whose NeuS opacity is still visible while the surface is blurry (a wider band in evaluation, whose
opacity is not cos-annealed); the last is half the longest bin, since a bin's opacity looks at its ends. Rays that
miss the object cost nothing inside the sphere, and as ``inv_s`` grows only a few bins per surface crossing remain.

Unlike nerfacc's ``OccGridEstimator`` (a CUDA kernel that marches a density grid), this is plain torch over a fixed
set of depths, so it runs the same on a CPU and a GPU; the rest of Stage I sees ordinary nerfstudio ``RaySamples``
with a ``metadata["active"]`` mask (inactive samples get no field evaluation and zero opacity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.model_components.ray_samplers import Sampler
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.model_components.nero_sampler import (
    SdfFunction,
    StageOneSamplerConfig,
    background_depths,
    sphere_near_far,
)

ACTIVE_KEY = "active"
"""``RaySamples.metadata`` key of the ``[num_rays, num_samples, 1]`` mask of samples worth evaluating."""


def grid_centres(resolution: int, device: torch.device) -> Float[Tensor, "res res res 3"]:
    """Cell centres of a ``resolution^3`` grid over ``[-1, 1]^3``; ``centres[i, j, k]`` is at ``(x_i, y_j, z_k)``."""
    coordinates = (torch.arange(resolution, device=device, dtype=torch.float32) + 0.5) * (2.0 / resolution) - 1.0
    return torch.stack(torch.meshgrid(coordinates, coordinates, coordinates, indexing="ij"), dim=-1)


def skip_threshold(resolution: int, num_march: int, inv_s: float, cell_margin: float, band: float) -> float:
    """``|sdf|`` at a bin's middle above which the bin is skipped: ``max(cell_margin * cell, band / inv_s)`` plus half
    the longest bin (``1 / num_march``), since the NeuS opacity of a bin looks at its ends."""
    return max(cell_margin * 2.0 / resolution, band / max(inv_s, 1e-6)) + 1.0 / num_march


def interpolate_sdf(
    sdf_volume: Float[Tensor, "res res res"], points: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch"]:
    """Trilinear interpolation of SDF values stored at the cell centres (``sdf_volume[i, j, k]`` at ``x_i, y_j,
    z_k`` of :func:`grid_centres`) at ``points`` (clamped to the border outside ``[-1, 1]^3``)."""
    # grid_sample indexes its volume as [z, y, x] and, without align_corners, puts values at cell centres.
    volume = sdf_volume.permute(2, 1, 0)[None, None]
    coordinates = points.reshape(1, 1, 1, -1, 3).to(volume.dtype)
    sampled = F.grid_sample(volume, coordinates, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.reshape(points.shape[:-1])


def sphere_chord(
    origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"]
) -> Tuple[Float[Tensor, "num_rays 1"], Float[Tensor, "num_rays 1"], Bool[Tensor, "num_rays 1"]]:
    """Entry and exit depths of unit-direction rays through the unit sphere (entry clipped at the origin), and
    whether the ray meets the sphere at all."""
    t_mid = -(origins * directions).sum(dim=-1, keepdim=True)
    squared_distance = (origins * origins).sum(dim=-1, keepdim=True) - t_mid**2
    half_chord = (1.0 - squared_distance).clamp_min(0.0).sqrt()
    entry = (t_mid - half_chord).clamp_min(0.0)
    exit_ = (t_mid + half_chord).clamp_min(0.0)
    return entry, exit_, (squared_distance < 1.0) & (exit_ > entry)


@dataclass
class OccupancySamplerConfig(StageOneSamplerConfig):
    """Configuration of :class:`OccupancySampler`; same call as :class:`NeroSampler` (``sampler(ray_bundle,
    sdf_fn=..., inv_s=...)`` -> ``RaySamples``)."""

    _target: Type = field(default_factory=lambda: OccupancySampler)
    resolution: int = 64
    """Cells a side of the occupancy grid over [-1, 1]^3."""
    num_march: int = 128
    """Steps along each ray's chord through the unit sphere (``num_march + 1`` bins, the end ones partial)."""
    num_background: int = 16
    """Inverse-depth samples beyond the sphere (NeRF++ background), as NeRO's sampler places them."""
    refresh_every: int = 16
    """Training calls between two refreshes of the grid from the SDF."""
    cell_margin: float = 0.5
    """A sample is kept if the cached SDF there is within this many cell sizes of zero..."""
    band: float = 5.0
    """...or within ``band / inv_s`` (training): farther, the annealed NeuS opacity of a bin is below about
    ``sigmoid(-band)``. Wider than the opacity alone needs: a surface still forming (thin parts) gets gradients only
    where it is sampled (measured on a 96 px mirror bunny, 1500 steps: Chamfer 0.0085 with 5, about 0.011 with 3)."""
    eval_band: float = 6.0
    """``band`` for evaluation renders, whose NeuS opacity is not annealed (method.md §3.9): rays that graze the
    surface collect opacity over a longer stretch."""


class OccupancySampler(Sampler):
    """Evenly spaced depths on the sphere chord, kept where the occupancy grid says the surface may be, then NeRO's
    background depths.

    Args:
        config: the sampler's settings.
    """

    def __init__(self, config: OccupancySamplerConfig) -> None:
        super().__init__()
        if config.num_march < 2 or config.num_background < 1:
            raise NeroSettingsError(
                "num_march, num_background",
                f"the occupancy sampler needs num_march >= 2 and num_background >= 1, got {config.num_march}, "
                f"{config.num_background}",
            )
        self.config = config
        resolution = config.resolution
        # The cached SDF is rebuilt from the field, never saved: a loaded model refreshes it on its first render.
        self.register_buffer("sdf_volume", torch.zeros(resolution, resolution, resolution), persistent=False)
        self.inv_s = 0.0
        """The NeuS sharpness at the last refresh (0: nothing is skipped)."""
        self.stale = True
        """The cache does not describe the current SDF yet (new or loaded model)."""
        self.calls_since_refresh = 0

    def current_threshold(self) -> float:
        """The skip threshold on ``|sdf|`` for the current mode (training or evaluation); infinite before the first
        refresh or after an empty one."""
        if self.inv_s <= 0.0:
            return float("inf")
        config = self.config
        band = config.band if self.training else config.eval_band
        return skip_threshold(config.resolution, config.num_march, self.inv_s, config.cell_margin, band)

    @property
    def occupied_fraction(self) -> float:
        """Fraction of the grid's cells whose cached ``|sdf|`` is within the current skip threshold."""
        return float((self.sdf_volume.abs() <= self.current_threshold()).float().mean())

    @torch.no_grad()
    def refresh(self, sdf_fn: SdfFunction, inv_s: float, chunk: int = 65536) -> None:
        """Re-evaluate the SDF at the cell centres. A cache with no cell near zero (all space would be skipped, e.g.
        an SDF that drifted positive everywhere) skips nothing until the next refresh, with a warning: never an
        empty render."""
        config = self.config
        resolution = config.resolution
        centres = grid_centres(resolution, self.sdf_volume.device).reshape(-1, 3)
        sdf = torch.cat([sdf_fn(centres[start : start + chunk])[:, 0] for start in range(0, centres.shape[0], chunk)])
        self.sdf_volume.copy_(sdf.view(resolution, resolution, resolution))
        self.inv_s = inv_s
        within_sphere = centres.norm(dim=-1) <= 1.0
        if not bool((sdf[within_sphere].abs() <= self.current_threshold()).any()):
            CONSOLE.print(
                "[bold yellow]Warning: the occupancy grid came out empty (the SDF has no surface in the unit "
                "sphere); no space is skipped until it has one again."
            )
            self.inv_s = 0.0
        self.stale = False
        self.calls_since_refresh = 0

    def generate_ray_samples(
        self,
        ray_bundle: Optional[RayBundle] = None,
        sdf_fn: Optional[SdfFunction] = None,
        inv_s: Optional[float] = None,
    ) -> RaySamples:
        """Samples for a flat bundle of unit-direction rays: ``num_march + 1`` bins on the sphere chord then
        ``num_background`` background depths, with ``metadata["active"]`` ``[num_rays, num_samples, 1]`` false on the
        chord bins far from the cached surface. The cache is refreshed first when it is stale or, in training, every
        ``refresh_every`` calls."""
        if ray_bundle is None or sdf_fn is None:
            raise ValueError("OccupancySampler needs a ray bundle and an SDF function")
        if ray_bundle.origins.dim() != 2:
            raise ValueError(f"OccupancySampler expects a flat ray bundle [num_rays], got shape {ray_bundle.shape}")
        if self.training:
            self.calls_since_refresh += 1
        if self.stale or (self.training and self.calls_since_refresh >= self.config.refresh_every):
            self.refresh(sdf_fn, 1.0 if inv_s is None else inv_s)
        origins, directions = ray_bundle.origins, ray_bundle.directions
        num_march = self.config.num_march
        entry, exit_, hits_sphere = sphere_chord(origins, directions)
        step = (exit_ - entry) / num_march
        # num_march + 1 bins covering the chord exactly: edges every step, shifted by one offset per ray (random in
        # training, half a step in evaluation), the first and last bins cut at the sphere.
        shift = torch.rand_like(entry) if self.training else torch.full_like(entry, 0.5)
        ticks = torch.arange(num_march + 2, device=origins.device, dtype=origins.dtype) - 1.0
        edges = entry + step * (ticks + shift).clamp(0.0, float(num_march))
        starts, march_ends = edges[:, :-1], edges[:, 1:]
        midpoints = origins[:, None, :] + directions[:, None, :] * ((starts + march_ends) / 2.0)[..., None]
        near_surface = interpolate_sdf(self.sdf_volume, midpoints).abs() <= self.current_threshold()
        march_active = near_surface & hits_sphere & (march_ends > starts)

        _, fars = sphere_near_far(origins, directions)
        background = background_depths(fars, self.config.num_background, self.training)
        background_ends = torch.cat(
            [background[:, 1:], background[:, -1:] + (background[:, -1:] - background[:, -2:-1])], dim=-1
        )
        bin_starts = torch.cat([starts, background], dim=-1)
        bin_ends = torch.cat([march_ends, background_ends], dim=-1)
        active = torch.cat([march_active, torch.ones_like(background, dtype=torch.bool)], dim=-1)
        ray_samples = ray_bundle.get_ray_samples(bin_starts=bin_starts[..., None], bin_ends=bin_ends[..., None])
        ray_samples.metadata = dict(ray_samples.metadata or {}, **{ACTIVE_KEY: active[..., None]})
        return ray_samples
