"""NeRO's ray sampler: sphere near/far, sample counts and order, NeuS up-sampling at a known surface."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.cameras.rays import RayBundle

from nero_nerfstudio.model_components.nero_sampler import (
    NeroSamplerConfig,
    background_depths,
    coarse_depths,
    sphere_near_far,
)

SPHERE_RADIUS = 0.5


def sphere_sdf(points: torch.Tensor) -> torch.Tensor:
    return points.norm(dim=-1, keepdim=True) - SPHERE_RADIUS


def make_bundle(origins, directions) -> RayBundle:
    origins = torch.as_tensor(origins, dtype=torch.float32)
    directions = torch.nn.functional.normalize(torch.as_tensor(directions, dtype=torch.float32), dim=-1)
    return RayBundle(origins=origins, directions=directions, pixel_area=torch.ones(origins.shape[0], 1))


def test_near_far_through_past_inside_and_away():
    origins = torch.tensor([[0.0, 0.0, 3.0], [2.0, 0.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    nears, fars = sphere_near_far(origins, directions)
    # Through the centre and past the sphere: both one unit either side of the closest approach at t = 3.
    assert nears[:2, 0].tolist() == pytest.approx([2.0, 2.0])
    assert fars[:2, 0].tolist() == pytest.approx([4.0, 4.0])
    # From the centre: near clamps to 1e-3, far is the sphere.
    assert nears[2, 0].item() == pytest.approx(1e-3)
    assert fars[2, 0].item() == pytest.approx(1.0)
    # Pointing away from the object: still a valid, non-empty range.
    assert fars[3, 0].item() > nears[3, 0].item() > 0.0


def test_coarse_depths_span_and_jitter():
    nears, fars = torch.full((4, 1), 2.0), torch.full((4, 1), 4.0)
    depths = coarse_depths(nears, fars, 64, perturb=False)
    assert depths[0, 0].item() == pytest.approx(2.0) and depths[0, -1].item() == pytest.approx(4.0)
    torch.manual_seed(0)
    jittered = coarse_depths(nears, fars, 64, perturb=True)
    offsets = jittered - depths
    # One offset per ray, within +-1/64.
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-5)
    assert offsets.abs().max().item() <= 1.0 / 64 + 1e-6
    assert offsets[:, 0].std().item() > 0.0


def test_background_depths_inverse_spacing():
    fars = torch.tensor([[4.0], [2.0]])
    depths = background_depths(fars, 32, perturb=False)
    assert depths.shape == (2, 32)
    assert torch.all(depths[:, 1:] > depths[:, :-1])
    assert torch.all(depths[:, 0] > fars[:, 0])
    # From far / (1 - 1/33) + 1/32 out to far / 1e-3 + 1/32.
    assert depths[0, 0].item() == pytest.approx(4.0 / (1 - 1 / 33) + 1 / 32, rel=1e-5)
    assert depths[0, -1].item() == pytest.approx(4.0 / 1e-3 + 1 / 32, rel=1e-5)
    torch.manual_seed(0)
    jittered = background_depths(fars, 32, perturb=True)
    assert torch.all(jittered[:, 1:] >= jittered[:, :-1]) and torch.all(jittered[:, 0] > fars[:, 0])


@pytest.mark.parametrize("training", [False, True])
def test_sample_counts_sorted_and_contiguous(training: bool):
    sampler = NeroSamplerConfig(num_coarse=64, num_upsample_rounds=4, num_upsample_per_round=16, num_background=32).setup()
    sampler.train(training)
    torch.manual_seed(0)
    bundle = make_bundle(
        [[0.0, 0.0, 3.0], [0.3, 0.2, 3.0], [2.0, 0.0, 3.0], [0.0, -2.5, 1.0]],
        [[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 1.0, -0.4]],
    )
    samples = sampler(bundle, sdf_fn=sphere_sdf, inv_s=20.0)
    assert samples.shape == (4, 160) and sampler.num_samples_per_ray == 160
    starts, ends = samples.frustums.starts[..., 0], samples.frustums.ends[..., 0]
    assert torch.all(starts[:, 1:] >= starts[:, :-1])
    # Bins run from each depth to the next.
    assert torch.allclose(ends[:, :-1], starts[:, 1:])
    assert torch.all(samples.deltas > 0)
    _, fars = sphere_near_far(bundle.origins, bundle.directions)
    assert torch.all(starts[:, 128:] > fars)


def test_upsamples_concentrate_at_the_surface():
    sampler = NeroSamplerConfig().setup()
    sampler.eval()
    bundle = make_bundle([[0.0, 0.0, 3.0], [0.0, 0.25, 3.0]], [[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    samples = sampler(bundle, sdf_fn=sphere_sdf, inv_s=1e4)
    inside = samples.frustums.starts[:, :128, 0]
    surface_depth = 3.0 - torch.sqrt(SPHERE_RADIUS**2 - torch.tensor([0.0, 0.25]) ** 2)
    near_surface = ((inside - surface_depth[:, None]).abs() < 0.02).sum(dim=-1)
    # The 64 coarse depths are 2/63 apart, so at most 2 of them lie within 0.02: the rest are up-samples.
    assert torch.all(near_surface >= 48), near_surface


def test_sdf_is_evaluated_once_per_new_depth_without_gradients():
    calls = []

    def counting_sdf(points: torch.Tensor) -> torch.Tensor:
        calls.append((points.shape[0], torch.is_grad_enabled()))
        return sphere_sdf(points)

    sampler = NeroSamplerConfig(num_coarse=32, num_upsample_rounds=3, num_upsample_per_round=8, num_background=8).setup()
    bundle = make_bundle([[0.0, 0.0, 3.0]] * 5, [[0.0, 0.0, -1.0]] * 5)
    sampler(bundle, sdf_fn=counting_sdf)
    assert [count for count, _ in calls] == [5 * 32, 5 * 8, 5 * 8]
    assert not any(grad for _, grad in calls)


def test_eval_is_deterministic_and_training_is_not():
    sampler = NeroSamplerConfig(num_coarse=16, num_upsample_rounds=2, num_upsample_per_round=8, num_background=8).setup()
    bundle = make_bundle([[0.1, 0.0, 3.0]] * 3, [[0.0, 0.0, -1.0]] * 3)
    sampler.eval()
    first = sampler(bundle, sdf_fn=sphere_sdf).frustums.starts
    second = sampler(bundle, sdf_fn=sphere_sdf).frustums.starts
    assert torch.equal(first, second)
    sampler.train()
    torch.manual_seed(1)
    jittered = sampler(bundle, sdf_fn=sphere_sdf).frustums.starts
    assert not torch.allclose(first, jittered)


def test_clip_sample_variance_caps_sharpness_at_inv_s():
    bundle = make_bundle([[0.0, 0.0, 3.0]], [[0.0, 0.0, -1.0]])
    clipped = NeroSamplerConfig(clip_sample_variance=True).setup().eval()
    free = NeroSamplerConfig(clip_sample_variance=False).setup().eval()
    spread_clipped = clipped(bundle, sdf_fn=sphere_sdf, inv_s=2.0).frustums.starts[0, :128, 0]
    spread_free = free(bundle, sdf_fn=sphere_sdf, inv_s=2.0).frustums.starts[0, :128, 0]
    # A blunt inv_s spreads the up-samples; without clipping they stay tight around the surface.
    assert ((spread_free - 2.5).abs() < 0.02).sum() > ((spread_clipped - 2.5).abs() < 0.02).sum()


def test_rejects_missing_sdf_and_batched_bundles():
    sampler = NeroSamplerConfig().setup()
    bundle = make_bundle([[0.0, 0.0, 3.0]], [[0.0, 0.0, -1.0]])
    with pytest.raises(ValueError, match="SDF"):
        sampler(bundle)
    with pytest.raises(ValueError, match="flat"):
        sampler(bundle.reshape((1, 1)), sdf_fn=sphere_sdf)
