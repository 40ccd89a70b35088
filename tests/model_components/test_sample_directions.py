"""Sample sets and directions around an axis: cosine-weighted lobe, Fibonacci set, tangent frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from nero_nerfstudio.model_components.sample_directions import (
    diffuse_directions,
    fibonacci_sample_set,
    stratified_sample_set,
    tangent_frame,
)


def _unit(vectors: np.ndarray) -> torch.Tensor:
    vectors = torch.as_tensor(vectors, dtype=torch.float64)
    return torch.nn.functional.normalize(vectors, dim=-1)


def test_uniform_u_gives_cosine_weighted_diffuse_directions() -> None:
    generator = torch.Generator().manual_seed(1)
    normal = _unit([[-0.2, 0.9, 0.3]])
    u = torch.rand(1, 100_000, generator=generator, dtype=torch.float64)
    azimuth = 2 * math.pi * torch.rand(1, 100_000, generator=generator, dtype=torch.float64)
    directions = diffuse_directions(normal, u, azimuth)[0]
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(100_000, dtype=torch.float64))
    cosines = (directions @ normal[0]).numpy()
    assert cosines.min() >= 0
    # Cosine weighting <=> cos^2(theta) uniform on [0, 1]; the mean cosine is 2/3.
    assert stats.kstest(cosines**2, "uniform").statistic < 0.01
    assert cosines.mean() == pytest.approx(2.0 / 3.0, abs=3e-3)
    # The azimuth in the tangent frame is uniform.
    tangent, bitangent = tangent_frame(normal)
    phi = torch.atan2(directions @ bitangent[0], directions @ tangent[0]).numpy()
    assert stats.kstest((phi + math.pi) / (2 * math.pi), "uniform").statistic < 0.01


def test_fibonacci_diffuse_set_is_only_roughly_cosine_weighted() -> None:
    # NeRO's u_k = 1 - 2 asin(k/N) / pi makes cos^2(theta) = 2 asin(k/N) / pi, whose CDF is sin(pi x / 2) instead
    # of x: a Kolmogorov distance of max|sin(pi x/2) - x| = 0.2105 from cosine weighting (reproduced as-is).
    u, azimuth = fibonacci_sample_set(512)
    normal = _unit([[0.0, 0.0, 1.0]]).float()
    cosines = diffuse_directions(normal, u, azimuth)[0, :, 2].double().numpy()
    assert stats.kstest(cosines**2, "uniform").statistic == pytest.approx(0.2105, abs=0.005)


def test_stratified_set_is_cosine_weighted_with_nero_azimuths() -> None:
    u, azimuth = stratified_sample_set(512)
    assert u.dtype == torch.float32 and torch.equal(azimuth, fibonacci_sample_set(512)[1])
    normal = _unit([[0.0, 0.0, 1.0]]).float()
    cosines = diffuse_directions(normal, u, azimuth)[0, :, 2].double().numpy()
    assert stats.kstest(cosines**2, "uniform").statistic < 1.5 / 512
    assert cosines.mean() == pytest.approx(2.0 / 3.0, abs=1e-3)


def test_fibonacci_sample_set_formula() -> None:
    num = 768
    u, azimuth = fibonacci_sample_set(num)
    assert u.shape == azimuth.shape == (num,) and u.dtype == torch.float32
    k = np.arange(num)
    golden = (math.sqrt(5) - 1) / 2
    np.testing.assert_allclose(u.numpy(), 1 - 2 * np.arcsin(k / num) / np.pi, atol=1e-6)
    np.testing.assert_allclose(azimuth.numpy(), np.mod(2 * np.pi * (num + k) * golden, 2 * np.pi), atol=1e-4)
    assert u.max() == 1.0 and u.min() > 0 and azimuth.min() >= 0 and azimuth.max() < 2 * math.pi


@pytest.mark.parametrize(
    "axis", [[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, -1, 0], [0.3, 0.4, 0.866], [-0.7, 0.7, 0.14]]
)
def test_tangent_frame_is_right_handed_orthonormal(axis) -> None:
    axis_t = _unit([axis])
    tangent, bitangent = tangent_frame(axis_t)
    frame = torch.cat([tangent, bitangent, axis_t], dim=0)
    torch.testing.assert_close(frame @ frame.T, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(torch.cross(tangent, bitangent, dim=-1), axis_t)
