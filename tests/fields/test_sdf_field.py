"""Tests of the NeRO SDF field: geometric initialisation, gradients, variance, hash variant."""

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


def test_hash_encoding_variant() -> None:
    field = _field(encoding="hash", hash_num_levels=4, hash_log2_table_size=10, hash_max_resolution=64, **SMALL)
    assert field.encoded_dim == 39 + 8
    assert torch.all(field.layers[0].weight[:, 3:] == 0)
    points = _unit_directions(64) * 0.8
    with torch.no_grad():
        sdf = field.get_sdf(points)
        # At init the hash features are ignored (zero weights), so the blob does not depend on the table.
        field.hash_encoding.hash_table.add_(torch.randn_like(field.hash_encoding.hash_table))
        torch.testing.assert_close(field.get_sdf(points), sdf)
    assert sdf.shape == (64, 1)
    field.train()
    sdf, _, gradient = field.get_sdf_feature_gradient(points)
    (sdf.abs().mean() + ((gradient.norm(dim=-1) - 1) ** 2).mean()).backward()
    # The zeroed hash columns of the first layer learn (the table itself starts moving once they are non-zero).
    assert field.layers[0].parametrizations.weight.original1.grad[:, 39:].abs().sum() > 0


def test_skip_without_room_is_rejected() -> None:
    with pytest.raises(ValueError, match="hidden_dim"):
        _field(num_layers=4, hidden_dim=32, skip_layers=(2,))
