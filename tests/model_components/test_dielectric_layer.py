"""The diffuse base's weight under the dielectric specular layer: 1 minus that layer's directional albedo."""

from __future__ import annotations

import math

import torch

from nero_nerfstudio.model_components.brdf_lut import SplitSumLUT
from nero_nerfstudio.model_components.dielectric_layer import diffuse_layer_weight
from nero_nerfstudio.model_components.monte_carlo_shading import unbiased_monte_carlo_shade


def test_the_weight_is_what_a_dielectric_specular_lobe_does_not_reflect_under_white_light():
    split_sum = SplitSumLUT()
    cosines = torch.tensor([0.15, 0.3, 0.6, 0.95])
    count = len(cosines)
    normals = torch.tensor([[0.0, 0.0, 1.0]]).expand(count, 3)
    view_dirs = torch.stack([torch.sqrt(1.0 - cosines**2), torch.zeros(count), cosines], dim=-1)
    for roughness in (0.1, 0.3, 0.5):
        weight = diffuse_layer_weight(normals, view_dirs, torch.full((count, 1), roughness), split_sum)
        # The specular lobe alone (metallic 0) under a white environment reflects its directional albedo.
        materials = {
            "metallic": torch.zeros(count, 1),
            "alpha": torch.full((count, 1), roughness**2),
            "albedo": torch.zeros(count, 3),
        }
        generator = torch.Generator().manual_seed(0)
        white = lambda directions: torch.ones_like(directions)  # noqa: E731
        reflected = unbiased_monte_carlo_shade(
            normals, view_dirs, materials, white, 2, 20000, generator, "smith"
        ).specular_color[:, :1]
        # Blender's Smith G is height-correlated (the table's), ours separable: equal within 1 % up to 0.5.
        assert torch.allclose(1.0 - weight, reflected, atol=0.01), (roughness, weight, reflected)
    # Facing: F0 = 0.04 reflected; towards grazing the layer reflects more and lets less through.
    facing = diffuse_layer_weight(normals[:1], normals[:1], torch.full((1, 1), 0.1), split_sum)
    assert math.isclose(float(facing), 0.96, abs_tol=0.005)
    assert bool((weight[1:] > weight[:-1]).all()), weight
