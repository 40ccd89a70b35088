"""Tests of the weight-normalised MLP ("MLP4")."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch.nn.utils import parametrize

from nero_nerfstudio.field_components.mlp import WeightNormMLP


def _large_inputs(in_dim: int) -> torch.Tensor:
    return 50.0 * torch.randn(256, in_dim, generator=torch.Generator().manual_seed(0))


def test_structure_and_weight_norm_on_every_layer() -> None:
    mlp = WeightNormMLP(10, 3, hidden_dim=32, num_layers=4)
    assert len(mlp.layers) == 4
    assert [layer.in_features for layer in mlp.layers] == [10, 32, 32, 32]
    assert all(parametrize.is_parametrized(layer, "weight") for layer in mlp.layers)
    assert mlp(torch.zeros(7, 10)).shape == (7, 3)


def test_sigmoid_output_is_bounded() -> None:
    out = WeightNormMLP(8, 4, hidden_dim=16, output_activation="sigmoid")(_large_inputs(8))
    assert torch.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("exp_max", [0.0, 5.0])
def test_exp_output_is_capped(exp_max: float) -> None:
    mlp = WeightNormMLP(8, 3, hidden_dim=16, output_activation="exp", exp_max=exp_max, final_bias=20.0)
    out = mlp(_large_inputs(8))
    assert torch.all(out > 0)
    assert torch.all(out <= math.exp(exp_max) + 1e-6)
    assert torch.isclose(out.max(), torch.tensor(math.exp(exp_max)))  # the huge bias saturates the cap


def test_final_bias_sets_the_initial_output() -> None:
    mlp = WeightNormMLP(8, 3, hidden_dim=16, output_activation="exp", final_bias=math.log(0.5))
    assert torch.allclose(mlp.layers[-1].bias, torch.full((3,), math.log(0.5)))
    # Zero input: every ReLU sees only the hidden biases; with them zeroed the output is exp(final bias).
    with torch.no_grad():
        for layer in mlp.layers[:-1]:
            layer.bias.zero_()
    torch.testing.assert_close(mlp(torch.zeros(2, 8)), torch.full((2, 3), 0.5))


def test_identity_output_is_unbounded() -> None:
    out = WeightNormMLP(8, 1, hidden_dim=16, output_activation="none", final_bias=-100.0)(torch.zeros(3, 8))
    assert torch.all(out < -50)


def test_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    source = WeightNormMLP(6, 2, hidden_dim=16, output_activation="sigmoid")
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    target = WeightNormMLP(6, 2, hidden_dim=16, output_activation="sigmoid")
    x = torch.randn(5, 6)
    assert not torch.allclose(source(x), target(x))
    target.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(source(x), target(x), rtol=0, atol=0)
    assert any("parametrizations.weight.original0" in key for key in source.state_dict())


def test_rejects_unknown_activation() -> None:
    with pytest.raises(ValueError, match="output_activation"):
        WeightNormMLP(3, 3, output_activation="relu")  # type: ignore[arg-type]
