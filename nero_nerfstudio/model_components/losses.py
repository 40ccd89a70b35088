"""The losses and regularisers of both NeRO stages, as pure functions of tensors (method.md §3.8, §4.5).

Each returns the unweighted term; the models multiply by their configured weights. Stage I's occlusion loss reaches
the SDF only through the field's interface (``get_sdf`` and ``inv_s``), so any SDF field with those two methods works.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Literal, Mapping, Optional, Protocol

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from nero_nerfstudio.model_components.sample_directions import tangent_frame
from nero_nerfstudio.model_components.occlusion import occlusion_target, select_occlusion_points
from nero_nerfstudio.utils.color import srgb_slope, srgb_to_linear

# Init-SDF regulariser radii (method.md §3.8): points well inside must be inside, points beyond the sphere outside.
INIT_SDF_INNER_RADIUS = 0.1
INIT_SDF_OUTER_RADIUS = 1.05
INIT_SDF_POINT_RADIUS = 1.2
"""Samples within this radius (inside the sphere or just beyond it) feed the init-SDF regulariser."""


class SdfFieldLike(Protocol):
    """What the occlusion loss needs of an SDF field."""

    get_sdf: Callable[[Float[Tensor, "num_points 3"]], Float[Tensor, "num_points 1"]]

    def inv_s(self, clipped: bool = True) -> Float[Tensor, "1"]: ...


def charbonnier_rgb_loss(pred: Float[Tensor, "num_rays 3"], target: Float[Tensor, "num_rays 3"], eps: float) -> Tensor:
    """``mean_rays sqrt(sum_c (pred - target)^2 + eps)`` (NeRO's RGB loss)."""
    return torch.sqrt(((pred - target) ** 2).sum(dim=-1) + eps).mean()


LINEAR_PAIRING_DARKEST_VALUE = 0.02
"""The linear pairing weighs a pixel darker than this linear value (sRGB 0.15) as if it were this bright: the sRGB
curve's slope keeps rising towards black (12.92, a squared weight of 167), and that weight at the darkest pixels let
a bright overshoot there derail training; a cap at 0.04 (weight 8.3) floored a sun-lit gold cow's roughness at 0.04
where 0.02 (weight 18.6) and 0.01 (41.6) did not (method.md §4.5)."""


def decorrelated_rgb_loss(
    pred: Float[Tensor, "num_rays 3"],
    pred_a: Float[Tensor, "num_rays 3"],
    pred_b: Float[Tensor, "num_rays 3"],
    target: Float[Tensor, "num_rays 3"],
    eps: float,
    pairing: Literal["srgb", "linear"] = "srgb",
) -> Tensor:
    """RGB loss of a Monte-Carlo colour ``pred`` made of two independent half estimates ``a``, ``b`` with the same
    mean, whose gradient is that of ``sum_c (a - t)(b - t) / (2 sqrt(eps))``: an estimate of the squared error of the
    halves' *expected* colour, scaled to match NeRO's Charbonnier gradient at small residuals.

    With one noisy estimate, any loss's gradient pairs the residual with the derivative of the same noisy sample:
    their covariance is the gradient of the estimate's own spread, so the loss also drops by making the estimate less
    noisy (a sharper specular lobe, a diffuse surface instead of a rough metal) rather than more right. For
    independent halves that term is zero. The pairing is the squared error's: a robust (L1-like) loss would aim the
    median of the skewed estimate at the pixel, not its mean.

    ``pairing``: ``srgb`` pairs the halves' sRGB values. The curve leaves a bias: it is concave, so a noisy half reads
    darker than its mean (``E sRGB(a) < sRGB(E a)``), most where it is dark. ``linear`` pairs linear values, where
    Monte-Carlo estimates are unbiased, weighted by the squared sRGB slope at the pixel,
    ``s'(max(T, 0.02))^2 (a - T)(b - T)`` (``T`` the pixel in linear values): the same to first order, without that
    bias, except that pixels darker than :data:`LINEAR_PAIRING_DARKEST_VALUE` weigh less; a bright overshoot over a
    dark pixel still costs more than in sRGB (method.md §4.5 has what each gives).

    Args:
        pred: the whole estimate (sRGB); the value, for logging, is NeRO's Charbonnier loss of it.
        pred_a, pred_b: the half estimates (sRGB, unclamped; ``linear`` turns them back into linear values).
        target: the pixels (sRGB).
    """
    if pairing == "linear":
        linear_a, linear_b, linear_target = srgb_to_linear(pred_a), srgb_to_linear(pred_b), srgb_to_linear(target)
        weight = srgb_slope(linear_target.clamp_min(LINEAR_PAIRING_DARKEST_VALUE)).square()
        product = weight * (linear_a - linear_target) * (linear_b - linear_target)
    else:
        product = (pred_a - target) * (pred_b - target)
    paired = product.sum(dim=-1).mean() * (0.5 / eps**0.5)
    return charbonnier_rgb_loss(pred, target, eps).detach() + (paired - paired.detach())


SATURATED_PIXEL = 254.5 / 255.0
"""An 8-bit pixel value at or above this is clipped: the true value may be anything from 1 up."""


def saturated_as_lower_bound(
    pred: Float[Tensor, "num_rays 3"], target: Float[Tensor, "num_rays 3"]
) -> Float[Tensor, "num_rays 3"]:
    """``pred`` with channels whose ``target`` is clipped white capped at 1: a clipped pixel only says "at least 1",
    so a prediction above it costs nothing there (elsewhere ``pred`` is unchanged, unclamped, as NeRO compares it)."""
    return torch.where(target >= SATURATED_PIXEL, pred.clamp_max(1.0), pred)


def eikonal_loss(gradient: Float[Tensor, "num_samples 3"]) -> Tensor:
    """``mean (|grad sdf| - 1)^2``."""
    return ((gradient.norm(dim=-1) - 1.0) ** 2).mean()


def init_sdf_regularizer(points: Float[Tensor, "num_points 3"], sdf: Float[Tensor, "num_points 1"]) -> Tensor:
    """NeRO's early-training SDF hinge terms (method.md §3.8), unweighted.

    Points within radius 0.1 must have ``sdf <= |p| - 0.1``: ``mean(h) / (1[mean(h) > 1e-5] + 1e-3)``; points beyond
    1.05 must have ``sdf >= |p| - 1.05``: ``sum(h) / (#{h > 1e-5} + 1e-3)``. Empty sets contribute 0.
    """
    radius = points.norm(dim=-1, keepdim=True)
    total = sdf.new_zeros(())
    small = radius < INIT_SDF_INNER_RADIUS
    if small.any():
        hinge = torch.relu(sdf[small] - (radius[small] - INIT_SDF_INNER_RADIUS)).mean()
        total = total + hinge / ((hinge > 1e-5).to(hinge.dtype) + 1e-3)
    large = radius > INIT_SDF_OUTER_RADIUS
    if large.any():
        hinge = torch.relu((radius[large] - INIT_SDF_OUTER_RADIUS) - sdf[large])
        total = total + hinge.sum() / ((hinge > 1e-5).sum().to(hinge.dtype) + 1e-3)
    return total


def cosine_fade(step: int, end: int) -> float:
    """``(cos(pi step / end) + 1) / 2``: 1 at step 0, 0 at ``end`` (the init-SDF regulariser's weight)."""
    return (math.cos(math.pi * step / end) + 1.0) / 2.0


def occlusion_loss(
    field: SdfFieldLike,
    surface: Mapping[str, Tensor],
    max_points: int,
    num_march: int,
    num_resample: int,
) -> Tensor:
    """``mean |o_raw - o_gt|`` over front-facing surface samples (method.md §3.8); 0 when there are none.

    Args:
        field: the SDF whose current surface gives the target ``o_gt``, marched along the reflected ray with the
            learned sharpness as it is (no rendering clip).
        surface: per surface sample ``points``, ray ``directions`` ``[num_samples, 3]``, ``sdf`` ``[num_samples, 1]``,
            ``gradient``, ``reflect_dir`` ``[num_samples, 3]`` and the shader's ``occlusion_prob_raw``
            ``[num_samples, 1]`` (the only input that gets a gradient).
        max_points: at most this many samples get a target.
        num_march, num_resample: uniform and importance depths of the march.
    """
    points = surface["points"]
    selected = select_occlusion_points(
        points, surface["sdf"].detach(), surface["gradient"].detach(), surface["directions"], max_points
    )
    predicted = surface["occlusion_prob_raw"][selected]
    if selected.shape[0] == 0:
        return predicted.sum()
    target = occlusion_target(
        field.get_sdf,
        points[selected].detach(),
        F.normalize(surface["reflect_dir"][selected].detach(), dim=-1),
        field.inv_s(clipped=False).detach(),
        num_march=num_march,
        num_resample=num_resample,
    )
    return (predicted - target).abs().mean()


def material_smoothness_loss(materials: Dict[str, Tensor], perturbed: Dict[str, Tensor]) -> Float[Tensor, "num_points"]:
    """Per point ``|m' - m| + |alpha' - alpha| + mean_c |a'_c - a_c|`` (unweighted ``reg_mat`` of method.md §4.5)."""
    return (
        (perturbed["metallic"] - materials["metallic"]).abs()[:, 0]
        + (perturbed["alpha"] - materials["alpha"]).abs()[:, 0]
        + (perturbed["albedo"] - materials["albedo"]).abs().mean(dim=-1)
    )


def tangent_offsets(
    normals: Float[Tensor, "num_points 3"], std: float, generator: Optional[torch.Generator] = None
) -> Float[Tensor, "num_points 3"]:
    """Random offsets in each point's tangent plane: angle ``U(0, 2 pi)``, signed length ``N(0, std^2)`` (where the
    smoothness regulariser compares materials)."""
    tangent, bitangent = tangent_frame(normals)
    angle = 2.0 * math.pi * torch.rand(normals.shape[0], 1, device=normals.device, generator=generator)
    length = std * torch.randn(normals.shape[0], 1, device=normals.device, generator=generator)
    return length * (torch.cos(angle) * tangent + torch.sin(angle) * bitangent)


def saturation_guard(metallic: Float[Tensor, "num_points 1"], alpha: Float[Tensor, "num_points 1"]) -> Tensor:
    """Sum over points of ``relu(alpha - 0.98^2) + relu(0.02^2 - alpha) + relu(m - 0.98) + relu(0.02 - m)``."""
    return (
        torch.relu(alpha - 0.98**2)
        + torch.relu(0.02**2 - alpha)
        + torch.relu(metallic - 0.98)
        + torch.relu(0.02 - metallic)
    ).sum()


def sigmoid_slope_guard(
    logits: Float[Tensor, "num_points channels"], lowest_logit: float = -math.inf, highest_logit: float = math.inf
) -> Tensor:
    """Sum over points and channels of ``relu(lowest_logit - z) + relu(z - highest_logit)``: keeps a head's
    pre-sigmoid values ``z`` where the sigmoid still has a slope (method.md §4.5)."""
    return (torch.relu(lowest_logit - logits) + torch.relu(logits - highest_logit)).sum()


def two_valued_metallic_loss(metallic: Float[Tensor, "num_points 1"]) -> Float[Tensor, "num_points"]:
    """Per point ``m (1 - m)`` (unweighted): zero at metallic 0 and 1, largest between, where real materials are
    not (a surface is a metal or it is not)."""
    return (metallic * (1.0 - metallic))[:, 0]


def neutral_light_loss(diffuse_light_display: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points"]:
    """Per point ``sum_c |L_c - mean(L)|`` of the clamped sRGB mean diffuse light (unweighted)."""
    return (diffuse_light_display - diffuse_light_display.mean(dim=-1, keepdim=True)).abs().sum(dim=-1)
