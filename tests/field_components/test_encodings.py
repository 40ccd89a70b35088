"""Tests of the frequency encoding, the integrated directional encoding and the integrated positional encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from nero_nerfstudio.field_components.encodings import (
    FrequencyEncoding,
    IntegratedDirectionalEncoding,
    ide_degree_order_pairs,
    integrated_directional_encoding,
    integrated_positional_encoding,
)


def _random_directions(num: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(num, 3, generator=generator, dtype=dtype), dim=-1)


def _scipy_spherical_harmonics(directions: np.ndarray) -> np.ndarray:
    """``[N, 36]`` complex ``Y_l^m`` (Condon-Shortley phase) in IDE order."""
    polar = np.arccos(np.clip(directions[:, 2], -1.0, 1.0))
    azimuth = np.arctan2(directions[:, 1], directions[:, 0])
    columns = []
    for degree, order in ide_degree_order_pairs(5):
        if hasattr(special, "sph_harm_y"):
            columns.append(special.sph_harm_y(degree, order, polar, azimuth))
        else:  # scipy < 1.15: (m, l, azimuth, polar)
            columns.append(special.sph_harm(order, degree, azimuth, polar))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize(
    "in_dim, num_frequencies, expected", [(3, 6, 39), (4, 10, 84), (3, 4, 27), (3, 8, 51), (2, 0, 2)]
)
def test_frequency_encoding_dimensions(in_dim: int, num_frequencies: int, expected: int) -> None:
    encoding = FrequencyEncoding(in_dim, num_frequencies)
    assert encoding.get_out_dim() == expected
    assert encoding(torch.zeros(5, 7, in_dim)).shape == (5, 7, expected)


def test_frequency_encoding_column_layout() -> None:
    """[x, sin(x), cos(x), sin(2x), cos(2x), ...], powers of two, no pi."""
    x = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    encoded = FrequencyEncoding(3, 3)(x)[0]
    expected = [x[0]]
    for octave in range(3):
        expected += [torch.sin(2.0**octave * x[0]), torch.cos(2.0**octave * x[0])]
    torch.testing.assert_close(encoded, torch.cat(expected), rtol=0, atol=1e-12)


def test_ide_matches_scipy_spherical_harmonics() -> None:
    directions = _random_directions(500)
    encoded = IntegratedDirectionalEncoding()(directions, torch.zeros(500, 1, dtype=torch.float64))
    assert encoded.shape == (500, 72)
    reference = _scipy_spherical_harmonics(directions.numpy())
    np.testing.assert_allclose(encoded[:, :36].numpy(), reference.real, rtol=0, atol=1e-6)
    np.testing.assert_allclose(encoded[:, 36:].numpy(), reference.imag, rtol=0, atol=1e-6)
    # Imaginary parts of the m = 0 entries vanish.
    zero_order = [index for index, (_, order) in enumerate(ide_degree_order_pairs()) if order == 0]
    assert torch.all(encoded[:, 36:][:, zero_order] == 0)


def test_ide_float32_stays_accurate() -> None:
    directions = _random_directions(500)
    encoded = IntegratedDirectionalEncoding()(directions.float(), torch.zeros(500, 1))
    assert encoded.dtype == torch.float32
    reference = _scipy_spherical_harmonics(directions.numpy())
    expected = np.concatenate([reference.real, reference.imag], axis=-1)
    np.testing.assert_allclose(encoded.double().numpy(), expected, rtol=0, atol=1e-5)


def test_ide_attenuation_and_functional_form() -> None:
    directions = _random_directions(64)
    inv_kappa = torch.rand(64, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    encoded = integrated_directional_encoding(directions, inv_kappa)
    sharp = IntegratedDirectionalEncoding()(directions, torch.zeros_like(inv_kappa))
    degrees = torch.tensor([degree for degree, _ in ide_degree_order_pairs()], dtype=torch.float64)
    attenuation = torch.exp(-degrees * (degrees + 1) / 2 * inv_kappa).repeat(1, 2)
    torch.testing.assert_close(encoded, sharp * attenuation)


def test_ide_gradients_are_finite() -> None:
    directions = _random_directions(32, dtype=torch.float32).requires_grad_(True)
    roughness = torch.full((32, 1), 0.2, requires_grad=True)
    IntegratedDirectionalEncoding()(directions, roughness).sum().backward()
    assert torch.isfinite(directions.grad).all() and torch.isfinite(roughness.grad).all()
    assert roughness.grad.abs().sum() > 0


def test_integrated_positional_encoding_order_and_damping() -> None:
    mean = torch.tensor([[0.2, -0.7]], dtype=torch.float64)
    variance = torch.tensor([[0.01]], dtype=torch.float64)
    encoded = integrated_positional_encoding(mean, variance)
    assert encoded.shape == (1, 24)
    expected_sin, expected_cos = [], []
    for scale_exponent in range(6):
        damping = math.exp(-0.5 * 4**scale_exponent * 0.01)
        for coordinate in range(2):
            value = 2**scale_exponent * mean[0, coordinate].item()
            expected_sin.append(math.sin(value) * damping)
            expected_cos.append(math.cos(value) * damping)
    torch.testing.assert_close(encoded[0], torch.tensor(expected_sin + expected_cos, dtype=torch.float64))


def test_integrated_positional_encoding_per_coordinate_variance() -> None:
    mean = torch.rand(10, 2)
    shared = integrated_positional_encoding(mean, torch.full((10, 1), 0.05))
    per_coordinate = integrated_positional_encoding(mean, torch.full((10, 2), 0.05))
    torch.testing.assert_close(shared, per_coordinate)
    # Zero variance is the plain encoding.
    plain = integrated_positional_encoding(mean, torch.zeros(10, 1))
    torch.testing.assert_close(plain[:, :2], torch.sin(mean))
    torch.testing.assert_close(plain[:, 12:14], torch.cos(mean))
