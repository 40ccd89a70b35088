"""NeuS's view-dependent colour network, the baseline shader of ``nero-shape`` (``shading_model="neus-color"``).

NeuS ("idr" mode) colours a surface sample from the concatenation of its position, the frequency-encoded ray
direction, the SDF normal and the SDF feature, through a weight-normalised MLP and a sigmoid. There are no
materials, lights or occlusion: it is the plain radiance model NeRO's split-sum shader is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

import torch
from jaxtyping import Float
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from nero_nerfstudio.field_components.encodings import FrequencyEncoding
from nero_nerfstudio.field_components.mlp import WeightNormMLP


@dataclass
class NeusColorConfig(InstantiateConfig):
    """Configuration of :class:`NeusColorField` (defaults = NeuS's rendering network)."""

    _target: Type = field(default_factory=lambda: NeusColorField)
    hidden_dim: int = 256
    """Width of the hidden layers."""
    num_layers: int = 5
    """Linear layers (NeuS: 4 hidden layers, so 5 linear layers)."""
    direction_frequencies: int = 4
    """Octaves of the frequency encoding of the ray direction."""


class NeusColorField(nn.Module):
    """sRGB colour of surface samples, ``sigmoid(MLP([x, PE(d), n, feature]))``.

    Args:
        config: the network's configuration.
        feature_dim: size of the SDF feature vector.
    """

    config: NeusColorConfig

    def __init__(self, config: NeusColorConfig, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        self.direction_encoding = FrequencyEncoding(3, config.direction_frequencies)
        in_dim = 3 + self.direction_encoding.get_out_dim() + 3 + feature_dim
        self.mlp = WeightNormMLP(
            in_dim, 3, hidden_dim=config.hidden_dim, num_layers=config.num_layers, output_activation="sigmoid"
        )

    def forward(
        self,
        points: Float[Tensor, "num_points 3"],
        ray_directions: Float[Tensor, "num_points 3"],
        normals: Float[Tensor, "num_points 3"],
        features: Float[Tensor, "num_points feature_dim"],
    ) -> Float[Tensor, "num_points 3"]:
        """Colour in ``(0, 1)`` of each sample, seen along its unit ``ray_directions`` (camera to point)."""
        return self.mlp(torch.cat([points, self.direction_encoding(ray_directions), normals, features], dim=-1))
