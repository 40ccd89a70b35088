"""The GGX microfacet BRDF in one place: ``D``, ``G``, ``F``, half-vector sampling and its densities.

Shaped after Mitsuba's ``MicrofacetDistribution``: a :class:`GGXMicrofacet` holds the GGX ``alpha`` and gives the
normal distribution ``D`` (:meth:`~GGXMicrofacet.eval`), the separable shadowing-masking ``G`` (NeRO's Schlick-GGX
approximation or GGX's exact Smith ``G1``), Schlick's Fresnel
``F``, half-vector sampling and the matching densities. Beside it: the mirror direction, the half vector, the
base reflectance ``F0`` of the metallic workflow and the distance along a ray to the unit sphere.

Conventions: directions are unit vectors pointing away from the surface (``view_dirs`` towards the camera, light
directions towards the light); a cosine is clamped to ``[0, 1]`` where the formula reads ``max(., 0)``; tensors
broadcast over leading dimensions, so ``alpha`` must broadcast against the cosines it meets.

Numerics: ``GGXMicrofacet(alpha)`` (``nero_numerics=True``) adds NeRO's small epsilons to ``D`` and to the
reflection pdf, so that Stage II reproduces NeRO's shading; ``nero_numerics=False`` gives the exact formulas,
used to verify the terms. The ``NERO_EPS_*`` constants below are those deliberate departures from exact maths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Tuple

import torch
from jaxtyping import Float
from torch import Tensor

from nero_nerfstudio.model_components.sample_directions import directions_around_axis

DIELECTRIC_F0 = 0.04
"""Normal-incidence reflectance of a dielectric (index of refraction 1.5): ``F0`` at metallic 0."""

NERO_EPS_DISTRIBUTION = 1e-4
"""NeRO adds this to ``D``'s denominator. It caps ``D`` (at ``1 / (2 sqrt(pi eps))``, about 28), so very sharp
lobes lose most of their mass; rough lobes barely change."""
NERO_EPS_REFLECTION_PDF = 1e-5
"""NeRO adds this to the ``4 (v.h)`` denominator of the specular-sample pdf (finite at ``v.h = 0``)."""
NERO_EPS_SMITH_G1 = 1e-5
"""NeRO adds this to the Schlick-GGX ``G1`` denominator. Kept with exact numerics too: that ``G1`` is NeRO's
approximation either way (``shadowing="smith"`` is the exact one)."""

NERO_EPS_SPHERE_EXIT = 1e-6
"""NeRO adds this under the square root of the sphere-exit distance in its occlusion march."""
MIN_ABS_V_DOT_H = 1e-12
"""Floor of ``|v.h|`` in the density of :meth:`GGXMicrofacet.sample` (guards a division by zero only)."""

Shadowing = Literal["schlick", "smith"]
"""``G1`` of :class:`GGXMicrofacet`: ``schlick`` (NeRO's Schlick-GGX, ``k = alpha / 2``) or ``smith`` (GGX's exact
Smith ``G1``, what Blender's and Mitsuba's GGX use)."""


def reflect(view_dirs: Float[Tensor, "*batch 3"], normals: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """Mirror direction ``r = 2 (v.n) n - v`` ``[*batch, 3]`` of ``v`` about ``n`` (both unit, ``v`` away from it)."""
    return 2.0 * (view_dirs * normals).sum(-1, keepdim=True) * normals - view_dirs


def half_vector(
    view_dirs: Float[Tensor, "*batch 3"], light_dirs: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 3"]:
    """Half vector ``h = (v + l) / |v + l|`` ``[*batch, 3]``."""
    return torch.nn.functional.normalize(view_dirs + light_dirs, dim=-1)


def base_reflectance(
    metallic: Float[Tensor, "*batch 1"], albedo: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 3"]:
    """Normal-incidence reflectance of the metallic workflow, ``F0 = DIELECTRIC_F0 (1 - m) + m a`` ``[*batch, 3]``."""
    return DIELECTRIC_F0 * (1.0 - metallic) + metallic * albedo


def sphere_exit_distance(
    points: Float[Tensor, "*batch 3"], directions: Float[Tensor, "*batch 3"], eps: float = 0.0
) -> Float[Tensor, "*batch 1"]:
    """Distance ``t`` from ``points`` inside the unit sphere along unit ``directions`` to where the ray leaves it.

    The positive root of ``|x + t d| = 1``: ``t = -(x.d) + sqrt((x.d)^2 - |x|^2 + 1 + eps)`` ``[*batch, 1]``. Inside
    the sphere the root's argument is positive; clamping it at 0 only guards rounding. ``eps`` is 0 for the exact
    root and :data:`NERO_EPS_SPHERE_EXIT` for NeRO's occlusion march.
    """
    along = (points * directions).sum(-1, keepdim=True)
    squared_norm = (points * points).sum(-1, keepdim=True)
    return -along + torch.sqrt((along**2 - squared_norm + 1.0 + eps).clamp_min(0.0))


@dataclass(frozen=True)
class GGXMicrofacet:
    """The GGX (Trowbridge-Reitz) lobe, with separable Schlick-GGX shadowing-masking and Schlick's Fresnel.

    ``alpha`` broadcasts against the cosines handed to the methods: ``[num_points, 1]`` against cosines
    ``[num_points, num_samples]``, ``[num_points, 1, 1]`` against keep-dim ``[num_points, num_samples, 1]`` ones.
    """

    alpha: Tensor
    """GGX alpha (Stage II predicts it directly; a perceptual roughness ``r`` gives ``alpha = r^2``)."""
    nero_numerics: bool = True
    """Add NeRO's epsilons to ``D`` and to the reflection pdf (see the module docstring); ``False``: exact."""
    shadowing: Shadowing = "schlick"
    """``G1``: NeRO's Schlick-GGX approximation or the exact Smith ``G1`` (see :meth:`smith_g1`)."""

    def eval(self, n_dot_h: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        """Normal distribution ``D(h) = alpha^2 / (pi ((n.h)^2 (alpha^2 - 1) + 1)^2 + eps)``.

        ``eps`` is :data:`NERO_EPS_DISTRIBUTION` with NeRO's numerics, else 0; ``n.h`` is clamped to ``[0, 1]``.
        Exact ``D`` is normalised over projected half vectors: ``int D(h) (n.h) dh = 1`` on the hemisphere.
        """
        alpha_sq = self.alpha * self.alpha
        n_dot_h = n_dot_h.clamp(0.0, 1.0)
        eps = NERO_EPS_DISTRIBUTION if self.nero_numerics else 0.0
        return alpha_sq / (math.pi * (n_dot_h * n_dot_h * (alpha_sq - 1.0) + 1.0) ** 2 + eps)

    def smith_g1(self, cosine: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        """Shadowing of one direction ``x = n.w`` (clamped to ``[0, 1]``; 0 below the horizon).

        ``schlick``: ``G1(x) = x / (x (1 - k) + k + NERO_EPS_SMITH_G1)`` with ``k = alpha / 2``. It shadows a rough
        lobe too much at grazing angles: at ``alpha = 0.25`` a metal sphere comes out 11-17 % darker than Blender's
        where ``n.v < 0.3`` (method.md §4.4).
        ``smith``: ``G1(x) = 2 x / (x + sqrt(alpha^2 + (1 - alpha^2) x^2))``, exact for GGX.
        """
        cosine = cosine.clamp(0.0, 1.0)
        if self.shadowing == "smith":
            alpha_sq = self.alpha * self.alpha
            # Written as 2x / (x + sqrt(.)) it is finite at x = 0 for any alpha > 0 (G1 -> 0).
            return 2.0 * cosine / (cosine + torch.sqrt(alpha_sq + (1.0 - alpha_sq) * cosine * cosine)).clamp_min(1e-12)
        k = self.alpha / 2.0
        return cosine / (cosine * (1.0 - k) + k + NERO_EPS_SMITH_G1)

    def G(  # noqa: N802 - the formula's name
        self, n_dot_v: Float[Tensor, "*batch"], n_dot_l: Float[Tensor, "*batch"]
    ) -> Float[Tensor, "*batch"]:
        """Separable Smith shadowing-masking ``G = G1(n.v) G1(n.l)``."""
        return self.smith_g1(n_dot_v) * self.smith_g1(n_dot_l)

    @staticmethod
    def fresnel(f0: Float[Tensor, "*batch 3"], v_dot_h: Float[Tensor, "*batch 1"]) -> Float[Tensor, "*batch 3"]:
        """Schlick's Fresnel ``F = F0 + (1 - F0) (1 - v.h)^5`` (``v.h`` clamped to ``[0, 1]``; ``F0`` from
        :func:`base_reflectance`)."""
        return f0 + (1.0 - f0) * (1.0 - v_dot_h.clamp(0.0, 1.0)) ** 5

    def pdf(self, n_dot_h: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        """Solid-angle density of sampled half vectors, ``p(h) = D(h) (n.h)`` (``n.h`` clamped to ``[0, 1]``)."""
        return self.eval(n_dot_h) * n_dot_h.clamp(0.0, 1.0)

    def reflection_pdf(
        self, n_dot_h: Float[Tensor, "*batch"], v_dot_h: Float[Tensor, "*batch"]
    ) -> Float[Tensor, "*batch"]:
        """Density of the light direction ``l = reflect(v, h)``: ``p(l) = D(h) (n.h) / (4 (v.h) + eps)``.

        ``eps`` is :data:`NERO_EPS_REFLECTION_PDF` with NeRO's numerics, else 0; ``v.h`` is clamped to ``[0, 1]``.
        """
        eps = NERO_EPS_REFLECTION_PDF if self.nero_numerics else 0.0
        return self.pdf(n_dot_h) / (4.0 * v_dot_h.clamp(0.0, 1.0) + eps)

    def sample_cos_theta(self, u: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        """Inverse CDF of ``p(h)``: half-vector polar angle ``cos(theta_h) = sqrt((1 - u) / (1 + (alpha^2 - 1) u))``
        for ``u`` in ``[0, 1]``."""
        alpha_sq = self.alpha * self.alpha
        return ((1.0 - u) / (1.0 + (alpha_sq - 1.0) * u)).clamp(0.0, 1.0).sqrt()

    def sample_half_vectors(
        self,
        axis: Float[Tensor, "num_points 3"],
        u: Float[Tensor, "*samples"],
        azimuth: Float[Tensor, "*samples"],
    ) -> Float[Tensor, "num_points num_samples 3"]:
        """Directions at the sampled half-vector polar angle around a unit ``axis``, at ``azimuth`` around it.

        Around the normal these are GGX half vectors. Differentiable in ``alpha`` (reparameterised sampling).

        Args:
            axis: ``[num_points, 3]``.
            u, azimuth: ``[num_samples]`` (shared) or ``[num_points, num_samples]``; ``alpha`` is ``[num_points, 1]``.
        """
        return directions_around_axis(axis, self.sample_cos_theta(u), azimuth)

    def sample(
        self,
        normals: Float[Tensor, "num_points 3"],
        view_dirs: Float[Tensor, "num_points 3"],
        unit_square: Float[Tensor, "num_points num_samples 2"],
    ) -> Tuple[Float[Tensor, "num_points num_samples 3"], Float[Tensor, "num_points num_samples"]]:
        """Textbook importance sampling of light directions: half vectors from ``p(h)``, the view reflected about them.

        Not reparameterised: no gradient reaches ``alpha``. ``alpha`` is ``[num_points, 1]``.

        Args:
            normals, view_dirs: ``[num_points, 3]``.
            unit_square: uniform ``(u1, u2)`` per sample (``u1`` picks the polar angle, ``u2`` the azimuth).

        Returns:
            light directions ``[num_points, num_samples, 3]`` (possibly below the horizon) and their solid-angle
            density ``p(h) / (4 |v.h|)`` ``[num_points, num_samples]`` (the exact one with ``nero_numerics=False``).
        """
        lobe = GGXMicrofacet(self.alpha.detach(), self.nero_numerics)
        cos_theta_h = lobe.sample_cos_theta(unit_square[..., 0])
        half_vectors = directions_around_axis(normals, cos_theta_h, 2.0 * math.pi * unit_square[..., 1])
        v_dot_h = (view_dirs[:, None, :] * half_vectors).sum(-1)
        light_dirs = reflect(view_dirs[:, None, :], half_vectors)
        return light_dirs, lobe.pdf(cos_theta_h) / (4.0 * v_dot_h.abs().clamp_min(MIN_ABS_V_DOT_H))
