"""NeRO's Stage I shader: split-sum reflective shading from SDF features (method.md §3.3, "AppShadingNetwork").

Per shading point: material heads give metallic ``m``, roughness ``rho`` and albedo ``a``; lights are MLPs of
integrated directional encodings. With ``r = 2 (v.n) n - v``::

    L_spec = o L_ind + (1 - o) [w_h L_h + (1 - w_h) L_dir]      (w_h = L_h = 0 without the photographer light)
    L_diff = L_dir(IDE(n, 1))
    rgb    = clamp(sRGB((1 - m) a L_diff + (F0 A + B) L_spec), 0, 1),   F0 = 0.04 (1 - m) + m a

where ``(A, B)`` comes from the split-sum table at ``(n.v, rho)`` and ``o`` is the occlusion probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Type

import torch
from jaxtyping import Float
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from nero_nerfstudio.field_components.encodings import (
    FrequencyEncoding,
    IntegratedDirectionalEncoding,
    integrated_positional_encoding,
)
from nero_nerfstudio.field_components.mlp import WeightNormMLP
from nero_nerfstudio.model_components.brdf_lut import SplitSumLUT
from nero_nerfstudio.model_components.microfacet import base_reflectance, reflect
from nero_nerfstudio.model_components.photographer_light import (
    PHOTOGRAPHER_IPE_SCALES,
    STAGE_ONE_PHOTOGRAPHER_LIGHT_BIAS,
    intersect_photographer_plane,
)
from nero_nerfstudio.utils.color import linear_to_srgb

LIGHT_BIAS = math.log(0.5)
OCCLUSION_BIAS = -0.95


@dataclass
class SplitSumShadingConfig(InstantiateConfig):
    """Configuration of :class:`SplitSumShadingField` (defaults = NeRO's Stage I shader)."""

    _target: Type = field(default_factory=lambda: SplitSumShadingField)
    hidden_dim: int = 256
    """Width of every MLP of the shader."""
    num_layers: int = 4
    """Linear layers per MLP."""
    light_exp_max: float = 0.0
    """Exponent cap of the direct and indirect lights (Stage I: 0, i.e. lights <= 1)."""
    photographer_light: bool = False
    """Model the light reflected off the photographer (on for real and custom captures)."""
    fused_material_head: bool = False
    """One MLP with 5 sigmoid outputs for metallic, roughness and albedo instead of three separate MLPs (faster,
    not NeRO's architecture)."""
    position_frequencies: int = 8
    """Octaves of the frequency encoding of the point for the indirect light and occlusion MLPs."""
    occlusion_direction_frequencies: int = 6
    """Octaves of the frequency encoding of the reflection direction for the occlusion MLP."""
    ide_degree_exponent: int = 5
    """IDE degrees 1, 2, 4, ..., 2^(n-1)."""
    photographer_ipe_scales: int = PHOTOGRAPHER_IPE_SCALES
    """Scales of the integrated positional encoding of the photographer-plane hit."""


class SplitSumShadingField(nn.Module):
    """Materials, lights, occlusion and split-sum colour at surface samples.

    Args:
        config: the shader's configuration.
        feature_dim: size of the SDF feature vector.
        brdf_lut: split-sum table lookup; the repository's table is loaded when omitted.
    """

    config: SplitSumShadingConfig

    def __init__(self, config: SplitSumShadingConfig, feature_dim: int, brdf_lut: Optional[SplitSumLUT] = None) -> None:
        super().__init__()
        self.config = config
        self.feature_dim = feature_dim
        self.brdf_lut = brdf_lut if brdf_lut is not None else SplitSumLUT()
        self.ide = IntegratedDirectionalEncoding(config.ide_degree_exponent)
        self.position_encoding = FrequencyEncoding(3, config.position_frequencies)
        self.occlusion_direction_encoding = FrequencyEncoding(3, config.occlusion_direction_frequencies)
        ide_dim = self.ide.get_out_dim()
        position_dim = self.position_encoding.get_out_dim()

        def mlp(in_dim: int, out_dim: int, **kwargs) -> WeightNormMLP:
            return WeightNormMLP(in_dim, out_dim, hidden_dim=config.hidden_dim, num_layers=config.num_layers, **kwargs)

        material_dim = feature_dim + 3
        if config.fused_material_head:
            self.material_head = mlp(material_dim, 5, output_activation="sigmoid")
        else:
            self.metallic_head = mlp(material_dim, 1, output_activation="sigmoid")
            self.roughness_head = mlp(material_dim, 1, output_activation="sigmoid")
            self.albedo_head = mlp(material_dim, 3, output_activation="sigmoid")
        self.direct_light = mlp(
            ide_dim, 3, output_activation="exp", exp_max=config.light_exp_max, final_bias=LIGHT_BIAS
        )
        self.indirect_light = mlp(
            position_dim + ide_dim, 3, output_activation="exp", exp_max=config.light_exp_max, final_bias=LIGHT_BIAS
        )
        self.occlusion = mlp(
            position_dim + self.occlusion_direction_encoding.get_out_dim(), 1, final_bias=OCCLUSION_BIAS
        )
        if config.photographer_light:
            # Always bounded to (0, 1] (default cap), whatever light_exp_max says.
            self.photographer_mlp = mlp(
                4 * config.photographer_ipe_scales,
                4,
                output_activation="exp",
                final_bias=STAGE_ONE_PHOTOGRAPHER_LIGHT_BIAS,
            )

    def get_materials(
        self, points: Float[Tensor, "num_points 3"], features: Float[Tensor, "num_points feature_dim"]
    ) -> Dict[str, Tensor]:
        """``metallic`` ``[N, 1]``, ``roughness`` ``[N, 1]`` and ``albedo`` ``[N, 3]``, all in ``(0, 1)``."""
        material_input = torch.cat([features, points], dim=-1)
        if self.config.fused_material_head:
            metallic, roughness, albedo = self.material_head(material_input).split([1, 1, 3], dim=-1)
        else:
            metallic = self.metallic_head(material_input)
            roughness = self.roughness_head(material_input)
            albedo = self.albedo_head(material_input)
        return {"metallic": metallic, "roughness": roughness, "albedo": albedo}

    def forward(
        self,
        points: Float[Tensor, "num_points 3"],
        normals: Float[Tensor, "num_points 3"],
        view_dirs: Float[Tensor, "num_points 3"],
        features: Float[Tensor, "num_points feature_dim"],
        photographer_w2p: Optional[Float[Tensor, "num_points 3 4"]] = None,
    ) -> Dict[str, Tensor]:
        """Shade surface samples.

        Args:
            points: ``[N, 3]`` positions inside the unit sphere.
            normals: ``[N, 3]`` unit normals (normalised SDF gradients).
            view_dirs: ``[N, 3]`` unit directions towards the camera (``-ray direction``).
            features: ``[N, feature_dim]`` SDF features.
            photographer_w2p: ``[N, 3, 4]`` photographer frame of each sample's camera; required when the
                photographer light is on.

        Returns:
            ``rgb`` ``[N, 3]`` sRGB in ``[0, 1]``; ``metallic``, ``roughness``, ``occlusion_prob`` (clamped),
            ``occlusion_prob_raw`` (unclamped, for the occlusion loss) ``[N, 1]``; linear ``[N, 3]`` maps ``albedo``,
            ``diffuse_albedo``, ``diffuse_light``, ``diffuse_color``, ``specular_albedo`` (F0), ``specular_ref``
            (F0 A + B), ``specular_light``, ``specular_color``, ``indirect_light``, ``occluded_indirect_light``
            (o L_ind), ``photographer_light`` (w_h L_h, zeros when off); ``reflect_dir`` ``[N, 3]``.
        """
        num_points = points.shape[0]
        materials = self.get_materials(points, features)
        metallic, roughness, albedo = materials["metallic"], materials["roughness"], materials["albedo"]

        n_dot_v = (normals * view_dirs).sum(dim=-1, keepdim=True)
        reflect_dir = reflect(view_dirs, normals)

        # One pass of the direct-light MLP for the specular (reflection, rho) and diffuse (normal, 1) lookups.
        reflect_ide = self.ide(reflect_dir, roughness)
        normal_ide = self.ide(normals, torch.ones_like(roughness))
        both_lights = self.direct_light(torch.cat([reflect_ide, normal_ide], dim=0))
        direct_light, diffuse_light = both_lights[:num_points], both_lights[num_points:]

        encoded_points = self.position_encoding(points)
        indirect_light = self.indirect_light(torch.cat([encoded_points, reflect_ide], dim=-1))
        # Detached inputs: the occlusion MLP must never move the geometry.
        occlusion_input = torch.cat(
            [encoded_points.detach(), self.occlusion_direction_encoding(reflect_dir.detach())], dim=-1
        )
        occlusion_prob_raw = 0.5 * self.occlusion(occlusion_input) + 0.5
        occlusion_prob = occlusion_prob_raw.clamp(0.0, 1.0)

        if self.config.photographer_light:
            if photographer_w2p is None:
                raise ValueError("the photographer light is on but no photographer_w2p was given to the shader")
            plane_mean, plane_variance, plane_valid = intersect_photographer_plane(
                points, reflect_dir, photographer_w2p, roughness
            )
            photographer_output = self.photographer_mlp(
                integrated_positional_encoding(plane_mean, plane_variance, self.config.photographer_ipe_scales)
            ) * plane_valid.to(points.dtype)
            photographer_weight = photographer_output[:, 3:4].clamp(0.0, 1.0)
            photographer_light = photographer_weight * photographer_output[:, :3]
            environment_light = photographer_light + (1.0 - photographer_weight) * direct_light
        else:
            photographer_light = torch.zeros_like(direct_light)
            environment_light = direct_light
        specular_light = occlusion_prob * indirect_light + (1.0 - occlusion_prob) * environment_light

        diffuse_albedo = (1.0 - metallic) * albedo
        diffuse_color = diffuse_albedo * diffuse_light
        specular_albedo = base_reflectance(metallic, albedo)
        specular_ref = self.brdf_lut.specular_reflectance(specular_albedo, n_dot_v, roughness)  # clamps both to [0, 1]
        specular_color = specular_ref * specular_light
        rgb = linear_to_srgb(diffuse_color + specular_color).clamp(0.0, 1.0)

        return {
            "rgb": rgb,
            "metallic": metallic,
            "roughness": roughness,
            "albedo": albedo,
            "diffuse_albedo": diffuse_albedo,
            "diffuse_light": diffuse_light,
            "diffuse_color": diffuse_color,
            "specular_albedo": specular_albedo,
            "specular_ref": specular_ref,
            "specular_light": specular_light,
            "specular_color": specular_color,
            "occlusion_prob": occlusion_prob,
            "occlusion_prob_raw": occlusion_prob_raw,
            "indirect_light": indirect_light,
            "occluded_indirect_light": occlusion_prob * indirect_light,
            "photographer_light": photographer_light,
            "reflect_dir": reflect_dir,
        }
