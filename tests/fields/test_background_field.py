"""Tests of the NeRF++ background field."""

from __future__ import annotations

import math

import torch
from nerfstudio.cameras.rays import Frustums, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from torch.nn.utils import parametrize

from nero_nerfstudio.fields.background_field import (
    NerfPlusPlusField,
    NerfPlusPlusFieldConfig,
    background_alpha,
    inverted_sphere_coordinates,
)
from nero_nerfstudio.utils.color import linear_to_srgb


def _outside_points(num: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(num, 3, generator=generator), dim=-1)
    return directions * (1.0 + 100.0 * torch.rand(num, 1, generator=generator))


def test_architecture_matches_nerfplusplus() -> None:
    field = NerfPlusPlusFieldConfig().setup()
    assert [layer.in_features for layer in field.trunk] == [84, 256, 256, 256, 256, 256 + 84, 256, 256]
    assert field.color_hidden.in_features == 256 + 27 and field.color_hidden.out_features == 128
    linears = [module for module in field.modules() if isinstance(module, torch.nn.Linear)]
    assert len(linears) == 12 and not any(parametrize.is_parametrized(linear) for linear in linears)
    torch.testing.assert_close(field.color_head.bias, torch.full((3,), math.log(0.5)))


def test_shapes_and_colour_range() -> None:
    field = NerfPlusPlusFieldConfig(hidden_dim=32, color_hidden_dim=16).setup()
    points = _outside_points(50)
    view_dirs = -torch.nn.functional.normalize(points, dim=-1)
    density_raw, rgb = field(points, view_dirs)
    assert density_raw.shape == (50, 1) and rgb.shape == (50, 3)
    assert torch.all(rgb >= 0) and torch.all(rgb <= linear_to_srgb(torch.tensor(math.exp(5.0))) + 1e-5)


def test_colour_cap_is_exp_five_in_linear_space() -> None:
    field = NerfPlusPlusFieldConfig(hidden_dim=32, color_hidden_dim=16).setup()
    with torch.no_grad():
        field.color_head.weight.zero_()
        field.color_head.bias.fill_(10.0)
    _, rgb = field(_outside_points(4), torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3))
    torch.testing.assert_close(rgb, linear_to_srgb(torch.full((4, 3), math.exp(5.0))))
    with torch.no_grad():
        field.color_head.bias.fill_(math.log(0.5))
    _, rgb = field(_outside_points(4), torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3))
    torch.testing.assert_close(rgb, linear_to_srgb(torch.full((4, 3), 0.5)))


def test_inverted_sphere_coordinates() -> None:
    coords = inverted_sphere_coordinates(torch.tensor([[0.0, 4.0, 0.0], [3.0, 0.0, 4.0]]))
    torch.testing.assert_close(coords, torch.tensor([[0.0, 1.0, 0.0, 0.25], [0.6, 0.0, 0.8, 0.2]]))


def test_background_alpha() -> None:
    density_raw = torch.tensor([[-50.0], [0.0], [3.0], [50.0]])
    deltas = torch.tensor([[1.0], [0.5], [0.0], [10.0]])
    alpha = background_alpha(density_raw, deltas)
    assert torch.all((alpha >= 0) & (alpha <= 1))
    expected = 1 - torch.exp(-torch.nn.functional.softplus(density_raw) * deltas)
    torch.testing.assert_close(alpha, expected)
    assert alpha[2] == 0 and alpha[3] > 0.999 and alpha[0] < 1e-6


def test_nerfstudio_field_api() -> None:
    field: NerfPlusPlusField = NerfPlusPlusFieldConfig(hidden_dim=32, color_hidden_dim=16).setup()
    directions = torch.nn.functional.normalize(torch.randn(3, 4, 3), dim=-1)
    starts = torch.linspace(2.0, 5.0, 4).view(1, 4, 1).expand(3, 4, 1)
    samples = RaySamples(
        frustums=Frustums(
            origins=torch.zeros(3, 4, 3), directions=directions, starts=starts, ends=starts + 0.5,
            pixel_area=torch.ones(3, 4, 1),
        )
    )
    density, _ = field.get_density(samples)
    rgb = field.get_outputs(samples)[FieldHeadNames.RGB]
    positions = samples.frustums.get_positions().reshape(-1, 3)
    density_raw, rgb_direct = field(positions, -directions.reshape(-1, 3))
    torch.testing.assert_close(density, torch.nn.functional.softplus(density_raw).view(3, 4, 1))
    torch.testing.assert_close(rgb, rgb_direct.view(3, 4, 3))
