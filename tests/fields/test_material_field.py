"""Stage II material network: shapes, ranges, the alpha remap and its export as perceptual roughness."""

from __future__ import annotations

import pytest
import torch

from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.fields.material_field import (
    MIN_ALPHA,
    MaterialField,
    MaterialFieldConfig,
    alpha_from_sigmoid,
    perceptual_roughness,
)


def test_alpha_remap_spans_0_0016_to_1():
    sigmoid = torch.tensor([[0.0], [0.5], [1.0]])
    alpha = alpha_from_sigmoid(sigmoid)
    assert torch.allclose(alpha, torch.tensor([[0.04**2], [0.04**2 + 0.5 * (1 - 0.04**2)], [1.0]]))
    assert MIN_ALPHA == 0.04**2


def test_perceptual_roughness_is_sqrt_alpha():
    alpha = torch.tensor([[0.0016], [0.04], [0.25], [1.0]])
    assert torch.allclose(perceptual_roughness(alpha), torch.tensor([[0.04], [0.2], [0.5], [1.0]]))
    # Differentiable down to alpha = 0.
    zero = torch.zeros(1, 1, requires_grad=True)
    perceptual_roughness(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_paper_sized_network_shapes_and_ranges():
    torch.manual_seed(0)
    field = MaterialField(MaterialFieldConfig())
    # 51-d encoding into block A, 256 + 51 into block B, 256 + 3 into each head.
    assert field.feature_block_a.in_dim == 51
    assert field.feature_block_b.in_dim == 307
    assert field.metallic_head.in_dim == 259
    points = torch.rand(100, 3) * 2.0 - 1.0
    materials = field(points)
    assert materials["metallic"].shape == (100, 1)
    assert materials["alpha"].shape == (100, 1)
    assert materials["albedo"].shape == (100, 3)
    assert ((materials["metallic"] > 0) & (materials["metallic"] < 1)).all()
    assert ((materials["albedo"] > 0) & (materials["albedo"] < 1)).all()
    assert ((materials["alpha"] >= MIN_ALPHA) & (materials["alpha"] <= 1)).all()


def test_alpha_reaches_both_ends_of_its_range_when_the_head_saturates():
    field = MaterialField(MaterialFieldConfig(hidden_dim=16))
    points = torch.rand(20, 3)
    last = field.roughness_head.layers[-1]
    with torch.no_grad():
        last.bias.fill_(-100.0)
        assert torch.allclose(field(points)["alpha"], torch.full((20, 1), MIN_ALPHA))
        last.bias.fill_(100.0)
        assert torch.allclose(field(points)["alpha"], torch.ones(20, 1))


def test_materials_vary_with_position_and_train():
    torch.manual_seed(0)
    field = MaterialField(MaterialFieldConfig(hidden_dim=32))
    points = torch.rand(64, 3) * 2.0 - 1.0
    target = (points[:, :1] > 0).float()
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-3)
    first = None
    for _ in range(200):
        loss = ((field(points)["metallic"] - target) ** 2).mean()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first


def test_initial_roughness_sets_where_the_roughness_head_starts():
    torch.manual_seed(0)
    points = torch.rand(200, 3) - 0.5
    for roughness in (0.1, 0.3, 0.8):
        field = MaterialFieldConfig(hidden_dim=32, initial_roughness=roughness).setup()
        started = perceptual_roughness(field(points)["alpha"])
        assert abs(float(started.median()) - roughness) < 0.1 * roughness + 0.02
    with pytest.raises(NeroSettingsError, match=r"^initial_roughness: must be in \(0.04, 1\), got 1.2"):
        MaterialFieldConfig(initial_roughness=1.2).setup()
