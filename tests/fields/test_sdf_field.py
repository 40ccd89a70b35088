"""Tests of the NeRO SDF field: geometric initialisation, gradients, variance, grid variant, numerical gradients."""

from __future__ import annotations

import io
import math

import pytest
import torch
from nerfstudio.cameras.rays import Frustums, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from torch.nn.utils import parametrize

from nero_nerfstudio.fields.sdf_field import NeroSDFField, NeroSDFFieldConfig

SMALL = dict(num_layers=4, hidden_dim=64, skip_layers=(2,), feature_dim=16)


def _field(seed: int = 0, **overrides) -> NeroSDFField:
    torch.manual_seed(seed)
    return NeroSDFFieldConfig(**overrides).setup()


def _unit_directions(num: int, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(num, 3, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_full_size_architecture() -> None:
    field = _field()
    widths = [(layer.in_features, layer.out_features) for layer in field.layers]
    # lin3 leaves room for the 39-d re-injected input; lin4 takes 256 (= 217 + 39).
    assert widths == [(39, 256), (256, 256), (256, 256), (256, 217)] + [(256, 256)] * 4 + [(256, 257)]
    assert all(parametrize.is_parametrized(layer, "weight") for layer in field.layers)
    assert field.activation.beta == 100
    assert field.forward_geonetwork(torch.zeros(4, 3)).shape == (4, 257)


def test_geometric_init_zeroes_encoded_columns() -> None:
    field = _field()
    first, skip = field.layers[0], field.layers[4]
    assert torch.all(first.weight[:, 3:] == 0) and torch.all(first.weight[:, :3] != 0)
    assert torch.all(first.bias == 0)
    # Skip input is concat(h (217), encoded (39)): only the encoded xyz columns stay non-zero.
    assert torch.all(skip.weight[:, 217 + 3 :] == 0) and torch.all(skip.weight[:, 217 : 217 + 3] != 0)
    last = field.layers[-1]
    assert torch.all(last.bias == -0.5)
    assert abs(last.weight.mean().item() - math.sqrt(math.pi) / 16.0) < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometric_init_is_a_round_blob_of_radius_about_one_half(seed: int) -> None:
    """The SAL/IGR init is the sphere |x| - 0.5 only in the infinite-width limit. At width 256 (and with the
    Softplus offset log(2)/100 per unit) it is a round blob (NeuS behaves the same): negative in the middle,
    positive on the unit sphere, increasing outwards along every ray, zero level around radius 0.3-0.6
    depending on the seed."""
    field = _field(seed)
    directions = _unit_directions(200)
    radii = torch.linspace(0.05, 1.0, 40)
    with torch.no_grad():
        sdf = field.get_sdf((directions[:, None, :] * radii[None, :, None]).reshape(-1, 3)).view(200, 40)
    assert torch.all(sdf[:, 0] < -0.1) and torch.all(sdf[:, -1] > 0)
    outer = radii >= 0.25  # near the centre the slope is ~0 and may wiggle by < 1e-3
    assert torch.all(sdf[:, outer][:, 1:] > sdf[:, outer][:, :-1])
    zero_radius = radii[(sdf > 0).float().argmax(dim=1)]
    assert 0.25 < zero_radius.mean() < 0.75
    assert torch.all((zero_radius > 0.2) & (zero_radius < 1.0))
    # Round: the normals (SDF gradients) point away from the centre.
    points = directions * 0.6
    field.eval()
    _, _, gradient = field.get_sdf_feature_gradient(points)
    assert torch.nn.functional.cosine_similarity(gradient, points).min() > 0.8


def test_gradient_points_outwards_and_works_under_no_grad() -> None:
    field = _field(**SMALL)
    field.eval()
    points = _unit_directions(100) * 0.7
    with torch.no_grad():
        sdf, feature, gradient = field.get_sdf_feature_gradient(points)
    assert sdf.shape == (100, 1) and feature.shape == (100, 16) and gradient.shape == (100, 3)
    assert not gradient.requires_grad and not sdf.requires_grad and not feature.requires_grad
    cosine = torch.nn.functional.cosine_similarity(gradient, points)  # a narrow net is a bumpier blob
    assert cosine.min() > 0 and cosine.mean() > 0.8
    # Autograd gradient equals a central finite difference.
    step = 1e-3
    offsets = torch.eye(3) * step
    with torch.no_grad():
        differences = [field.get_sdf(points + offset) - field.get_sdf(points - offset) for offset in offsets]
        finite = torch.cat(differences, dim=-1) / (2 * step)
    torch.testing.assert_close(gradient, finite, atol=2e-3, rtol=1e-2)


def test_gradient_keeps_the_graph_in_training() -> None:
    field = _field(**SMALL)
    field.train()
    sdf, feature, gradient = field.get_sdf_feature_gradient(_unit_directions(32) * 0.5)
    assert gradient.requires_grad
    eikonal = ((gradient.norm(dim=-1) - 1.0) ** 2).mean()
    eikonal.backward()
    assert field.layers[0].parametrizations.weight.original1.grad.abs().sum() > 0


def test_inv_s_and_variance() -> None:
    field = _field(**SMALL)
    assert field.variance.shape == (1,)
    torch.testing.assert_close(field.inv_s(), torch.tensor([math.exp(3.0)]))
    with torch.no_grad():
        field.variance.fill_(5.0)
    assert field.inv_s().item() == pytest.approx(1e6)
    with torch.no_grad():
        field.variance.fill_(-5.0)
    assert field.inv_s().item() == pytest.approx(1e-6)


def test_state_dict_round_trip() -> None:
    source = _field(0, **SMALL)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target = _field(1, **SMALL)
    target.load_state_dict(torch.load(buffer, weights_only=True))
    points = _unit_directions(8) * 0.3
    torch.testing.assert_close(source.forward_geonetwork(points), target.forward_geonetwork(points), rtol=0, atol=0)


def test_field_outputs_on_ray_samples() -> None:
    field = _field(**SMALL)
    origins = torch.zeros(2, 5, 3)
    directions = torch.nn.functional.normalize(torch.ones(2, 5, 3), dim=-1)
    starts = torch.linspace(0.1, 0.9, 5).view(1, 5, 1).expand(2, 5, 1)
    samples = RaySamples(
        frustums=Frustums(
            origins=origins, directions=directions, starts=starts, ends=starts + 0.1, pixel_area=torch.ones(2, 5, 1)
        )
    )
    outputs = field(samples)
    assert outputs[FieldHeadNames.SDF].shape == (2, 5, 1)
    assert outputs[FieldHeadNames.NORMALS].shape == (2, 5, 3)
    torch.testing.assert_close(outputs[FieldHeadNames.NORMALS].norm(dim=-1), torch.ones(2, 5))
    with pytest.raises(NotImplementedError):
        field.get_density(samples)


GRID = dict(
    encoding="grid",
    grid_num_levels=4,
    grid_features_per_level=2,
    grid_min_resolution=8,
    grid_max_resolution=32,
    grid_implementation="dense",
)


def _perturb_grid_columns(field: NeroSDFField, seed: int = 0) -> None:
    """Geometric init leaves the grid's columns of the first layer at zero (the grid is ignored at init): give them
    and the grid features values, as a few training steps would."""
    generator = torch.Generator().manual_seed(seed)
    first = field.layers[0].parametrizations.weight.original1
    with torch.no_grad():
        first[:, 39:] = 0.3 * torch.randn(first[:, 39:].shape, generator=generator)
        for grid in field.grid_encoding.grids:
            grid.copy_(0.1 * torch.randn(grid.shape, generator=generator))


def test_grid_encoding_variant() -> None:
    field = _field(**GRID, **SMALL)
    assert field.grid_encoding is not None and field.grid_encoding.implementation == "dense"
    assert field.encoded_dim == 39 + 4 * 2
    assert field.layers[0].in_features == 47
    assert torch.all(field.layers[0].weight[:, 3:] == 0)
    # Skip layer: concat(h, encoded), only the encoded xyz columns non-zero.
    skip = field.layers[2]
    assert torch.all(skip.weight[:, 64 - 47 + 3 :] == 0) and torch.all(skip.weight[:, 64 - 47 : 64 - 47 + 3] != 0)
    points = _unit_directions(64) * 0.8
    with torch.no_grad():
        output = field.forward_geonetwork(points)
        sdf = field.get_sdf(points)
        # At init the grid features are ignored (zero weights), so the blob does not depend on the grid.
        for grid in field.grid_encoding.grids:
            grid.add_(torch.randn_like(grid))
        torch.testing.assert_close(field.get_sdf(points), sdf)
    assert output.shape == (64, 17) and sdf.shape == (64, 1)
    field.eval()
    with torch.no_grad():
        sdf, feature, gradient = field.get_sdf_feature_gradient(points)
    assert sdf.shape == (64, 1) and feature.shape == (64, 16) and gradient.shape == (64, 3)
    field.train()
    sdf, _, gradient = field.get_sdf_feature_gradient(points)
    (sdf.abs().mean() + ((gradient.norm(dim=-1) - 1) ** 2).mean()).backward()
    # The zeroed grid columns of the first layer learn (the grid itself starts moving once they are non-zero).
    assert field.layers[0].parametrizations.weight.original1.grad[:, 39:].abs().sum() > 0


def test_grid_field_outputs_on_ray_samples() -> None:
    field = _field(**GRID, **SMALL, gradient="numerical")
    origins = torch.zeros(2, 5, 3)
    directions = torch.nn.functional.normalize(torch.ones(2, 5, 3), dim=-1)
    starts = torch.linspace(0.1, 0.9, 5).view(1, 5, 1).expand(2, 5, 1)
    samples = RaySamples(
        frustums=Frustums(
            origins=origins, directions=directions, starts=starts, ends=starts + 0.1, pixel_area=torch.ones(2, 5, 1)
        )
    )
    outputs = field(samples)
    assert outputs[FieldHeadNames.SDF].shape == (2, 5, 1)
    assert outputs[FieldHeadNames.GRADIENT].shape == (2, 5, 3)
    torch.testing.assert_close(outputs[FieldHeadNames.NORMALS].norm(dim=-1), torch.ones(2, 5))


def test_unknown_encoding_and_gradient_are_refused() -> None:
    with pytest.raises(ValueError, match="encoding"):
        _field(encoding="hash", **SMALL)
    with pytest.raises(ValueError, match="gradient"):
        _field(gradient="central", **SMALL)


def _analytic_and_numerical(seed: int = 0, **overrides) -> tuple:
    """Two fields with the same weights, one with autograd gradients and one with finite differences."""
    analytic = _field(seed, gradient="analytic", **overrides)
    numerical = _field(seed + 1, gradient="numerical", **overrides)
    numerical.load_state_dict(analytic.state_dict())
    analytic.eval()
    numerical.eval()
    return analytic, numerical


def test_numerical_gradient_matches_autograd_with_a_small_step() -> None:
    analytic, numerical = _analytic_and_numerical(numerical_min_step=1e-3, **SMALL)
    assert numerical.numerical_step() == pytest.approx(1e-3)  # no grid: the minimum step
    points = _unit_directions(200, seed=3) * (0.3 + 0.6 * torch.rand(200, 1, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        sdf_a, feature_a, gradient_a = analytic.get_sdf_feature_gradient(points)
        sdf_n, feature_n, gradient_n = numerical.get_sdf_feature_gradient(points)
    # Same network: same SDF and feature; the gradient agrees to O(step).
    torch.testing.assert_close(sdf_n, sdf_a)
    torch.testing.assert_close(feature_n, feature_a)
    torch.testing.assert_close(gradient_n, gradient_a, atol=1e-2, rtol=1e-2)
    assert torch.nn.functional.cosine_similarity(gradient_n, gradient_a).min() > 0.999
    # And the error shrinks with the step.
    errors = []
    for step in (4e-2, 1e-2, 2.5e-3):
        numerical.config.numerical_min_step = step
        with torch.no_grad():
            errors.append((numerical.get_sdf_feature_gradient(points)[2] - gradient_a).abs().max().item())
    assert errors[0] > errors[1] > errors[2]


def test_numerical_gradient_of_the_initial_sphere_points_outwards() -> None:
    """The geometric init is a round blob close to ``|x| - r`` (whose gradient is the radial direction): finite
    differences give its outward normal, as autograd does (its length is 0.5-1 at width 256, see above)."""
    analytic, numerical = _analytic_and_numerical(0, numerical_min_step=1e-3)  # full width: closest to the sphere
    directions = _unit_directions(100, seed=5)
    with torch.no_grad():
        _, _, gradient = numerical.get_sdf_feature_gradient(directions * 0.6)
        _, _, gradient_a = analytic.get_sdf_feature_gradient(directions * 0.6)
    assert torch.nn.functional.cosine_similarity(gradient, directions).min() > 0.8
    assert torch.all(gradient.norm(dim=-1) > 0.3)
    torch.testing.assert_close(gradient, gradient_a, atol=1e-2, rtol=1e-2)


def test_numerical_gradient_of_a_grid_field_is_the_central_difference_at_the_finest_cell() -> None:
    from nero_nerfstudio.field_components.grid_encoding import central_difference_offsets, finite_difference_gradient

    field = _field(**GRID, **SMALL, gradient="numerical", numerical_min_step=1e-3)
    _perturb_grid_columns(field)
    field.eval()
    step = field.numerical_step()
    assert step == pytest.approx(2.0 / 31)  # all levels active (no schedule): the 32-node level
    points = _unit_directions(50, seed=6) * 0.5
    with torch.no_grad():
        sdf, _, gradient = field.get_sdf_feature_gradient(points)
        offsets = central_difference_offsets(step, points.device, points.dtype)
        values = torch.stack([field.get_sdf(points + offset)[:, 0] for offset in offsets])
        torch.testing.assert_close(gradient, finite_difference_gradient(values, offsets), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sdf, field.get_sdf(points))


def test_numerical_gradient_of_a_grid_field_at_init_is_close_to_autograd() -> None:
    """At init the grid is ignored, so the field is the MLP alone: finite differences at the finest cell size agree
    with autograd to second order in that step. (A soft Softplus: with beta = 100 the narrow MLP has kinks much
    sharper than the 0.065 step, and the difference smooths them: cosine down to ~0.95.)"""
    analytic, numerical = _analytic_and_numerical(**GRID, **SMALL, softplus_beta=10.0)
    step = numerical.numerical_step()
    assert step == pytest.approx(2.0 / 31)
    points = _unit_directions(100, seed=7) * 0.6
    with torch.no_grad():
        _, _, gradient_a = analytic.get_sdf_feature_gradient(points)
        _, _, gradient_n = numerical.get_sdf_feature_gradient(points)
    assert (gradient_n - gradient_a).norm(dim=-1).max() < step
    assert torch.nn.functional.cosine_similarity(gradient_n, gradient_a).min() > 0.99


def test_numerical_eikonal_trains_grid_and_mlp_without_double_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    field = _field(**GRID, **SMALL, gradient="numerical", grid_start_levels=3, grid_steps_per_level=100)
    _perturb_grid_columns(field)
    field.train()
    assert int(field.grid_encoding.num_active_levels) == 3

    def no_autograd_grad(*args, **kwargs):
        raise AssertionError("the numerical gradient must not call torch.autograd.grad")

    monkeypatch.setattr(torch.autograd, "grad", no_autograd_grad)
    points = _unit_directions(64, seed=8) * 0.6  # plain points: no requires_grad
    sdf, feature, gradient = field.get_sdf_feature_gradient(points)
    assert gradient.requires_grad and sdf.requires_grad and feature.requires_grad
    eikonal = ((gradient.norm(dim=-1) - 1.0) ** 2).mean()
    eikonal.backward()
    grids = field.grid_encoding.grids
    for level in range(3):
        assert grids[level].grad is not None and grids[level].grad.abs().sum() > 0, level
    assert grids[3].grad is None or torch.all(grids[3].grad == 0)  # inactive level
    for layer in field.layers:
        assert layer.parametrizations.weight.original1.grad.abs().sum() > 0
        assert layer.bias.grad is not None
    # The eikonal loss alone does not touch the NeuS variance.
    assert field.variance.grad is None


def test_numerical_gradient_under_no_grad_and_with_points_that_require_grad() -> None:
    field = _field(**GRID, **SMALL, gradient="numerical")
    field.train()
    points = _unit_directions(16, seed=9) * 0.4
    with torch.no_grad():
        sdf, feature, gradient = field.get_sdf_feature_gradient(points)
    assert not (sdf.requires_grad or feature.requires_grad or gradient.requires_grad)
    # Points that carry a graph keep it (the occlusion march differentiates nothing through them, but may pass them).
    leaf = points.clone().requires_grad_(True)
    _, _, gradient = field.get_sdf_feature_gradient(leaf)
    gradient.sum().backward()
    assert leaf.grad is not None and leaf.grad.shape == (16, 3)


def test_set_step_activates_levels_on_schedule_and_numerical_step_follows() -> None:
    field = _field(**GRID, **SMALL, gradient="numerical", grid_start_levels=2, grid_steps_per_level=10)
    resolutions = field.grid_encoding.resolutions
    assert resolutions == [8, 13, 20, 32]
    # At construction: the step-0 levels.
    assert int(field.grid_encoding.num_active_levels) == 2
    for step, levels in ((0, 2), (9, 2), (10, 3), (19, 3), (20, 4), (500, 4)):
        field.set_step(step)
        assert int(field.grid_encoding.num_active_levels) == levels, step
        assert field.numerical_step() == pytest.approx(2.0 / (resolutions[levels - 1] - 1)), step
    # Back to an earlier step (e.g. a resume from an early checkpoint) deactivates levels again.
    field.set_step(0)
    assert int(field.grid_encoding.num_active_levels) == 2
    points = _unit_directions(20) * 0.5
    _perturb_grid_columns(field)
    assert torch.all(field.grid_encoding(points)[:, 4:] == 0)
    # The step never goes below the minimum.
    fine = _field(**GRID, **SMALL, gradient="numerical", numerical_min_step=0.5)
    assert fine.numerical_step() == 0.5


def test_set_step_without_a_schedule_or_a_grid() -> None:
    field = _field(**GRID, **SMALL, grid_start_levels=1, grid_steps_per_level=0)
    assert int(field.grid_encoding.num_active_levels) == 4  # 0 steps per level: every level from the start
    plain = _field(**SMALL, numerical_min_step=2e-3)
    plain.set_step(1000)  # no grid: nothing to do
    assert plain.grid_encoding is None and plain.numerical_step() == 2e-3


def test_grid_field_state_dict_keeps_the_active_levels() -> None:
    source = _field(0, **GRID, **SMALL, grid_start_levels=1, grid_steps_per_level=10, gradient="numerical")
    source.set_step(15)
    _perturb_grid_columns(source)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target = _field(1, **GRID, **SMALL, grid_start_levels=1, grid_steps_per_level=10, gradient="numerical")
    assert int(target.grid_encoding.num_active_levels) == 1
    target.load_state_dict(torch.load(buffer, weights_only=True))
    assert int(target.grid_encoding.num_active_levels) == 2
    assert target.numerical_step() == source.numerical_step()
    points = _unit_directions(8) * 0.3
    source.eval()
    target.eval()
    with torch.no_grad():
        for a, b in zip(source.get_sdf_feature_gradient(points), target.get_sdf_feature_gradient(points)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_skip_without_room_is_rejected() -> None:
    with pytest.raises(ValueError, match="hidden_dim"):
        _field(num_layers=4, hidden_dim=32, skip_layers=(2,))
