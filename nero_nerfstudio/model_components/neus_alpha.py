"""NeuS opacity along rays: the SDF-to-alpha rules NeRO uses for rendering, up-sampling and the occlusion march.

All three share the "logistic CDF" alpha of an interval whose SDF goes from ``f_prev`` to ``f_next``
(``alpha = (Phi(f_prev) - Phi(f_next) + 1e-5) / (Phi(f_prev) + 1e-5)``, ``Phi = sigmoid(inv_s * .)``); they differ in
how the two end values are estimated (method.md §3.6, 3.7, 3.8).
"""

from __future__ import annotations

from typing import Union

import torch
from jaxtyping import Float
from torch import Tensor


def interval_alpha(
    sdf_prev: Float[Tensor, "*batch"], sdf_next: Float[Tensor, "*batch"], inv_s: Union[float, Tensor]
) -> Float[Tensor, "*batch"]:
    """NeuS alpha of an interval from the SDF at its two ends (not clipped)."""
    cdf_prev = torch.sigmoid(sdf_prev * inv_s)
    cdf_next = torch.sigmoid(sdf_next * inv_s)
    return (cdf_prev - cdf_next + 1e-5) / (cdf_prev + 1e-5)


def transmittance_weights(alphas: Float[Tensor, "*batch num_samples"]) -> Float[Tensor, "*batch num_samples"]:
    """``w_i = alpha_i * prod_{j<i} (1 - alpha_j + 1e-7)`` along the last axis."""
    transmittance = torch.cumprod(1.0 - alphas + 1e-7, dim=-1)
    transmittance = torch.cat([torch.ones_like(transmittance[..., :1]), transmittance[..., :-1]], dim=-1)
    return alphas * transmittance


def render_alpha(
    sdf: Float[Tensor, "num_samples 1"],
    direction_dot_gradient: Float[Tensor, "num_samples 1"],
    deltas: Float[Tensor, "num_samples 1"],
    inv_s: Union[float, Tensor],
    cos_anneal_ratio: float,
) -> Float[Tensor, "num_samples 1"]:
    """Rendering alpha of samples with the SDF and its gradient at the interval midpoint (method.md §3.7).

    The slope is the cosine-annealed ``-[relu(-c/2 + 1/2) (1 - r) + relu(-c) r]`` with ``c = d . grad f``: early in
    training (``r = 0``) even back-facing intervals get some opacity, which helps the surface form.
    """
    slope = -(
        torch.relu(-direction_dot_gradient * 0.5 + 0.5) * (1.0 - cos_anneal_ratio)
        + torch.relu(-direction_dot_gradient) * cos_anneal_ratio
    )
    sdf_prev = sdf - slope * deltas * 0.5
    sdf_next = sdf + slope * deltas * 0.5
    return interval_alpha(sdf_prev, sdf_next, inv_s).clip(0.0, 1.0)


def upsample_weights(
    depths: Float[Tensor, "num_rays num_samples"],
    sdf: Float[Tensor, "num_rays num_samples"],
    radius: Float[Tensor, "num_rays num_samples"],
    inv_s: float,
) -> Float[Tensor, "num_rays num_samples-1"]:
    """Weights of the intervals between consecutive samples for NeuS hierarchical up-sampling (method.md §3.6).

    The slope of each interval is the smaller of its own and its predecessor's (the first interval's predecessor
    counts as 0), clipped to ``[-1000, 0]``, and zeroed when both ends lie outside the unit sphere.
    """
    sdf_prev, sdf_next = sdf[:, :-1], sdf[:, 1:]
    deltas = depths[:, 1:] - depths[:, :-1]
    sdf_mid = (sdf_prev + sdf_next) * 0.5
    slope = (sdf_next - sdf_prev) / (deltas + 1e-5)
    previous_slope = torch.cat([torch.zeros_like(slope[:, :1]), slope[:, :-1]], dim=-1)
    slope = torch.minimum(slope, previous_slope).clip(-1000.0, 0.0)
    touches_sphere = (radius[:, :-1] < 1.0) | (radius[:, 1:] < 1.0)
    slope = slope * touches_sphere
    alphas = interval_alpha(sdf_mid - slope * deltas * 0.5, sdf_mid + slope * deltas * 0.5, inv_s)
    return transmittance_weights(alphas)


def entering_surface_weights(
    depths: Float[Tensor, "num_rays num_samples"],
    sdf: Float[Tensor, "num_rays num_samples"],
    inv_s: Union[float, Tensor],
) -> Float[Tensor, "num_rays num_samples-1"]:
    """Weights of the intervals along a secondary ray where only intervals entering a surface count (method.md §3.8).

    Unlike :func:`upsample_weights` there is no "min with the previous interval", no clip and no sphere mask.
    """
    sdf_prev, sdf_next = sdf[:, :-1], sdf[:, 1:]
    deltas = depths[:, 1:] - depths[:, :-1]
    sdf_mid = (sdf_prev + sdf_next) * 0.5
    slope = (sdf_next - sdf_prev) / (deltas + 1e-5)
    entering = slope < 0.0
    slope = slope.clamp_max(0.0)
    alphas = interval_alpha(sdf_mid - slope * deltas * 0.5, sdf_mid + slope * deltas * 0.5, inv_s) * entering
    return transmittance_weights(alphas)


def sample_pdf_deterministic(
    bins: Float[Tensor, "num_rays num_bins+1"],
    weights: Float[Tensor, "num_rays num_bins"],
    num_samples: int,
) -> Float[Tensor, "num_rays num_samples"]:
    """Deterministic inverse-CDF sampling of piecewise-constant densities (NeuS ``sample_pdf`` with ``det=True``).

    Args:
        bins: sorted interval edges per ray.
        weights: non-negative weight of each interval; ``1e-5`` is added so that empty rays sample uniformly.
        num_samples: samples per ray, at CDF values ``linspace(0.5/n, 1 - 0.5/n, n)``.

    Returns:
        Sorted sample positions inside ``[bins[:, 0], bins[:, -1]]``.
    """
    weights = weights + 1e-5
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cumsum(pdf, dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], dim=-1)
    targets = torch.linspace(0.5 / num_samples, 1.0 - 0.5 / num_samples, num_samples, device=bins.device)
    targets = targets.expand(bins.shape[0], num_samples).contiguous()
    above = torch.searchsorted(cdf, targets, right=True)
    below = (above - 1).clamp_min(0)
    above = above.clamp_max(cdf.shape[-1] - 1)
    cdf_below, cdf_above = torch.gather(cdf, 1, below), torch.gather(cdf, 1, above)
    bins_below, bins_above = torch.gather(bins, 1, below), torch.gather(bins, 1, above)
    denominator = cdf_above - cdf_below
    denominator = torch.where(denominator < 1e-5, torch.ones_like(denominator), denominator)
    fraction = (targets - cdf_below) / denominator
    return bins_below + fraction * (bins_above - bins_below)
