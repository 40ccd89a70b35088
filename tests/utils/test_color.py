"""sRGB transfer functions: round trip, and the slope the RGB loss weights linear residuals by."""

from __future__ import annotations

import numpy as np
import torch

from nero_nerfstudio.utils.color import linear_to_srgb, srgb_slope, srgb_to_linear


def test_srgb_round_trip_for_tensors_and_arrays():
    linear = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    torch.testing.assert_close(srgb_to_linear(linear_to_srgb(linear)), linear)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(linear.numpy())), linear.numpy(), atol=1e-12)


def test_srgb_slope_is_the_curves_derivative_on_both_pieces():
    linear = torch.tensor([1e-4, 3e-3, 0.01, 0.2, 0.5, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    (autograd_slope,) = torch.autograd.grad(linear_to_srgb(linear).sum(), linear)
    torch.testing.assert_close(srgb_slope(linear.detach()), autograd_slope)
    assert srgb_slope(torch.tensor(0.0, dtype=torch.float64)).item() == 12.92
