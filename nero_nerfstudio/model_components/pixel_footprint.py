"""The pixel footprint of a glossy reflection (method.md §4.4).

A rendered or photographed pixel averages the surface over its filter footprint. Where the normal turns within the
footprint (curvature, small bumps of a scanned mesh), the pixel shows the reflection blurred by that spread of
normals, on top of the material's own GGX lobe. Shading one ray through the pixel centre cannot blur it that way,
so fitting such pixels makes the material rougher than it is: on the Stanford bunny at 256 px a 0.05 roughness
looks like a median 0.19 (what Stage II learned there without this).

The interpolated normals of a few rays through each training pixel's filter are traced once. By default their spread
widens the lobe shaded at the pixel centre, as geometric specular anti-aliasing does (Kaplanyan et al. 2016): the
footprint's normals and the microfacet normals are two independent slope distributions, so their variances add,
``alpha_pixel^2 = alpha^2 + var(n)``. The alternative shades each Monte-Carlo estimate of the pixel at one of them,
drawn at random (supersampling), with rays through the pixel's own random draws from the filter: unbiased for the
filtered pixel. Either way the material keeps its own ``alpha``.
"""

from __future__ import annotations

from typing import Optional

import torch
from jaxtyping import Bool, Float
from torch import Tensor

BLENDER_PIXEL_FILTER_STD = 0.42
"""Standard deviation (pixels, per axis) of Cycles' default pixel filter: Blackman-Harris with filter width 1.5 px,
which Cycles spans over twice the width, ±1.5 px."""


def pixel_filter_offsets(num_samples: int, std: float = BLENDER_PIXEL_FILTER_STD, seed: int = 0) -> Tensor:
    """``[num_samples, 2]`` fixed sub-pixel offsets ``(dy, dx)`` (pixels) drawn from a Gaussian pixel filter, the same
    for every pixel."""
    return jittered_filter_offsets(num_samples, 1, std, torch.Generator().manual_seed(seed))[:, 0]


def jittered_filter_offsets(
    num_samples: int,
    num_pixels: int,
    std: float = BLENDER_PIXEL_FILTER_STD,
    generator: Optional[torch.Generator] = None,
) -> Float[Tensor, "num_samples num_pixels 2"]:
    """Each pixel's own ``num_samples`` sub-pixel offsets ``(dy, dx)`` (pixels), drawn at random from a Gaussian pixel
    filter: the pixels do not share one fixed quadrature of the filter, whose error for a lobe sharper than the
    footprint would be the same at every pixel (a bias the fit absorbs), but each pixel's own error averages out."""
    return torch.randn(num_samples, num_pixels, 2, generator=generator) * std


def normal_variance(
    normals: Float[Tensor, "num_samples num_pixels 3"], valid: Bool[Tensor, "num_samples num_pixels"]
) -> Float[Tensor, "num_pixels 1"]:
    """Spread ``E|n - E n|^2 = 1 - |E n|^2`` of unit normals over each pixel's ``valid`` samples (0 where fewer than
    two are valid); for small spreads it is the variance of the normals' slopes, summed over both tangent axes."""
    weights = valid.to(normals.dtype)[..., None]
    count = weights.sum(dim=0)
    mean = (weights * normals).sum(dim=0) / count.clamp_min(1.0)
    spread = (1.0 - (mean * mean).sum(dim=-1, keepdim=True)).clamp(0.0, 1.0)
    return torch.where(count >= 2.0, spread, torch.zeros_like(spread))


def footprint_alpha(
    alpha: Float[Tensor, "*batch 1"], variance: Optional[Float[Tensor, "*batch 1"]]
) -> Float[Tensor, "*batch 1"]:
    """GGX alpha a pixel is shaded with: ``sqrt(alpha^2 + variance)`` (``alpha`` itself without a variance)."""
    if variance is None:
        return alpha
    return torch.sqrt(alpha * alpha + variance)


def pick_footprint_normals(
    footprint_normals: Float[Tensor, "num_pixels num_offsets 3"], num_picks: int
) -> Float[Tensor, "num_picks num_pixels 3"]:
    """For each pixel, ``num_picks`` of its footprint normals, drawn uniformly and independently (with replacement).

    A shading estimate at a random footprint ray is an unbiased estimate of the filtered pixel, and independent draws
    keep independent estimates independent (the decorrelated loss pairs two of them, method.md §4.5).
    """
    num_pixels, num_offsets = footprint_normals.shape[:2]
    picks = torch.randint(num_offsets, (num_picks, num_pixels), device=footprint_normals.device)
    return footprint_normals[torch.arange(num_pixels, device=footprint_normals.device), picks]
