"""The decorrelated RGB loss: NeRO's Charbonnier value, its gradient at small residuals, no pull towards a less noisy
estimate, and a pull of the expected colour towards the pixel."""

from __future__ import annotations

import torch

from nero_nerfstudio.model_components.losses import charbonnier_rgb_loss, decorrelated_rgb_loss

EPS = 1e-3


def test_equal_estimates_give_charbonniers_value_and_its_gradient_at_small_residuals():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(64, 3, generator=generator)
    pred = (target + 5e-4 * torch.randn(64, 3, generator=generator)).requires_grad_()
    reference = charbonnier_rgb_loss(pred, target, EPS)
    (reference_grad,) = torch.autograd.grad(reference, pred)
    loss = decorrelated_rgb_loss(pred, pred, pred, target, EPS)
    (grad,) = torch.autograd.grad(loss, pred)
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-2, atol=1e-7)


def test_the_noise_of_an_estimate_is_not_something_the_loss_can_lower():
    """A Monte-Carlo estimate ``mean + spread * noise`` whose mean is already right: the expected colour does not
    depend on ``spread``, so the right gradient on it is zero. NeRO's single-estimate loss pulls ``spread`` down (it
    is the loss's own value, ``|spread * noise|`` on average); the decorrelated one averages to zero."""
    num_rays = 200_000
    target = torch.full((num_rays, 3), 0.5)
    spread = torch.tensor(0.2, requires_grad=True)

    def estimate() -> torch.Tensor:
        # Skewed noise with zero mean, as a few light samples that hit a bright sun give.
        noise = torch.distributions.Exponential(1.0).sample((num_rays, 3)) - 1.0
        return target + spread * noise

    torch.manual_seed(1)
    (single_grad,) = torch.autograd.grad(charbonnier_rgb_loss(estimate(), target, EPS), spread)
    a, b = estimate(), estimate()
    (decorrelated_grad,) = torch.autograd.grad(decorrelated_rgb_loss((a + b) / 2, a, b, target, EPS), spread)
    assert single_grad.item() > 0.5
    assert abs(decorrelated_grad.item()) < 0.1 * single_grad.item()


def test_the_gradient_moves_the_expected_colour_to_the_pixel():
    """Noisy estimates of a colour that is too bright: the gradient lowers it, as the squared error's does."""
    torch.manual_seed(2)
    num_rays = 50_000
    target = torch.full((num_rays, 3), 0.4)
    level = torch.tensor(0.6, requires_grad=True)

    def estimate() -> torch.Tensor:
        return level + 0.3 * (torch.distributions.Exponential(1.0).sample((num_rays, 3)) - 1.0)

    a, b = estimate(), estimate()
    loss = decorrelated_rgb_loss((a + b) / 2, a, b, target, EPS)
    torch.testing.assert_close(loss, charbonnier_rgb_loss((a + b) / 2, target, EPS))  # logged: NeRO's value
    (grad,) = torch.autograd.grad(loss, level)
    expected = 3 * (0.6 - 0.4) / EPS**0.5  # d/dlevel of sum_c (level - t)^2 / (2 sqrt(eps))
    assert abs(grad.item() - expected) < 0.05 * expected
