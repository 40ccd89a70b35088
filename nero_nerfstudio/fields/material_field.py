"""Stage II material network (method.md §4.2): metallic, GGX alpha and albedo as functions of the surface position.

A feature network on the frequency-encoded position (two weight-normalised blocks with a skip of the encoding into
the second) feeds three sigmoid heads that also see the raw position. The roughness head's sigmoid is remapped to
the GGX alpha ``0.04^2 + s (1 - 0.04^2)``; NeRO uses that value directly as GGX alpha, and exports ``sqrt(alpha)``
as the (perceptual) roughness. The roughness and albedo heads' pre-sigmoid values are returned too, for the guards
that keep them where the sigmoid still has a slope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Type

import torch
from jaxtyping import Float
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.field_components.encodings import FrequencyEncoding
from nero_nerfstudio.field_components.mlp import WeightNormMLP

MIN_ROUGHNESS = 0.04
"""Smallest perceptual roughness; the GGX alpha never drops below its square."""
MIN_ALPHA = MIN_ROUGHNESS**2
NERO_EPS_PERCEPTUAL_ROUGHNESS = 1e-7
"""NeRO floors alpha at this before the square root of its roughness export (keeps the root differentiable)."""


def alpha_from_sigmoid(sigmoid: Float[Tensor, "*batch 1"]) -> Float[Tensor, "*batch 1"]:
    """GGX alpha ``0.04^2 + s (1 - 0.04^2)`` in ``[0.0016, 1]`` from the roughness head's sigmoid ``s``."""
    return MIN_ALPHA + sigmoid * (1.0 - MIN_ALPHA)


def perceptual_roughness(alpha: Float[Tensor, "*batch 1"]) -> Float[Tensor, "*batch 1"]:
    """Exported / displayed roughness ``sqrt(max(alpha, NERO_EPS_PERCEPTUAL_ROUGHNESS))``."""
    return torch.sqrt(alpha.clamp_min(NERO_EPS_PERCEPTUAL_ROUGHNESS))


def albedo_logit(albedo: float, name: str = "albedo") -> float:
    """The albedo head's pre-sigmoid value that gives ``albedo``; ``name`` is the setting a
    :class:`~nero_nerfstudio.core.errors.NeroSettingsError` names when ``albedo`` is out of range."""
    if not 0.0 < albedo < 1.0:
        raise NeroSettingsError(name, f"must be in (0, 1), got {albedo}")
    return math.log(albedo / (1.0 - albedo))


def roughness_logit(roughness: float, name: str = "roughness") -> float:
    """The roughness head's pre-sigmoid value that gives the perceptual ``roughness`` (inverse of
    :func:`alpha_from_sigmoid` and :func:`perceptual_roughness`); ``name`` is the setting a
    :class:`~nero_nerfstudio.core.errors.NeroSettingsError` names when ``roughness`` is out of range."""
    sigmoid = (roughness**2 - MIN_ALPHA) / (1.0 - MIN_ALPHA)
    if not 0.0 < sigmoid < 1.0:
        raise NeroSettingsError(name, f"must be in ({MIN_ROUGHNESS}, 1), got {roughness}")
    return math.log(sigmoid / (1.0 - sigmoid))


@dataclass
class MaterialFieldConfig(InstantiateConfig):
    """Configuration of :class:`MaterialField` (defaults = NeRO)."""

    _target: Type = field(default_factory=lambda: MaterialField)
    hidden_dim: int = 256
    """Width of the feature network and of the heads."""
    num_frequencies: int = 8
    """Octaves of the positional encoding (NeRO: 8, i.e. 51 input values)."""
    initial_roughness: Optional[float] = 0.5
    """Perceptual roughness the roughness head starts at (its last bias); None: NeRO's default bias (about 0.7)."""


class MaterialField(nn.Module):
    """Materials at surface points ``[N, 3]`` of the normalised frame.

    Args:
        config: widths and encoding.
    """

    def __init__(self, config: MaterialFieldConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_dim
        self.position_encoding = FrequencyEncoding(3, config.num_frequencies)
        encoded_dim = self.position_encoding.get_out_dim()
        # Block A: four Linear+ReLU layers; block B sees its output and the encoding again (skip connection).
        self.feature_block_a = WeightNormMLP(encoded_dim, width, width, num_layers=4, output_activation="none")
        self.feature_block_b = WeightNormMLP(width + encoded_dim, width, width, num_layers=4, output_activation="none")
        self.metallic_head = WeightNormMLP(width + 3, 1, width, num_layers=4, output_activation="sigmoid")
        initial = config.initial_roughness
        roughness_bias = None if initial is None else roughness_logit(initial, "initial_roughness")
        self.roughness_head = WeightNormMLP(
            width + 3, 1, width, num_layers=4, output_activation="none", final_bias=roughness_bias
        )
        self.albedo_head = WeightNormMLP(width + 3, 3, width, num_layers=4, output_activation="none")

    def features(self, points: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points hidden_dim"]:
        """Feature vector of each point (no final activation)."""
        encoded = self.position_encoding(points)
        block_a = torch.relu(self.feature_block_a(encoded))
        return self.feature_block_b(torch.cat([block_a, encoded], dim=-1))

    def forward(self, points: Float[Tensor, "num_points 3"]) -> dict:
        """Materials of ``points``.

        Returns:
            ``metallic`` ``[N, 1]`` in (0, 1), ``alpha`` ``[N, 1]`` (GGX alpha) in [0.0016, 1], ``albedo`` ``[N, 3]``
            linear RGB in (0, 1), and the pre-sigmoid values of the roughness and albedo heads, ``roughness_logit``
            ``[N, 1]`` and ``albedo_logit`` ``[N, 3]``.
        """
        head_input = torch.cat([self.features(points), points], dim=-1)
        roughness_logits = self.roughness_head(head_input)
        albedo_logits = self.albedo_head(head_input)
        return {
            "metallic": self.metallic_head(head_input),
            "alpha": alpha_from_sigmoid(torch.sigmoid(roughness_logits)),
            "albedo": torch.sigmoid(albedo_logits),
            "roughness_logit": roughness_logits,
            "albedo_logit": albedo_logits,
        }
