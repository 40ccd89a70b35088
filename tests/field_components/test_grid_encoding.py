"""Tests of the fast SDF's multi-resolution grid: dense lookup vs the trilinear reference, level resolutions,
coarse-to-fine activation and its persistence, and the central finite-difference gradient."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from nero_nerfstudio.field_components.grid_encoding import (
    MultiResGridEncoding,
    central_difference_offsets,
    coarse_to_fine_levels,
    finite_difference_gradient,
    level_resolutions,
    trilinear_reference,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_points(num: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(num, 3, generator=_generator(seed), dtype=dtype) * 2.0 - 1.0


def _border_points() -> torch.Tensor:
    """Corners, faces, points a hair inside and outside the cube, and points exactly on grid nodes."""
    values = torch.tensor([-1.0, -1.0 + 1e-6, -0.5, 0.0, 0.5, 1.0 - 1e-6, 1.0])
    grid = torch.stack(torch.meshgrid(values, values, values, indexing="ij"), dim=-1).reshape(-1, 3)
    outside = torch.tensor([[1.3, 0.2, -0.1], [-1.7, -1.2, 0.9], [0.0, 2.0, -3.0]])
    return torch.cat([grid, outside])


def _dense_encoding(seed: int = 0, **kwargs) -> MultiResGridEncoding:
    """A dense encoding whose features are O(1) random values (the 1e-4 init would make every check trivial)."""
    torch.manual_seed(seed)
    settings = dict(num_levels=4, features_per_level=2, min_resolution=4, max_resolution=16, implementation="dense")
    settings.update(kwargs)
    encoding = MultiResGridEncoding(**settings)  # type: ignore[arg-type]
    with torch.no_grad():
        for grid in encoding.grids:
            grid.copy_(torch.randn(grid.shape, generator=_generator(seed + grid.shape[-1])))
    return encoding


# ----------------------------------------------------------------------------------------------------------------
# Trilinear reference and dense lookup


def test_reference_reproduces_node_values_and_linear_functions():
    """The reference's convention (``grid[:, k, j, i]`` at ``x_i, y_j, z_k``, nodes on [-1, 1] with both ends) and
    exact reproduction of an affine function, independently of grid_sample."""
    resolution = (5, 7, 9)  # (z, y, x) node counts, all different to catch swapped axes
    axes = [torch.linspace(-1.0, 1.0, count, dtype=torch.float64) for count in resolution]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    coefficients = torch.tensor([0.3, -1.2, 2.5], dtype=torch.float64)
    affine = 0.7 + coefficients[0] * x + coefficients[1] * y + coefficients[2] * z  # [z, y, x]
    noise = torch.randn(resolution, generator=_generator(3), dtype=torch.float64)
    grid = torch.stack([affine, noise])  # channel 0 affine, channel 1 random

    # Node values come back exactly.
    nodes = torch.stack([x, y, z], dim=-1).reshape(-1, 3)
    torch.testing.assert_close(trilinear_reference(grid, nodes), grid.reshape(2, -1).T)
    # An affine function is interpolated exactly anywhere in the cube.
    points = _random_points(200, seed=1, dtype=torch.float64)
    expected = 0.7 + points @ coefficients
    torch.testing.assert_close(trilinear_reference(grid, points)[:, 0], expected)
    # Outside the cube the border value (clamped coordinates).
    outside = torch.tensor([[1.5, 0.0, 0.0], [-2.0, 3.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(trilinear_reference(grid, outside), trilinear_reference(grid, outside.clamp(-1, 1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_matches_grid_sample_on_a_non_cubic_grid(seed: int):
    grid = torch.randn(3, 5, 6, 7, generator=_generator(seed), dtype=torch.float64)
    points = torch.cat([_random_points(300, seed, torch.float64) * 1.1, _border_points().double()])
    sampled = F.grid_sample(
        grid[None], points.view(1, 1, 1, -1, 3), mode="bilinear", padding_mode="border", align_corners=True
    )
    torch.testing.assert_close(trilinear_reference(grid, points), sampled.view(3, -1).T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_lookup_equals_the_reference_level_by_level(seed: int):
    encoding = _dense_encoding(seed)
    points = torch.cat([_random_points(500, seed), _border_points()])
    features = encoding(points)
    assert features.shape == (points.shape[0], 8) and encoding.get_out_dim() == 8
    expected = torch.cat([trilinear_reference(grid[0], points) for grid in encoding.grids], dim=-1)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    # Levels are concatenated coarsest first, with the features of one level side by side.
    for level, grid in enumerate(encoding.grids):
        assert grid.shape == (1, 2, *[encoding.resolutions[level]] * 3)


def test_gradients_reach_the_grid_parameters_like_the_reference():
    encoding = _dense_encoding(4)
    points = torch.cat([_random_points(300, 4), _border_points()])
    weights = torch.randn(points.shape[0], encoding.get_out_dim(), generator=_generator(5))
    (encoding(points) * weights).sum().backward()
    reference_grids = [grid.detach().clone().requires_grad_(True) for grid in encoding.grids]
    reference = torch.cat([trilinear_reference(grid[0], points) for grid in reference_grids], dim=-1)
    (reference * weights).sum().backward()
    for grid, reference_grid in zip(encoding.grids, reference_grids):
        assert grid.grad is not None and grid.grad.abs().sum() > 0
        torch.testing.assert_close(grid.grad, reference_grid.grad, atol=1e-4, rtol=1e-4)


def test_gradient_with_respect_to_the_points_is_the_trilinear_slope():
    """Inside a cell the lookup is trilinear: autograd through grid_sample gives the same slope as the reference."""
    encoding = _dense_encoding(6, num_levels=2, min_resolution=5, max_resolution=9)
    points = (_random_points(100, 6) * 0.95).requires_grad_(True)
    (slope,) = torch.autograd.grad(encoding(points).sum(), points)
    reference_points = points.detach().clone().requires_grad_(True)
    reference = torch.cat([trilinear_reference(grid[0].detach(), reference_points) for grid in encoding.grids], -1)
    (reference_slope,) = torch.autograd.grad(reference.sum(), reference_points)
    torch.testing.assert_close(slope, reference_slope, atol=1e-4, rtol=1e-4)


def test_initial_features_are_tiny():
    torch.manual_seed(0)
    encoding = MultiResGridEncoding(num_levels=3, min_resolution=4, max_resolution=8, implementation="dense")
    features = encoding(_random_points(100))
    assert 0 < features.abs().max() <= 1e-4


def test_implementation_choice():
    from nerfstudio.utils.external import TCNN_EXISTS

    encoding = MultiResGridEncoding(num_levels=2, min_resolution=4, max_resolution=8, implementation="auto")
    assert encoding.implementation == ("tcnn" if TCNN_EXISTS else "dense")
    if not TCNN_EXISTS:
        with pytest.raises(ValueError, match="tinycudann"):
            MultiResGridEncoding(num_levels=2, min_resolution=4, max_resolution=8, implementation="tcnn")
    with pytest.raises(ValueError, match="unknown grid implementation"):
        MultiResGridEncoding(num_levels=2, min_resolution=4, max_resolution=8, implementation="sparse")  # type: ignore


# ----------------------------------------------------------------------------------------------------------------
# Level resolutions and coarse to fine


@pytest.mark.parametrize("num_levels, low, high", [(8, 16, 128), (4, 4, 16), (16, 16, 2048), (5, 10, 10)])
def test_level_resolutions_are_geometric(num_levels: int, low: int, high: int):
    resolutions = level_resolutions(num_levels, low, high)
    assert len(resolutions) == num_levels and resolutions[0] == low and resolutions[-1] == high
    assert all(b >= a for a, b in zip(resolutions, resolutions[1:]))
    growth = (high / low) ** (1.0 / (num_levels - 1))
    for level, resolution in enumerate(resolutions):
        assert abs(resolution - low * growth**level) <= 0.5 + 1e-9


def test_level_resolutions_edge_cases_and_errors():
    assert level_resolutions(1, 16, 128) == [16]
    assert level_resolutions(2, 16, 128) == [16, 128]
    for arguments in ((0, 16, 128), (4, 1, 128), (4, 32, 16)):
        with pytest.raises(ValueError, match="num_levels"):
            level_resolutions(*arguments)


def test_coarse_to_fine_schedule():
    assert [coarse_to_fine_levels(step, 2, 10, 5) for step in (0, 9, 10, 19, 20, 30, 31, 1000)] == [
        2, 2, 3, 3, 4, 5, 5, 5,
    ]  # fmt: skip
    assert coarse_to_fine_levels(0, 2, 0, 5) == 5  # no schedule: all levels from the start
    assert coarse_to_fine_levels(123, 8, 10, 5) == 5  # never more than there are


def test_inactive_levels_output_zero_and_get_no_gradient():
    encoding = _dense_encoding(7)
    encoding.set_active_levels(2)
    points = _random_points(200, 7)
    features = encoding(points)
    assert torch.all(features[:, 4:] == 0)
    expected = torch.cat([trilinear_reference(grid[0], points) for grid in encoding.grids[:2]], dim=-1)
    torch.testing.assert_close(features[:, :4], expected, atol=1e-5, rtol=1e-5)
    (features * torch.randn(features.shape, generator=_generator(8))).sum().backward()
    for level, grid in enumerate(encoding.grids):
        if level < 2:
            assert grid.grad is not None and grid.grad.abs().sum() > 0
        else:
            assert grid.grad is None or torch.all(grid.grad == 0)
    # The finest active level sets the cell size.
    assert encoding.finest_active_cell() == pytest.approx(2.0 / (encoding.resolutions[1] - 1))
    encoding.set_active_levels(4)
    assert torch.all(encoding(points)[:, 4:] != 0)
    assert encoding.finest_active_cell() == pytest.approx(2.0 / (encoding.resolutions[-1] - 1))


@pytest.mark.parametrize("requested, expected", [(-3, 1), (0, 1), (1, 1), (3, 3), (4, 4), (99, 4)])
def test_set_active_levels_clamps(requested: int, expected: int):
    encoding = _dense_encoding(0)
    encoding.set_active_levels(requested)
    assert int(encoding.num_active_levels) == expected
    assert encoding.num_active_levels.dtype == torch.long
    nonzero_levels = (encoding(_random_points(50)).view(50, 4, 2) != 0).any(dim=-1).any(dim=0)
    assert nonzero_levels.tolist() == [level < expected for level in range(4)]


def test_new_encoding_has_all_levels_active():
    assert int(_dense_encoding(0).num_active_levels) == 4


def test_active_levels_survive_a_state_dict_round_trip():
    source = _dense_encoding(1)
    source.set_active_levels(2)
    state = source.state_dict()
    assert "num_active_levels" in state and int(state["num_active_levels"]) == 2
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    target = _dense_encoding(2)
    assert int(target.num_active_levels) == 4
    target.load_state_dict(torch.load(buffer, weights_only=True))
    assert int(target.num_active_levels) == 2
    points = _random_points(64, 3)
    torch.testing.assert_close(target(points), source(points), rtol=0, atol=0)
    assert torch.all(target(points)[:, 4:] == 0)


# ----------------------------------------------------------------------------------------------------------------
# Central finite differences


def _numerical_gradient_of(function, points: torch.Tensor, step: float) -> torch.Tensor:
    offsets = central_difference_offsets(step, points.device, points.dtype)
    values = torch.stack([function(points + offset) for offset in offsets])
    return finite_difference_gradient(values, offsets)


def test_central_difference_offsets_are_symmetric_axis_steps():
    step = 0.25
    offsets = central_difference_offsets(step, torch.device("cpu"), torch.float64)
    assert offsets.shape == (6, 3) and offsets.dtype == torch.float64
    torch.testing.assert_close(offsets.sum(dim=0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(offsets.T @ offsets, 2 * step**2 * torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(offsets.norm(dim=-1), torch.full((6,), step, dtype=torch.float64))


@pytest.mark.parametrize("step", [1e-3, 0.1, 0.7])
def test_numerical_gradient_is_exact_for_an_affine_function(step: float):
    points = _random_points(100, 11, torch.float64) * 3.0
    coefficients = torch.tensor([0.4, -2.0, 1.3], dtype=torch.float64)
    gradient = _numerical_gradient_of(lambda p: 5.0 + p @ coefficients, points, step)
    torch.testing.assert_close(gradient, coefficients.expand(100, 3))


@pytest.mark.parametrize("step", [1e-2, 0.3])
def test_numerical_gradient_is_exact_for_any_quadratic(step: float):
    """Mixed terms included (a four-point tetrahedron would be off by ``step * (H_yz, H_xz, H_xy)`` here)."""
    points = _random_points(100, 12, torch.float64)
    curvature = torch.tensor([1.0, -3.0, 0.5], dtype=torch.float64)

    def quadratic(p: torch.Tensor) -> torch.Tensor:
        return (curvature * p**2).sum(dim=-1) + p[:, 0] + p[:, 0] * p[:, 1] - 2.0 * p[:, 1] * p[:, 2]

    gradient = _numerical_gradient_of(quadratic, points, step)
    x, y, z = points.unbind(dim=-1)
    expected = 2.0 * curvature * points + torch.stack([1.0 + y, x - 2.0 * z, -2.0 * y], dim=-1)
    torch.testing.assert_close(gradient, expected)


def test_numerical_gradient_matches_the_analytic_normal_of_a_sphere_sdf():
    """The sphere SDF ``|x| - 0.5`` away from its centre: second-order convergence to the analytic gradient."""
    directions = F.normalize(torch.randn(300, 3, generator=_generator(13), dtype=torch.float64), dim=-1)
    radii = 0.3 + 0.6 * torch.rand(300, 1, generator=_generator(14), dtype=torch.float64)
    points = directions * radii

    def sphere(p: torch.Tensor) -> torch.Tensor:
        return p.norm(dim=-1) - 0.5

    errors = []
    for step in (0.04, 0.02, 0.01):
        gradient = _numerical_gradient_of(sphere, points, step)
        errors.append((gradient - directions).norm(dim=-1).max().item())
        assert F.cosine_similarity(gradient, directions).min() > 1.0 - step
    for coarse, fine in zip(errors, errors[1:]):
        assert fine < 0.35 * coarse  # halving the step quarters the error
