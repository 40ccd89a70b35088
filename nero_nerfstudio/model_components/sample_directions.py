"""Sample sets and directions around an axis for Stage II Monte-Carlo shading (method.md §4.4).

NeRO's fixed Fibonacci sample set, the tangent frame it builds directions in, and the cosine-weighted (diffuse)
lobe. The GGX terms themselves (``D``, ``G``, ``F``, half-vector sampling and pdfs) are
:class:`~nero_nerfstudio.model_components.microfacet.GGXMicrofacet`. Directions are unit vectors pointing away from
the surface.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from jaxtyping import Float
from torch import Tensor

GOLDEN_RATIO_CONJUGATE = (math.sqrt(5.0) - 1.0) / 2.0


def fibonacci_sample_set(num_samples: int) -> Tuple[Float[Tensor, "num_samples"], Float[Tensor, "num_samples"]]:
    """NeRO's fixed low-discrepancy set.

    For ``k = 0..N-1``: elevation ``e_k = asin(k / N)``, azimuth ``(2 pi (N + k) g) mod 2 pi`` with the golden
    ratio conjugate ``g``, and ``u_k = 1 - 2 e_k / pi`` in ``(0, 1]``.

    Returns:
        ``u`` ``[num_samples]`` and ``azimuth`` ``[num_samples]`` (radians), float32.
    """
    index = torch.arange(num_samples, dtype=torch.float64)
    azimuth = torch.remainder(2.0 * math.pi * (num_samples + index) * GOLDEN_RATIO_CONJUGATE, 2.0 * math.pi)
    return nero_u(index / num_samples).float(), azimuth.float()


def nero_u(uniform: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
    """NeRO's ``u`` of a uniform value ``x`` in ``[0, 1]``: ``1 - 2 asin(x) / pi`` (denser near 1)."""
    return 1.0 - 2.0 * torch.asin(uniform) / math.pi


def stratified_sample_set(num_samples: int) -> Tuple[Float[Tensor, "num_samples"], Float[Tensor, "num_samples"]]:
    """The same golden-ratio azimuths as :func:`fibonacci_sample_set` with ``u_k = (k + 1/2) / N``: stratified uniform
    ``u``, so the cosine-weighted and GGX lobes built from it follow their densities. (NeRO's ``u`` piles up near
    1: its "cosine" lobe over-samples the horizon, its GGX lobe the lobe's tail.)

    Returns:
        ``u`` ``[num_samples]`` and ``azimuth`` ``[num_samples]`` (radians), float32.
    """
    _, azimuth = fibonacci_sample_set(num_samples)
    u = (torch.arange(num_samples, dtype=torch.float64) + 0.5) / num_samples
    return u.float(), azimuth


def interleaved_stratified_u(
    num_samples: int, shifts: Float[Tensor, "num_points 2"]
) -> Float[Tensor, "num_points num_samples"]:
    """``u`` of two interleaved halves that are each a randomly shifted stratified set of ``M = N / 2`` strata:
    sample ``k = 2 j + h`` takes ``u = (j + shift_h) / M``, ``shift_h`` uniform in ``[0, 1)`` per point and half.

    Both halves then follow the same law, and each one's estimate is unbiased for the integral: two independent
    estimates with the same mean (with a fixed set, the even and the odd samples sit at different ``u``: on a rough
    lobe seen head-on, stratified midpoints give halves 9 % apart). ``num_samples`` must be even.
    """
    if num_samples % 2:
        raise ValueError(f"interleaved halves need an even sample count, got {num_samples}")
    index = torch.arange(num_samples, device=shifts.device)
    return ((index // 2)[None, :] + shifts[:, index % 2]) / (num_samples // 2)


def tangent_frame(axis: Float[Tensor, "*batch 3"]) -> Tuple[Float[Tensor, "*batch 3"], Float[Tensor, "*batch 3"]]:
    """Orthonormal ``(tangent, bitangent)`` around a unit ``axis``.

    The tangent is the longer of ``(z_y, -z_x, 0)`` and ``(-z_z, 0, z_x)``, normalised (both are perpendicular to
    ``z``, and at least one is long); the bitangent is ``axis x tangent``.
    """
    x, y, z = axis.unbind(-1)
    zeros = torch.zeros_like(x)
    candidate_a = torch.stack([y, -x, zeros], dim=-1)
    candidate_b = torch.stack([-z, zeros, x], dim=-1)
    use_a = candidate_a.norm(dim=-1, keepdim=True) > candidate_b.norm(dim=-1, keepdim=True)
    tangent = torch.nn.functional.normalize(torch.where(use_a, candidate_a, candidate_b), dim=-1)
    bitangent = torch.cross(axis, tangent, dim=-1)
    return tangent, bitangent


def directions_around_axis(
    axis: Float[Tensor, "num_points 3"],
    cos_theta: Float[Tensor, "*samples"],
    azimuth: Float[Tensor, "*samples"],
) -> Float[Tensor, "num_points num_samples 3"]:
    """Unit directions ``sin(theta) (cos(phi) t + sin(phi) b) + cos(theta) axis`` in the :func:`tangent_frame`.

    ``cos_theta`` / ``azimuth`` are ``[num_samples]`` (shared) or ``[num_points, num_samples]``; they broadcast.
    """
    tangent, bitangent = tangent_frame(axis)
    sin_theta = (1.0 - cos_theta * cos_theta).clamp_min(0.0).sqrt()
    return (
        (sin_theta * torch.cos(azimuth))[..., None] * tangent[:, None, :]
        + (sin_theta * torch.sin(azimuth))[..., None] * bitangent[:, None, :]
        + cos_theta[..., None] * axis[:, None, :]
    )


def diffuse_directions(
    normals: Float[Tensor, "num_points 3"],
    u: Float[Tensor, "*samples"],
    azimuth: Float[Tensor, "*samples"],
) -> Float[Tensor, "num_points num_samples 3"]:
    """Cosine-weighted hemisphere directions around ``normals``: ``cos(theta) = sqrt(1 - u)``.

    Exactly cosine-distributed when ``u`` is uniform in ``[0, 1]`` (NeRO's Fibonacci ``u`` is not, method.md §4.4).
    ``u`` / ``azimuth`` are ``[num_samples]`` (shared) or ``[num_points, num_samples]``.
    """
    return directions_around_axis(normals, (1.0 - u).clamp_min(0.0).sqrt(), azimuth)


def cosine_hemisphere_pdf(n_dot_l: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
    """Solid-angle density ``max(n . l, 0) / pi`` of cosine-weighted sampling."""
    return n_dot_l.clamp_min(0.0) / math.pi
