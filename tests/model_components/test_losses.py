"""The decorrelated RGB loss: NeRO's Charbonnier value, its gradient at small residuals, no pull towards a less noisy
estimate, and a pull of the expected colour towards the pixel, for both pairings (the halves' sRGB colours, or their
linear values); and the sRGB curve's bias that the linear pairing removes."""

from __future__ import annotations

import pytest
import torch

from nero_nerfstudio.model_components.losses import (
    LINEAR_PAIRING_DARKEST_VALUE,
    charbonnier_rgb_loss,
    decorrelated_rgb_loss,
)
from nero_nerfstudio.utils.color import linear_to_srgb, srgb_slope, srgb_to_linear

EPS = 1e-3
PAIRINGS = ("srgb", "linear")


def skewed_noise(shape) -> torch.Tensor:
    """Zero-mean skewed noise, as a few light samples that hit a bright sun give."""
    return torch.distributions.Exponential(1.0).sample(shape) - 1.0


def noisy(mean: torch.Tensor, noise: torch.Tensor, pairing: str) -> torch.Tensor:
    """An sRGB estimate whose noise has zero mean in the space the pairing works in."""
    if pairing == "linear":
        return linear_to_srgb(srgb_to_linear(mean) + noise)
    return mean + noise


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_equal_estimates_give_charbonniers_value_and_its_gradient_at_small_residuals(pairing: str):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(64, 3, generator=generator)
    pred = (target + 5e-4 * torch.randn(64, 3, generator=generator)).requires_grad_()
    reference = charbonnier_rgb_loss(pred, target, EPS)
    (reference_grad,) = torch.autograd.grad(reference, pred)
    loss = decorrelated_rgb_loss(pred, pred, pred, target, EPS, pairing)
    (grad,) = torch.autograd.grad(loss, pred)
    torch.testing.assert_close(loss, reference)
    if pairing == "srgb":
        torch.testing.assert_close(grad, reference_grad, rtol=1e-2, atol=1e-7)
        return
    # The linear pairing equals it to first order in the residual (the curve's bend adds about residual / pixel, a
    # few percent on the darkest pixels), except that pixels darker than linear 0.02 are weighed as if that bright:
    # their gradient is Charbonnier's times (s'(0.02) / s'(T))^2 < 1 (down to 0.11 at black).
    linear_target = srgb_to_linear(target)
    dark = linear_target < LINEAR_PAIRING_DARKEST_VALUE
    assert bool(dark.any()) and bool((~dark).any())
    scale = (srgb_slope(torch.tensor(LINEAR_PAIRING_DARKEST_VALUE)) / srgb_slope(linear_target)).square()
    assert float(scale[dark].max()) < 1.0 and float(scale[dark].min()) < 0.2
    torch.testing.assert_close(grad, torch.where(dark, scale, 1.0) * reference_grad, rtol=5e-2, atol=1e-7)


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_the_noise_of_an_estimate_is_not_something_the_loss_can_lower(pairing: str):
    """A Monte-Carlo estimate ``mean + spread * noise`` whose mean is already right: the expected colour does not
    depend on ``spread``, so the right gradient on it is zero. NeRO's single-estimate loss pulls ``spread`` down (it
    is the loss's own value, ``|spread * noise|`` on average); the decorrelated one averages to zero."""
    num_rays = 200_000
    target = torch.full((num_rays, 3), 0.5)
    spread = torch.tensor(0.2, requires_grad=True)

    def estimate() -> torch.Tensor:
        return noisy(target, spread * skewed_noise((num_rays, 3)), pairing)

    torch.manual_seed(1)
    (single_grad,) = torch.autograd.grad(charbonnier_rgb_loss(estimate(), target, EPS), spread)
    a, b = estimate(), estimate()
    (decorrelated_grad,) = torch.autograd.grad(decorrelated_rgb_loss((a + b) / 2, a, b, target, EPS, pairing), spread)
    assert single_grad.item() > 0.5
    assert abs(decorrelated_grad.item()) < 0.1 * single_grad.item()


@pytest.mark.parametrize("pairing", PAIRINGS)
def test_the_gradient_moves_the_expected_colour_to_the_pixel(pairing: str):
    """Noisy estimates of a colour that is too bright: the gradient lowers it, as the squared (sRGB) error's does (to
    first order for the linear pairing: ``s'(T)^2 (level - T)`` in linear values)."""
    torch.manual_seed(2)
    num_rays = 50_000
    target = torch.full((num_rays, 3), 0.4)
    level = torch.tensor(0.6, requires_grad=True) if pairing == "srgb" else torch.tensor(0.14, requires_grad=True)

    def estimate() -> torch.Tensor:
        noise = 0.3 * skewed_noise((num_rays, 3))
        if pairing == "linear":
            return linear_to_srgb(level + 0.2 * noise)
        return level + noise

    a, b = estimate(), estimate()
    loss = decorrelated_rgb_loss((a + b) / 2, a, b, target, EPS, pairing)
    torch.testing.assert_close(loss, charbonnier_rgb_loss((a + b) / 2, target, EPS))  # logged: NeRO's value
    (grad,) = torch.autograd.grad(loss, level)
    if pairing == "srgb":
        expected = 3 * (0.6 - 0.4) / EPS**0.5  # d/dlevel of sum_c (level - t)^2 / (2 sqrt(eps))
    else:
        target_linear = srgb_to_linear(torch.tensor(0.4))
        expected = 3 * srgb_slope(target_linear).item() ** 2 * (0.14 - target_linear.item()) / EPS**0.5
    assert abs(grad.item() - expected) < 0.1 * expected


def test_linear_pairing_leaves_a_noisy_estimate_of_the_right_colour_alone():
    """Noisy halves of the right linear colour: paired in sRGB they read darker than the pixel (the curve is
    concave), so the gradient would brighten them; paired in linear values it averages to zero."""
    torch.manual_seed(3)
    num_rays = 200_000
    level = torch.tensor(0.05, requires_grad=True)
    target = linear_to_srgb(torch.full((num_rays, 3), 0.05))
    a, b = (linear_to_srgb(level * (1.0 + 0.8 * skewed_noise((num_rays, 3)))) for _ in range(2))
    grads = {
        pairing: torch.autograd.grad(
            decorrelated_rgb_loss((a + b) / 2, a, b, target, EPS, pairing), level, retain_graph=True
        )[0].item()
        for pairing in PAIRINGS
    }
    assert grads["srgb"] < -2.0  # "too dark, brighten"
    assert abs(grads["linear"]) < 0.1 * abs(grads["srgb"])
