"""Tests of the Stage I split-sum shader on known inputs."""

from __future__ import annotations

import math
import pytest
import torch

from nero_nerfstudio.field_components.mlp import WeightNormMLP
from nero_nerfstudio.fields.split_sum_shading import SplitSumShadingConfig, SplitSumShadingField
from nero_nerfstudio.model_components.brdf_lut import SplitSumLUT
from nero_nerfstudio.utils.color import linear_to_srgb

FEATURE_DIM = 8
NUM_POINTS = 6


@pytest.fixture(scope="module")
def brdf_lut() -> SplitSumLUT:
    return SplitSumLUT()


def _shader(brdf_lut: SplitSumLUT, seed: int = 0, **overrides) -> SplitSumShadingField:
    torch.manual_seed(seed)
    config = SplitSumShadingConfig(hidden_dim=16, **overrides)
    return config.setup(feature_dim=FEATURE_DIM, brdf_lut=brdf_lut)


def _inputs(seed: int = 0, requires_grad: bool = False):
    generator = torch.Generator().manual_seed(seed)
    points = 0.5 * torch.nn.functional.normalize(torch.randn(NUM_POINTS, 3, generator=generator), dim=-1)
    normals = torch.nn.functional.normalize(points + 0.1 * torch.randn(NUM_POINTS, 3, generator=generator), dim=-1)
    view_dirs = torch.nn.functional.normalize(normals + 0.5 * torch.randn(NUM_POINTS, 3, generator=generator), dim=-1)
    features = torch.randn(NUM_POINTS, FEATURE_DIM, generator=generator)
    if requires_grad:
        points.requires_grad_(True)
        normals.requires_grad_(True)
    return points, normals, view_dirs, features


def _make_constant(mlp: WeightNormMLP, raw_output: torch.Tensor) -> None:
    """Make ``mlp`` ignore its input: zero last-layer weight (weight-norm magnitude g = 0), bias = raw output."""
    last = mlp.layers[-1]
    with torch.no_grad():
        last.parametrizations.weight.original0.zero_()
        last.bias.copy_(raw_output)


def _logit(value: float) -> float:
    return math.log(value / (1.0 - value))


def _set_known_shader(
    shader: SplitSumShadingField, metallic: float, roughness_logit: float, albedo, direct: float, indirect: float,
    occlusion_raw: float,
) -> None:
    _make_constant(shader.metallic_head, torch.tensor([_logit(metallic)]))
    _make_constant(shader.roughness_head, torch.tensor([roughness_logit]))
    _make_constant(shader.albedo_head, torch.tensor([_logit(a) for a in albedo]))
    _make_constant(shader.direct_light, torch.full((3,), math.log(direct)))
    _make_constant(shader.indirect_light, torch.full((3,), math.log(indirect)))
    _make_constant(shader.occlusion, torch.tensor([2.0 * occlusion_raw - 1.0]))  # o_raw = 0.5 out + 0.5


def test_output_keys_shapes_and_ranges(brdf_lut: SplitSumLUT) -> None:
    outputs = _shader(brdf_lut)(*_inputs())
    three = ["albedo", "diffuse_albedo", "diffuse_light", "diffuse_color", "specular_albedo", "specular_ref",
             "specular_light", "specular_color", "indirect_light", "occluded_indirect_light", "photographer_light",
             "reflect_dir", "rgb"]
    one = ["metallic", "roughness", "occlusion_prob", "occlusion_prob_raw"]
    for key in three:
        assert outputs[key].shape == (NUM_POINTS, 3), key
    for key in one:
        assert outputs[key].shape == (NUM_POINTS, 1), key
    assert torch.all((outputs["rgb"] >= 0) & (outputs["rgb"] <= 1))
    # Stage I lights are capped at exp(0) = 1.
    for key in ("diffuse_light", "indirect_light", "specular_light"):
        assert torch.all((outputs[key] > 0) & (outputs[key] <= 1)), key
    # Occlusion starts near 0.5 * (-0.95) + 0.5 = 0.025.
    assert torch.all((outputs["occlusion_prob_raw"] - 0.025).abs() < 0.2)


def test_mirror_metal_equals_hand_computed_split_sum(brdf_lut: SplitSumLUT) -> None:
    """metallic = 1, roughness ~ 0, albedo = 1: rgb = sRGB((F0 A + B) L_spec) with F0 = 1 and no diffuse."""
    shader = _shader(brdf_lut)
    _set_known_shader(shader, metallic=1 - 1e-7, roughness_logit=-30.0, albedo=[1 - 1e-7] * 3, direct=0.8,
                      indirect=0.3, occlusion_raw=0.4)
    points, normals, view_dirs, features = _inputs()
    outputs = shader(points, normals, view_dirs, features)

    n_dot_v = (normals * view_dirs).sum(-1, keepdim=True)
    scale_bias = brdf_lut(n_dot_v.clamp(0, 1), torch.zeros(NUM_POINTS, 1))
    specular_light = 0.4 * 0.3 + 0.6 * 0.8
    expected = linear_to_srgb((scale_bias[:, :1] + scale_bias[:, 1:]) * specular_light).expand(NUM_POINTS, 3)
    torch.testing.assert_close(outputs["rgb"], expected.clamp(0, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs["specular_light"], torch.full((NUM_POINTS, 3), specular_light))
    assert torch.all(outputs["diffuse_color"].abs() < 1e-5)
    torch.testing.assert_close(outputs["occlusion_prob"], torch.full((NUM_POINTS, 1), 0.4))
    torch.testing.assert_close(outputs["reflect_dir"], 2 * n_dot_v * normals - view_dirs)


def test_dielectric_mix_equals_hand_computed_formula(brdf_lut: SplitSumLUT) -> None:
    shader = _shader(brdf_lut)
    metallic, roughness, albedo = 0.25, 0.4, torch.tensor([0.2, 0.5, 0.9])
    _set_known_shader(shader, metallic=metallic, roughness_logit=_logit(roughness), albedo=albedo.tolist(),
                      direct=0.7, indirect=0.2, occlusion_raw=1.3)  # raw > 1 is clamped to 1 for shading
    points, normals, view_dirs, features = _inputs(seed=3)
    outputs = shader(points, normals, view_dirs, features)

    n_dot_v = (normals * view_dirs).sum(-1, keepdim=True)
    scale_bias = brdf_lut(n_dot_v.clamp(0, 1), torch.full((NUM_POINTS, 1), roughness))
    specular_albedo = 0.04 * (1 - metallic) + metallic * albedo
    diffuse_color = (1 - metallic) * albedo * 0.7
    specular_light = 1.0 * 0.2  # occlusion clamped to 1: only the indirect light
    specular_color = (specular_albedo * scale_bias[:, :1] + scale_bias[:, 1:]) * specular_light
    torch.testing.assert_close(outputs["rgb"], linear_to_srgb(diffuse_color + specular_color).clamp(0, 1))
    torch.testing.assert_close(outputs["occlusion_prob_raw"], torch.full((NUM_POINTS, 1), 1.3))
    torch.testing.assert_close(outputs["occlusion_prob"], torch.ones(NUM_POINTS, 1))
    torch.testing.assert_close(outputs["specular_albedo"], specular_albedo.expand(NUM_POINTS, 3))
    torch.testing.assert_close(outputs["diffuse_albedo"], ((1 - metallic) * albedo).expand(NUM_POINTS, 3))


def test_diffuse_light_uses_the_direct_light_network_on_the_normal(brdf_lut: SplitSumLUT) -> None:
    shader = _shader(brdf_lut)
    points, normals, view_dirs, features = _inputs()
    outputs = shader(points, normals, view_dirs, features)
    expected = shader.direct_light(shader.ide(normals, torch.ones(NUM_POINTS, 1)))
    torch.testing.assert_close(outputs["diffuse_light"], expected)


def test_occlusion_head_does_not_reach_the_geometry(brdf_lut: SplitSumLUT) -> None:
    shader = _shader(brdf_lut)
    points, normals, view_dirs, features = _inputs(requires_grad=True)
    outputs = shader(points, normals, view_dirs, features)
    point_grad, normal_grad = torch.autograd.grad(
        outputs["occlusion_prob_raw"].sum(), [points, normals], allow_unused=True, retain_graph=True
    )
    assert point_grad is None and normal_grad is None
    occlusion_params = list(shader.occlusion.parameters())
    assert all(g is not None and g.abs().sum() > 0 for g in torch.autograd.grad(
        outputs["occlusion_prob_raw"].sum(), occlusion_params, retain_graph=True))
    # The colour itself does depend on the geometry.
    point_grad, normal_grad = torch.autograd.grad(outputs["rgb"].sum(), [points, normals])
    assert point_grad.abs().sum() > 0 and normal_grad.abs().sum() > 0


def _photographer_w2p(num: int) -> torch.Tensor:
    """Photographer at (0, -3, 0) facing +y (z-up world), the frame of method.md §3.5."""
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    translation = -(rotation @ torch.tensor([0.0, -3.0, 0.0]))
    return torch.cat([rotation, translation[:, None]], dim=-1).expand(num, 3, 4)


def test_photographer_light_off_gives_zeros(brdf_lut: SplitSumLUT) -> None:
    outputs = _shader(brdf_lut)(*_inputs(), photographer_w2p=_photographer_w2p(NUM_POINTS))
    assert torch.all(outputs["photographer_light"] == 0)


def test_photographer_light_on(brdf_lut: SplitSumLUT) -> None:
    shader = _shader(brdf_lut, photographer_light=True)
    # Two points looking straight at the photographer (mirror reflection back along -y) and two looking away.
    points = torch.zeros(4, 3)
    normals = torch.tensor([[0.0, -1.0, 0.0]] * 2 + [[0.0, 1.0, 0.0]] * 2)
    view_dirs = normals.clone()
    features = torch.randn(4, FEATURE_DIM)
    outputs = shader(points, normals, view_dirs, features, photographer_w2p=_photographer_w2p(4))
    light = outputs["photographer_light"]
    assert torch.all(light[:2] > 0) and torch.all(light[:2] <= 1)
    assert torch.all(light[2:] == 0)
    with pytest.raises(ValueError, match="photographer_w2p"):
        shader(points, normals, view_dirs, features)


def test_photographer_light_blends_into_the_specular_light(brdf_lut: SplitSumLUT) -> None:
    shader = _shader(brdf_lut, photographer_light=True)
    _set_known_shader(shader, metallic=0.5, roughness_logit=0.0, albedo=[0.5] * 3, direct=0.8, indirect=0.3,
                      occlusion_raw=0.0)
    _make_constant(shader.photographer_mlp, torch.tensor([math.log(0.6)] * 3 + [math.log(0.25)]))
    points = torch.zeros(1, 3)
    normals = torch.tensor([[0.0, -1.0, 0.0]])
    outputs = shader(points, normals, normals.clone(), torch.zeros(1, FEATURE_DIM), _photographer_w2p(1))
    # w_h = 0.25, L_h = 0.6: L_spec = 0.25 * 0.6 + 0.75 * 0.8 (no occlusion).
    torch.testing.assert_close(outputs["photographer_light"], torch.full((1, 3), 0.25 * 0.6))
    torch.testing.assert_close(outputs["specular_light"], torch.full((1, 3), 0.25 * 0.6 + 0.75 * 0.8))


@pytest.mark.parametrize("light_exp_max", [0.0, 2.0])
def test_light_cap(brdf_lut: SplitSumLUT, light_exp_max: float) -> None:
    shader = _shader(brdf_lut, light_exp_max=light_exp_max)
    _make_constant(shader.direct_light, torch.full((3,), 10.0))
    outputs = shader(*_inputs())
    torch.testing.assert_close(outputs["diffuse_light"], torch.full((NUM_POINTS, 3), math.exp(light_exp_max)))


def test_fused_material_head(brdf_lut: SplitSumLUT) -> None:
    shader = _shader(brdf_lut, fused_material_head=True)
    assert shader.material_head.out_dim == 5 and not hasattr(shader, "metallic_head")
    outputs = shader(*_inputs())
    for key in ("metallic", "roughness", "albedo"):
        assert torch.all((outputs[key] > 0) & (outputs[key] < 1))
    assert outputs["albedo"].shape == (NUM_POINTS, 3)


def test_default_config_matches_nero_sizes(brdf_lut: SplitSumLUT) -> None:
    config = SplitSumShadingConfig(photographer_light=True)
    shader: SplitSumShadingField = config.setup(feature_dim=256, brdf_lut=brdf_lut)
    assert shader.metallic_head.in_dim == 259 and shader.albedo_head.out_dim == 3
    assert shader.direct_light.in_dim == 72
    assert shader.indirect_light.in_dim == 51 + 72
    assert shader.occlusion.in_dim == 51 + 39
    assert shader.photographer_mlp.in_dim == 24 and shader.photographer_mlp.out_dim == 4
    assert shader.metallic_head.layers[0].out_features == 256 and len(shader.metallic_head.layers) == 4
    torch.testing.assert_close(shader.occlusion.layers[-1].bias, torch.tensor([-0.95]))
    torch.testing.assert_close(shader.photographer_mlp.layers[-1].bias, torch.full((4,), math.log(0.01)))
    torch.testing.assert_close(shader.indirect_light.layers[-1].bias, torch.full((3,), math.log(0.5)))


def test_empty_batch(brdf_lut: SplitSumLUT) -> None:
    """Rays with no sample inside the unit sphere give an empty batch; the shader must pass it through."""
    shader = _shader(brdf_lut, photographer_light=True)
    empty = torch.zeros(0, 3)
    outputs = shader(empty, empty, empty, torch.zeros(0, FEATURE_DIM), torch.zeros(0, 3, 4))
    assert outputs["rgb"].shape == (0, 3) and outputs["occlusion_prob_raw"].shape == (0, 1)


def test_loads_the_repository_table_by_default() -> None:
    shader = SplitSumShadingConfig(hidden_dim=8).setup(feature_dim=FEATURE_DIM)
    assert isinstance(shader.brdf_lut, SplitSumLUT)
    assert "brdf_lut.table" not in shader.state_dict()  # an asset, not a checkpointed state
