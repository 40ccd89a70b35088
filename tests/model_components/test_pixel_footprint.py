"""The pixel footprint: normal spread over a pixel's filter, and the GGX lobe it widens."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh
from nerfstudio.cameras.cameras import Cameras

from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.data.datamanagers.mesh_hits import pool_batch_metadata, trace_hit_pool
from nero_nerfstudio.model_components.pixel_footprint import (
    footprint_alpha,
    jittered_filter_offsets,
    normal_variance,
    pick_footprint_normals,
    pixel_filter_offsets,
)
from nero_nerfstudio.raycasting.factory import make_ray_caster


def test_normal_variance_of_two_normals_is_their_sine_squared():
    theta = 0.1
    normals = torch.tensor([[[math.sin(theta), 0.0, math.cos(theta)]], [[-math.sin(theta), 0.0, math.cos(theta)]]])
    variance = normal_variance(normals, torch.ones(2, 1, dtype=torch.bool))
    assert variance.shape == (1, 1)
    assert variance.item() == pytest.approx(math.sin(theta) ** 2, rel=1e-5)


def test_normal_variance_is_zero_for_equal_normals_and_for_fewer_than_two_valid_samples():
    normals = torch.nn.functional.normalize(torch.randn(1, 5, 3), dim=-1).expand(4, 5, 3)
    assert torch.allclose(normal_variance(normals, torch.ones(4, 5, dtype=torch.bool)), torch.zeros(5, 1), atol=1e-6)
    spread = torch.nn.functional.normalize(torch.randn(4, 5, 3), dim=-1)
    one_valid = torch.zeros(4, 5, dtype=torch.bool)
    one_valid[0] = True
    assert torch.equal(normal_variance(spread, one_valid), torch.zeros(5, 1))
    # Invalid samples do not count: the two valid ones agree.
    spread[1] = spread[0]
    one_valid[1] = True
    assert torch.allclose(normal_variance(spread, one_valid), torch.zeros(5, 1), atol=1e-6)


def test_footprint_alpha_adds_the_variance_in_quadrature_and_keeps_alpha_without_one():
    alpha = torch.tensor([[0.0025], [0.25]], requires_grad=True)
    widened = footprint_alpha(alpha, torch.tensor([[1e-3], [1e-3]]))
    assert torch.allclose(widened, torch.sqrt(alpha.detach() ** 2 + 1e-3))
    assert widened[0, 0] > 10 * alpha[0, 0] and widened[1, 0].item() == pytest.approx(0.252, abs=1e-3)
    widened.sum().backward()  # the material's alpha still learns through it
    assert bool((alpha.grad > 0).all())
    assert footprint_alpha(alpha, None) is alpha


def test_pixel_filter_offsets_are_fixed_and_have_the_filter_width():
    offsets = pixel_filter_offsets(4096, std=0.42)
    assert offsets.shape == (4096, 2)
    assert torch.equal(offsets, pixel_filter_offsets(4096, std=0.42))
    assert offsets.std(dim=0).tolist() == pytest.approx([0.42, 0.42], rel=0.05)


def test_traced_spread_on_a_sphere_follows_its_curvature():
    """Sub-pixel offsets ``d`` move the hit by ``d * depth / focal`` across a sphere of radius ``R``, so its normal
    turns by that over ``R``: at the pixel that sees the sphere head-on the spread is ``2 std^2 (depth / (f R))^2``;
    towards the silhouette it grows (the surface is foreshortened)."""
    radius, distance, focal, size = 0.5, 3.0, 40.0, 32
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=radius)
    caster = make_ray_caster(sphere.vertices, sphere.faces)
    c2w = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, distance]]])
    cameras = Cameras(camera_to_worlds=c2w, fx=focal, fy=focal, cx=size / 2, cy=size / 2, width=size, height=size)
    std = 0.3
    traced = trace_hit_pool(
        cameras,
        lambda _: torch.zeros(size, size, 3),
        caster,
        footprint_offsets=pixel_filter_offsets(256, std),
        supersample_filter_std=std,
    )
    pool = traced.hits
    assert pool.normal_variance.shape == (len(pool), 1)
    centre_row = ((pool.indices[:, 1] == size // 2) & (pool.indices[:, 2] == size // 2)).nonzero()[0, 0]
    depth = distance - radius
    expected = 2 * std**2 * (depth / (focal * radius)) ** 2
    assert pool.normal_variance[centre_row, 0].item() == pytest.approx(expected, rel=0.25)
    # Off-centre pixels inside the silhouette: more spread further out.
    offset = (pool.indices[:, 1:].float() + 0.5 - size / 2).norm(dim=-1)
    inner = pool.normal_variance[offset < 3, 0].mean()
    outer = pool.normal_variance[(offset > 6) & (offset < 7.5), 0].mean()
    assert outer > 1.3 * inner
    # The footprint's normals are kept (for supersampling): unit, on the sphere's side facing the camera, and their
    # spread is the measured one (all footprint rays of these pixels hit the sphere).
    assert pool.footprint_normals.shape == (len(pool), 256, 3) and pool.footprint_normals.dtype == torch.float16
    norms = pool.footprint_normals.float().norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(len(pool), 256), rtol=0, atol=2e-3)
    footprint_normals = torch.nn.functional.normalize(pool.footprint_normals.float(), dim=-1)  # as batches serve them
    assert bool((footprint_normals[..., 2] > 0).all())
    inside = offset < 5  # a pixel and all its footprint rays well inside the silhouette (radius 6.8 px)
    all_valid = torch.ones(256, int(inside.sum()), dtype=torch.bool)
    torch.testing.assert_close(
        normal_variance(footprint_normals[inside].transpose(0, 1), all_valid), pool.normal_variance[inside],
        rtol=0.01, atol=1e-6,
    )
    # Unless asked for, the normals are not kept, and the fixed offsets measure the same spread up to sampling noise;
    # without offsets nothing is measured.
    spread_only = trace_hit_pool(
        cameras, lambda _: torch.zeros(size, size, 3), caster, footprint_offsets=pixel_filter_offsets(256, std)
    ).hits
    assert not torch.equal(spread_only.normal_variance, pool.normal_variance)  # each pixel's own rays when kept
    torch.testing.assert_close(spread_only.normal_variance[inside], pool.normal_variance[inside], rtol=0.25, atol=0)
    torch.testing.assert_close(spread_only.normal_variance.mean(), pool.normal_variance.mean(), rtol=0.03, atol=0)
    assert spread_only.footprint_normals.shape == (len(pool), 0, 3)
    assert NeroKey.HIT_FOOTPRINT_NORMALS not in pool_batch_metadata(spread_only.select(torch.arange(4)))
    assert pool_batch_metadata(pool.select(torch.arange(4)), 2)[NeroKey.HIT_FOOTPRINT_NORMALS].shape == (6, 768)
    unmeasured = trace_hit_pool(cameras, lambda _: torch.zeros(size, size, 3), caster).hits
    assert torch.equal(unmeasured.normal_variance, torch.zeros(len(pool), 1))


def test_jittered_offsets_are_each_pixels_own_draws_from_the_filter():
    generator = torch.Generator().manual_seed(0)
    offsets = jittered_filter_offsets(8, 20000, 0.42, generator)
    assert offsets.shape == (8, 20000, 2)
    flat = offsets.reshape(-1, 2)
    torch.testing.assert_close(flat.mean(dim=0), torch.zeros(2), rtol=0, atol=0.01)
    torch.testing.assert_close(flat.std(dim=0), torch.full((2,), 0.42), rtol=0.01, atol=0)
    # Not one quadrature shared by the pixels: neighbouring pixels' offsets are uncorrelated.
    correlation = torch.corrcoef(torch.stack([offsets[:, :-1, 0].flatten(), offsets[:, 1:, 0].flatten()]))[0, 1]
    assert abs(float(correlation)) < 0.02
    torch.testing.assert_close(
        jittered_filter_offsets(8, 20000, 0.42, torch.Generator().manual_seed(0)), offsets, rtol=0, atol=0
    )


def test_footprint_normals_are_picked_uniformly_and_independently():
    torch.manual_seed(0)
    normals = torch.stack([torch.eye(3)[0].expand(4000, 3), torch.eye(3)[1].expand(4000, 3)], dim=1)  # x or y
    picks = pick_footprint_normals(normals, 2)
    assert picks.shape == (2, 4000, 3)
    is_x = picks[..., 0] == 1.0
    assert bool((is_x | (picks[..., 1] == 1.0)).all())  # only the pixel's own normals
    assert float(is_x.float().mean()) == pytest.approx(0.5, abs=0.03)
    assert float((is_x[0] == is_x[1]).float().mean()) == pytest.approx(0.5, abs=0.03)  # with replacement
