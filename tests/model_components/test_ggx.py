"""GGX terms and direction samplers: normalisation, sampled histograms against the pdfs, frames, Fibonacci set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from nero_nerfstudio.model_components.ggx import (
    diffuse_directions,
    fibonacci_sample_set,
    fresnel_schlick,
    ggx_cos_theta,
    ggx_distribution,
    ggx_half_vector_pdf,
    ggx_reflection_pdf,
    nero_specular_directions,
    reflect,
    sample_ggx_reflections,
    smith_schlick_ggx,
    tangent_frame,
)

ALPHAS = [0.05, 0.2, 0.5, 1.0]


def _unit(vectors: np.ndarray) -> torch.Tensor:
    vectors = torch.as_tensor(vectors, dtype=torch.float64)
    return torch.nn.functional.normalize(vectors, dim=-1)


def _half_vector_density(mu: float, alpha: float) -> float:
    """``2 pi D(mu) mu``: density of ``cos(theta_h)`` under GGX half-vector sampling."""
    value = ggx_half_vector_pdf(torch.tensor(mu, dtype=torch.float64), torch.tensor(alpha, dtype=torch.float64))
    return 2.0 * math.pi * float(value)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_half_vector_pdf_integrates_to_one(alpha: float) -> None:
    total, _ = integrate.quad(_half_vector_density, 0.0, 1.0, args=(alpha,), points=[1 - alpha**2], limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_nero_distribution_epsilon_caps_sharp_lobes() -> None:
    # NeRO's +1e-4 leaves rough lobes alone but loses most of the mass of very sharp ones.
    def nero_mass(alpha: float) -> float:
        def density(mu: float) -> float:
            mu_t, alpha_t = torch.tensor(mu, dtype=torch.float64), torch.tensor(alpha, dtype=torch.float64)
            return 2.0 * math.pi * float(ggx_distribution(mu_t, alpha_t) * mu_t)

        return integrate.quad(density, 0.0, 1.0, points=[1 - alpha**2], limit=200)[0]

    assert nero_mass(0.5) == pytest.approx(1.0, abs=2e-3)
    assert nero_mass(0.01) < 0.5


@pytest.mark.parametrize("alpha", [0.2, 0.5])
def test_reflection_pdf_integrates_to_one_at_normal_incidence(alpha: float) -> None:
    # Midpoint rule in cos(theta) over the sphere of light directions.
    cos_edges = np.linspace(-1.0, 1.0, 20_001)
    theta = np.arccos(0.5 * (cos_edges[:-1] + cos_edges[1:]))
    d_cos = np.diff(cos_edges)
    light_z = np.cos(theta)
    light_x = np.sin(theta)
    normal = np.array([0.0, 0.0, 1.0])
    # Azimuthal symmetry at normal incidence: integrate phi analytically (x 2 pi) from one meridian.
    lights = np.stack([light_x, np.zeros_like(light_x), light_z], axis=-1)
    half = lights + normal
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    n_dot_h = torch.from_numpy(half[:, 2])
    v_dot_h = n_dot_h
    pdf = ggx_reflection_pdf(n_dot_h, v_dot_h, torch.tensor(alpha, dtype=torch.float64), 0.0, 0.0).numpy()
    total = float(np.sum(pdf * d_cos) * 2.0 * math.pi)
    assert total == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("alpha", [0.1, 0.4, 0.9])
def test_sampled_half_vectors_match_pdf_histogram(alpha: float) -> None:
    generator = torch.Generator().manual_seed(0)
    num_samples = 200_000
    normal = _unit([[0.3, -0.5, 0.8]])
    alpha_t = torch.tensor([[alpha]], dtype=torch.float64)
    # At normal incidence v.h = n.h > 0, so the half vector is recovered exactly from the light direction.
    unit_square = torch.rand(1, num_samples, 2, generator=generator, dtype=torch.float64)
    light_dirs, _ = sample_ggx_reflections(normal, normal, alpha_t, unit_square)
    half = torch.nn.functional.normalize(light_dirs + normal[:, None], dim=-1)
    n_dot_h = (half * normal[:, None]).sum(-1)[0].numpy()

    # Expected bin probabilities by quadrature of D(h) (n.h) (independent of the inverse-CDF formula).
    edges = np.linspace(0.0, 1.0, 21) ** 0.5
    expected = np.array(
        [
            integrate.quad(_half_vector_density, low, high, args=(alpha,), limit=200)[0]
            for low, high in zip(edges[:-1], edges[1:])
        ]
    )
    observed, _ = np.histogram(n_dot_h, bins=edges)
    keep = expected * num_samples > 5
    chi_square = stats.chisquare(observed[keep], expected[keep] / expected[keep].sum() * observed[keep].sum())
    assert chi_square.pvalue > 1e-3


def test_sampled_reflection_pdf_is_the_exact_density() -> None:
    generator = torch.Generator().manual_seed(3)
    normal = _unit([[0.3, -0.5, 0.8]])
    view = _unit([[0.9, 0.1, 0.5]])  # oblique
    alpha = torch.tensor([[0.4]], dtype=torch.float64)
    unit_square = torch.rand(1, 10_000, 2, generator=generator, dtype=torch.float64)
    light_dirs, pdf = sample_ggx_reflections(normal, view, alpha, unit_square)
    torch.testing.assert_close(light_dirs.norm(dim=-1), torch.ones(1, 10_000, dtype=torch.float64))
    # Above the horizon v.h > 0, so h = normalize(v + l) and the pdf must be D (n.h) / (4 v.h).
    above = (light_dirs * normal[:, None]).sum(-1) > 0
    half = torch.nn.functional.normalize(light_dirs + view[:, None], dim=-1)
    exact = ggx_reflection_pdf((half * normal[:, None]).sum(-1), (half * view[:, None]).sum(-1), alpha, 0.0, 0.0)
    assert above.float().mean() > 0.5  # 76 % here
    torch.testing.assert_close(pdf[above], exact[above], rtol=1e-6, atol=0)


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


def test_nero_specular_directions_sit_at_the_ggx_angle_around_the_mirror_direction() -> None:
    normals = _unit([[0.0, 0.0, 1.0], [0.2, 0.3, 0.9]])
    view = _unit([[0.6, 0.0, 0.8], [0.0, 0.6, 0.8]])
    alpha = torch.tensor([[0.3], [0.05]], dtype=torch.float64, requires_grad=True)
    u, azimuth = fibonacci_sample_set(256)
    directions = nero_specular_directions(reflect(view, normals), alpha, u.double(), azimuth.double())
    assert directions.shape == (2, 256, 3)
    cosines = (directions * reflect(view, normals)[:, None]).sum(-1)
    torch.testing.assert_close(cosines, ggx_cos_theta(u.double()[None], alpha))
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(2, 256, dtype=torch.float64))

    # Reparameterised: a rougher surface spreads its samples further from the mirror direction.
    cosines.mean().backward()
    assert alpha.grad is not None and bool((alpha.grad < 0).all())


def test_brdf_terms_reference_values() -> None:
    f0 = torch.tensor([[0.04, 0.5, 1.0]])
    torch.testing.assert_close(fresnel_schlick(f0, torch.tensor([[1.0]])), f0)
    torch.testing.assert_close(fresnel_schlick(f0, torch.tensor([[0.0]])), torch.ones(1, 3))
    # alpha = 1: D is uniform, 1/pi.
    mu = torch.linspace(0, 1, 11, dtype=torch.float64)
    uniform_d = ggx_distribution(mu, torch.tensor(1.0, dtype=torch.float64), eps=0.0)
    torch.testing.assert_close(uniform_d, torch.full_like(mu, 1 / math.pi))
    # G1(x) = x / (x (1 - k) + k), k = alpha / 2.
    g = smith_schlick_ggx(torch.tensor(0.5), torch.tensor(1.0), torch.tensor(0.4))
    expected = 0.5 / (0.5 * 0.8 + 0.2 + 1e-5) * 1.0 / (1.0 + 1e-5)
    assert float(g) == pytest.approx(expected, rel=1e-6)
    smooth = smith_schlick_ggx(torch.tensor(0.7), torch.tensor(0.6), torch.tensor(1e-6))
    assert float(smooth) == pytest.approx(1.0, abs=1e-4)
    assert float(smith_schlick_ggx(torch.tensor(0.7), torch.tensor(-0.2), torch.tensor(0.3))) == 0.0
