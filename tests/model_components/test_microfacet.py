"""GGX microfacet terms: normalisation, sampled histograms against the pdfs, reference values, NeRO's numerics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from nero_nerfstudio.model_components.sample_directions import fibonacci_sample_set
from nero_nerfstudio.model_components.microfacet import (
    DIELECTRIC_F0,
    NERO_EPS_DISTRIBUTION,
    NERO_EPS_REFLECTION_PDF,
    NERO_EPS_SMITH_G1,
    NERO_EPS_SPHERE_EXIT,
    GGXMicrofacet,
    base_reflectance,
    half_vector,
    reflect,
    sphere_exit_distance,
)

ALPHAS = [0.05, 0.2, 0.5, 1.0]


def _unit(vectors: np.ndarray) -> torch.Tensor:
    vectors = torch.as_tensor(vectors, dtype=torch.float64)
    return torch.nn.functional.normalize(vectors, dim=-1)


def _exact(alpha: float) -> GGXMicrofacet:
    return GGXMicrofacet(torch.tensor(alpha, dtype=torch.float64), nero_numerics=False)


def _half_vector_density(mu: float, alpha: float) -> float:
    """``2 pi D(mu) mu``: density of ``cos(theta_h)`` under GGX half-vector sampling."""
    return 2.0 * math.pi * float(_exact(alpha).pdf(torch.tensor(mu, dtype=torch.float64)))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_half_vector_pdf_integrates_to_one(alpha: float) -> None:
    total, _ = integrate.quad(_half_vector_density, 0.0, 1.0, args=(alpha,), points=[1 - alpha**2], limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.7])
def test_distribution_integrates_to_one_over_the_projected_hemisphere(alpha: float) -> None:
    # Midpoint rule over (cos theta_h, phi) on the hemisphere of half vectors: int D(h) (n.h) dh = 1.
    num_cos, num_phi = 20_000, 8
    mu = (np.arange(num_cos) + 0.5) / num_cos
    phi = (np.arange(num_phi) + 0.5) / num_phi * 2 * math.pi
    half = np.stack(
        np.broadcast_arrays(
            np.sqrt(1 - mu[:, None] ** 2) * np.cos(phi), np.sqrt(1 - mu[:, None] ** 2) * np.sin(phi), mu[:, None]
        ),
        axis=-1,
    )
    n_dot_h = torch.from_numpy(half @ np.array([0.0, 0.0, 1.0]))
    integrand = (_exact(alpha).eval(n_dot_h) * n_dot_h).numpy()
    assert float(integrand.sum() / num_cos * 2 * math.pi / num_phi) == pytest.approx(1.0, abs=2e-3)


def test_nero_distribution_epsilon_caps_sharp_lobes() -> None:
    # NeRO's +1e-4 leaves rough lobes alone but loses most of the mass of very sharp ones.
    def nero_mass(alpha: float) -> float:
        def density(mu: float) -> float:
            mu_t = torch.tensor(mu, dtype=torch.float64)
            return 2.0 * math.pi * float(GGXMicrofacet(torch.tensor(alpha, dtype=torch.float64)).eval(mu_t) * mu_t)

        return integrate.quad(density, 0.0, 1.0, points=[1 - alpha**2], limit=200)[0]

    assert nero_mass(0.5) == pytest.approx(1.0, abs=2e-3)
    assert nero_mass(0.01) < 0.5
    # The cap: max over alpha of alpha^2 / (pi alpha^4 + eps) at n.h = 1.
    alphas = torch.logspace(-3, 0, 2001, dtype=torch.float64)
    peak = float(GGXMicrofacet(alphas).eval(torch.ones_like(alphas)).max())
    assert peak == pytest.approx(1 / (2 * math.sqrt(math.pi * NERO_EPS_DISTRIBUTION)), rel=1e-3)


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
    pdf = _exact(alpha).reflection_pdf(n_dot_h, v_dot_h).numpy()
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
    light_dirs, _ = GGXMicrofacet(alpha_t, nero_numerics=False).sample(normal, normal, unit_square)
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
    exact = GGXMicrofacet(alpha, nero_numerics=False)
    light_dirs, pdf = exact.sample(normal, view, unit_square)
    torch.testing.assert_close(light_dirs.norm(dim=-1), torch.ones(1, 10_000, dtype=torch.float64))
    # Above the horizon v.h > 0, so h = normalize(v + l) and the pdf must be D (n.h) / (4 v.h).
    above = (light_dirs * normal[:, None]).sum(-1) > 0
    half = half_vector(view[:, None], light_dirs)
    density = exact.reflection_pdf((half * normal[:, None]).sum(-1), (half * view[:, None]).sum(-1))
    assert above.float().mean() > 0.5  # 76 % here
    torch.testing.assert_close(pdf[above], density[above], rtol=1e-6, atol=0)


def test_sampling_is_not_reparameterised() -> None:
    alpha = torch.tensor([[0.3]], dtype=torch.float64, requires_grad=True)
    normal = _unit([[0.0, 0.0, 1.0]])
    unit_square = torch.rand(1, 16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    light_dirs, pdf = GGXMicrofacet(alpha, nero_numerics=False).sample(normal, normal, unit_square)
    assert not light_dirs.requires_grad and not pdf.requires_grad


def test_nero_specular_directions_sit_at_the_ggx_angle_around_the_mirror_direction() -> None:
    normals = _unit([[0.0, 0.0, 1.0], [0.2, 0.3, 0.9]])
    view = _unit([[0.6, 0.0, 0.8], [0.0, 0.6, 0.8]])
    alpha = torch.tensor([[0.3], [0.05]], dtype=torch.float64, requires_grad=True)
    u, azimuth = fibonacci_sample_set(256)
    lobe = GGXMicrofacet(alpha)
    directions = lobe.sample_half_vectors(reflect(view, normals), u.double(), azimuth.double())
    assert directions.shape == (2, 256, 3)
    cosines = (directions * reflect(view, normals)[:, None]).sum(-1)
    torch.testing.assert_close(cosines, lobe.sample_cos_theta(u.double()[None]))
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(2, 256, dtype=torch.float64))

    # Reparameterised: a rougher surface spreads its samples further from the mirror direction.
    cosines.mean().backward()
    assert alpha.grad is not None and bool((alpha.grad < 0).all())


def test_brdf_terms_reference_values() -> None:
    f0 = torch.tensor([[0.04, 0.5, 1.0]])
    torch.testing.assert_close(GGXMicrofacet.fresnel(f0, torch.tensor([[1.0]])), f0)
    torch.testing.assert_close(GGXMicrofacet.fresnel(f0, torch.tensor([[0.0]])), torch.ones(1, 3))
    # alpha = 1: D is uniform, 1/pi.
    mu = torch.linspace(0, 1, 11, dtype=torch.float64)
    uniform_d = _exact(1.0).eval(mu)
    torch.testing.assert_close(uniform_d, torch.full_like(mu, 1 / math.pi))
    # G1(x) = x / (x (1 - k) + k), k = alpha / 2.
    g = GGXMicrofacet(torch.tensor(0.4)).G(torch.tensor(0.5), torch.tensor(1.0))
    expected = 0.5 / (0.5 * 0.8 + 0.2 + 1e-5) * 1.0 / (1.0 + 1e-5)
    assert float(g) == pytest.approx(expected, rel=1e-6)
    smooth = GGXMicrofacet(torch.tensor(1e-6)).G(torch.tensor(0.7), torch.tensor(0.6))
    assert float(smooth) == pytest.approx(1.0, abs=1e-4)
    assert float(GGXMicrofacet(torch.tensor(0.3)).G(torch.tensor(0.7), torch.tensor(-0.2))) == 0.0


def _projected_area(lobe: GGXMicrofacet, n_dot_v: float) -> float:
    """``int G1(v) max(v.h, 0) D(h) dh`` over half vectors: midpoint rule in the inverse CDF of ``D (n.h)`` (``u``)
    and in the azimuth, i.e. the mean of ``G1(v) max(v.h, 0) / (n.h)`` over half vectors spread as ``D (n.h)``."""
    num_u, num_phi = 4000, 64
    u = (torch.arange(num_u, dtype=torch.float64) + 0.5) / num_u
    phi = (torch.arange(num_phi, dtype=torch.float64) + 0.5) / num_phi * 2 * math.pi
    cos_h = lobe.sample_cos_theta(u)[:, None]
    sin_h = torch.sqrt((1 - cos_h**2).clamp_min(0.0))
    view = torch.tensor([math.sqrt(1 - n_dot_v**2), 0.0, n_dot_v], dtype=torch.float64)
    v_dot_h = sin_h * torch.cos(phi) * view[0] + cos_h * view[2]
    weight = lobe.smith_g1(torch.tensor(n_dot_v, dtype=torch.float64)) * v_dot_h.clamp_min(0.0) / cos_h
    return float(weight.mean())


@pytest.mark.parametrize("alpha", [0.1, 0.25, 0.6])
@pytest.mark.parametrize("n_dot_v", [0.15, 0.5, 0.95])
def test_smith_shadowing_keeps_the_projected_area(alpha: float, n_dot_v: float) -> None:
    # The microfacets a viewer sees, shadowed by G1, project to the macro-surface's area: int G1 (v.h)+ D dh = n.v.
    smith = GGXMicrofacet(torch.tensor(alpha, dtype=torch.float64), nero_numerics=False, shadowing="smith")
    assert _projected_area(smith, n_dot_v) == pytest.approx(n_dot_v, rel=1e-2)  # the rule's error: < 0.5 %


def test_schlick_shadowing_darkens_rough_lobes_at_grazing_angles() -> None:
    # NeRO's Schlick-GGX G1 (k = alpha / 2) loses projected area at grazing views of a rough lobe: the reason
    # Stage II shades with the exact Smith G1 by default.
    schlick = GGXMicrofacet(torch.tensor(0.25, dtype=torch.float64), nero_numerics=False)
    assert _projected_area(schlick, 0.15) < 0.9 * 0.15
    smith_g1 = GGXMicrofacet(torch.tensor(0.25), shadowing="smith").smith_g1(torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(smith_g1, torch.tensor([0.0, 1.0 / (0.5 + math.sqrt(0.0625 + 0.9375 * 0.25)), 1.0]))


def test_fresnel_at_normal_incidence_is_the_base_reflectance() -> None:
    metallic = torch.tensor([[0.0], [0.3], [1.0]])
    albedo = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.4, 0.6], [0.8, 0.7, 0.3]])
    f0 = base_reflectance(metallic, albedo)
    torch.testing.assert_close(f0[0], torch.full((3,), DIELECTRIC_F0))  # dielectric
    torch.testing.assert_close(f0[2], albedo[2])  # metal
    torch.testing.assert_close(GGXMicrofacet.fresnel(f0, torch.ones(3, 1)), f0, rtol=0, atol=0)


def test_pdfs_are_d_cos_and_d_cos_over_4_v_dot_h() -> None:
    generator = torch.Generator().manual_seed(2)
    n_dot_h = torch.rand(4, 32, generator=generator, dtype=torch.float64)
    v_dot_h = torch.rand(4, 32, generator=generator, dtype=torch.float64)
    alpha = torch.rand(4, 1, generator=generator, dtype=torch.float64)
    for nero_numerics, eps in ((True, NERO_EPS_REFLECTION_PDF), (False, 0.0)):
        lobe = GGXMicrofacet(alpha, nero_numerics)
        torch.testing.assert_close(lobe.pdf(n_dot_h), lobe.eval(n_dot_h) * n_dot_h, rtol=0, atol=0)
        torch.testing.assert_close(lobe.reflection_pdf(n_dot_h, v_dot_h), lobe.pdf(n_dot_h) / (4 * v_dot_h + eps))


def _assert_identical(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)  # v.h = 0 gives 0/0 when exact


def test_terms_equal_the_formulas_they_replaced() -> None:
    # Bit-for-bit parity with the formulas as they were written before the terms were gathered here.
    generator = torch.Generator().manual_seed(4)
    cosines = torch.rand(4, 5, 64, 1, generator=generator) * 1.2 - 0.1  # some outside [0, 1]: clamped
    n_dot_h, v_dot_h, n_dot_v, n_dot_l = cosines
    alpha = torch.rand(5, 1, 1, generator=generator)
    f0 = torch.rand(5, 1, 3, generator=generator)
    alpha_sq, k = alpha * alpha, alpha / 2.0
    mu = n_dot_h.clamp(0.0, 1.0)
    shape = math.pi * (mu * mu * (alpha_sq - 1.0) + 1.0) ** 2
    for nero_numerics, d_eps, pdf_eps in ((True, 1e-4, 1e-5), (False, 0.0, 0.0)):
        lobe = GGXMicrofacet(alpha, nero_numerics)
        _assert_identical(lobe.eval(n_dot_h), alpha_sq / (shape + d_eps))
        expected_pdf = alpha_sq / (shape + d_eps) * mu / (4.0 * v_dot_h.clamp(0.0, 1.0) + pdf_eps)
        _assert_identical(lobe.reflection_pdf(n_dot_h, v_dot_h), expected_pdf)

    def g1(cosine: torch.Tensor) -> torch.Tensor:
        cosine = cosine.clamp(0.0, 1.0)
        return cosine / (cosine * (1.0 - k) + k + NERO_EPS_SMITH_G1)

    _assert_identical(GGXMicrofacet(alpha).G(n_dot_v, n_dot_l), g1(n_dot_v) * g1(n_dot_l))
    _assert_identical(GGXMicrofacet.fresnel(f0, v_dot_h), f0 + (1.0 - f0) * (1.0 - v_dot_h.clamp(0.0, 1.0)) ** 5)
    u = torch.rand(5, 64, generator=generator)
    expected_cos = ((1.0 - u) / (1.0 + (alpha[..., 0] * alpha[..., 0] - 1.0) * u)).clamp(0.0, 1.0).sqrt()
    _assert_identical(GGXMicrofacet(alpha[..., 0]).sample_cos_theta(u), expected_cos)

    normals = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator), dim=-1)
    view = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator), dim=-1)
    metallic, albedo = torch.rand(64, 1, generator=generator), torch.rand(64, 3, generator=generator)
    # The split-sum shader's inline mirror direction and F0.
    _assert_identical(reflect(view, normals), 2.0 * (normals * view).sum(dim=-1, keepdim=True) * normals - view)
    _assert_identical(base_reflectance(metallic, albedo), 0.04 * (1.0 - metallic) + metallic * albedo)


def test_reflect_is_a_mirror() -> None:
    normals = _unit(np.random.default_rng(0).normal(size=(32, 3)))
    view = _unit(np.random.default_rng(1).normal(size=(32, 3)))
    mirrored = reflect(view, normals)
    torch.testing.assert_close(reflect(mirrored, normals), view)
    torch.testing.assert_close((mirrored * normals).sum(-1), (view * normals).sum(-1))
    facing = torch.sign((view * normals).sum(-1, keepdim=True))
    torch.testing.assert_close(half_vector(view, mirrored), normals * facing)


def test_sphere_exit_distance():
    points = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    directions = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    assert sphere_exit_distance(points, directions)[:, 0].tolist() == pytest.approx([1.0, 0.5, 1.5], abs=1e-4)


def test_sphere_exit_distance_lands_on_the_sphere_and_nero_epsilon_goes_slightly_past() -> None:
    generator = torch.Generator().manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(100, 3, generator=generator, dtype=torch.float64), dim=-1)
    points = points * torch.rand(100, 1, generator=generator, dtype=torch.float64) * 0.99
    directions = torch.nn.functional.normalize(torch.randn(100, 3, generator=generator, dtype=torch.float64), dim=-1)
    exact = sphere_exit_distance(points, directions)
    assert (exact > 0).all()
    torch.testing.assert_close((points + exact * directions).norm(dim=-1), torch.ones(100, dtype=torch.float64))
    nero = sphere_exit_distance(points, directions, eps=NERO_EPS_SPHERE_EXIT)
    assert (nero > exact).all() and float((nero - exact).max()) < 1e-5
