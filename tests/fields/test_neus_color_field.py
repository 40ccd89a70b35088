"""NeuS colour MLP (baseline shader): input layout, output range, view dependence, gradients."""

from __future__ import annotations

import torch

from nero_nerfstudio.fields.neus_color_field import NeusColorConfig, NeusColorField


def make_field(feature_dim: int = 8) -> NeusColorField:
    torch.manual_seed(0)
    field = NeusColorConfig(hidden_dim=32, num_layers=3, direction_frequencies=2).setup(feature_dim=feature_dim)
    assert isinstance(field, NeusColorField)
    return field


def test_colour_is_in_unit_range_and_depends_on_the_view_direction():
    field = make_field()
    points = torch.rand(20, 3) - 0.5
    normals = torch.nn.functional.normalize(torch.randn(20, 3), dim=-1)
    features = torch.randn(20, 8)
    directions = torch.nn.functional.normalize(torch.randn(20, 3), dim=-1)
    rgb = field(points, directions, normals, features)
    assert rgb.shape == (20, 3)
    assert torch.all(rgb > 0) and torch.all(rgb < 1)
    # Input: position 3 + encoded direction 3 * (1 + 2 * 2) + normal 3 + feature 8.
    assert field.mlp.in_dim == 3 + 15 + 3 + 8
    assert not torch.allclose(rgb, field(points, -directions, normals, features))


def test_gradients_reach_every_input_and_parameter():
    field = make_field()
    points = torch.rand(5, 3, requires_grad=True)
    normals = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1).requires_grad_()
    features = torch.randn(5, 8, requires_grad=True)
    field(points, torch.nn.functional.normalize(torch.randn(5, 3), dim=-1), normals, features).sum().backward()
    for tensor in (points, normals, features):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0
    assert all(parameter.grad is not None for parameter in field.parameters())
