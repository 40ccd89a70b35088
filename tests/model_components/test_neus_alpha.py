"""NeuS alpha rules and the deterministic inverse-CDF sampler."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.cameras.rays import RaySamples

from nero_nerfstudio.model_components.neus_alpha import (
    entering_surface_weights,
    interval_alpha,
    render_alpha,
    sample_pdf_deterministic,
    transmittance_weights,
    upsample_weights,
)


def test_transmittance_weights_match_nerfstudio():
    alphas = torch.rand(4, 10)
    expected = RaySamples.get_weights_and_transmittance_from_alphas(alphas[..., None], weights_only=True)[..., 0]
    assert torch.allclose(transmittance_weights(alphas), expected, atol=1e-6)


def test_interval_alpha_of_a_sharp_crossing_is_one():
    assert interval_alpha(torch.tensor(0.1), torch.tensor(-0.1), 1000.0).item() == pytest.approx(1.0, abs=1e-4)
    assert interval_alpha(torch.tensor(0.3), torch.tensor(0.2), 1000.0).item() == pytest.approx(0.0, abs=1e-3)


def test_render_alpha_of_a_front_facing_plane_sums_to_one():
    # Ray along -z through the plane z = 0 (sdf = z), 200 samples on [-1, 1] of depth 2 - t.
    depths = torch.linspace(0.0, 2.0, 200)
    deltas = torch.full((200, 1), float(depths[1] - depths[0]))
    midpoints = depths[:, None] + deltas / 2
    sdf = 1.0 - midpoints
    gradient_dot_direction = torch.full((200, 1), -1.0)
    for ratio in (0.0, 1.0):
        alphas = render_alpha(sdf, gradient_dot_direction, deltas, 500.0, ratio)
        assert torch.all((alphas >= 0) & (alphas <= 1))
        weights = transmittance_weights(alphas[:, 0])
        assert weights.sum().item() == pytest.approx(1.0, abs=1e-2)
        expected_depth = (weights * midpoints[:, 0]).sum() / weights.sum()
        assert expected_depth.item() == pytest.approx(1.0, abs=0.02)


def test_back_facing_samples_are_transparent_once_annealed():
    sdf = torch.tensor([[0.0]])
    back = torch.tensor([[1.0]])
    delta = torch.tensor([[0.05]])
    assert render_alpha(sdf, back, delta, 200.0, 1.0).item() == pytest.approx(0.0, abs=1e-4)
    assert render_alpha(sdf, back, delta, 200.0, 0.0).item() == pytest.approx(0.0, abs=1e-4)
    facing = torch.tensor([[0.0]])
    # Grazing samples still get opacity early in training (cos-anneal ratio 0 treats them as c = 0 -> slope -1/2).
    assert render_alpha(sdf, facing, delta, 200.0, 0.0).item() > 0.5


def test_upsample_weights_ignore_intervals_outside_the_sphere():
    depths = torch.linspace(0.0, 1.0, 11)[None]
    sdf = 0.55 - depths  # crosses zero in the interval [0.5, 0.6]
    inside = torch.full_like(depths, 0.5)
    outside = torch.full_like(depths, 1.5)
    assert upsample_weights(depths, sdf, inside, 64.0)[0, 5].item() > 0.9
    # Outside the sphere the slope is zeroed, so the crossing itself gets (almost) no weight.
    assert upsample_weights(depths, sdf, outside, 64.0)[0, 5].item() < 0.01


def test_entering_surface_weights_skip_exits():
    depths = torch.linspace(0.0, 1.0, 21)[None]
    entering = entering_surface_weights(depths, 0.5 - depths, 200.0)
    exiting = entering_surface_weights(depths, depths - 0.5, 200.0)
    assert entering.sum().item() > 0.95 and exiting.sum().item() < 1e-3


def test_sample_pdf_deterministic():
    bins = torch.linspace(0.0, 1.0, 5)[None].repeat(3, 1)
    weights = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    samples = sample_pdf_deterministic(bins, weights, 8)
    quantiles = torch.linspace(0.5 / 8, 1 - 0.5 / 8, 8)
    # Uniform weights (and all-zero weights, thanks to the 1e-5 padding) give the CDF quantiles themselves.
    assert torch.allclose(samples[0], quantiles, atol=1e-5)
    assert torch.allclose(samples[1], quantiles, atol=1e-5)
    # All mass in [0.5, 0.75]: every sample lands there, sorted.
    assert torch.all((samples[2] >= 0.5 - 1e-4) & (samples[2] <= 0.75 + 1e-4))
    assert torch.all(samples[2, 1:] >= samples[2, :-1])
