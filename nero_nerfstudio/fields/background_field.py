"""NeRF++ "outer" field for everything outside the unit sphere (method.md §3.3, background MLP).

A point ``p`` with ``|p| > 1`` is re-parametrised as ``(p / |p|, 1 / |p|)`` (4-D, bounded), frequency-encoded
and fed to an 8-layer ReLU MLP with one skip; colour also depends on the encoded view direction. Plain
``nn.Linear`` layers (no weight norm), PyTorch's default initialisation except the colour bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Float
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.fields.base_field import Field, FieldConfig
from torch import Tensor, nn

from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.field_components.encodings import FrequencyEncoding
from nero_nerfstudio.utils.color import linear_to_srgb

BACKGROUND_COLOR_EXP_MAX = 5.0
BACKGROUND_COLOR_BIAS = math.log(0.5)


def inverted_sphere_coordinates(points: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 4"]:
    """NeRF++ coordinates ``(p / |p|, 1 / |p|)`` of points outside the unit sphere."""
    norm = points.norm(dim=-1, keepdim=True)
    return torch.cat([points / norm, 1.0 / norm], dim=-1)


def background_alpha(
    density_raw: Float[Tensor, "*batch 1"], deltas: Float[Tensor, "*batch 1"]
) -> Float[Tensor, "*batch 1"]:
    """Opacity of a background interval: ``1 - exp(-softplus(density_raw) * delta)``."""
    return 1.0 - torch.exp(-F.softplus(density_raw) * deltas)


@dataclass
class NerfPlusPlusFieldConfig(FieldConfig):
    """Configuration of :class:`NerfPlusPlusField` (defaults = NeRO's background network)."""

    _target: Type = field(default_factory=lambda: NerfPlusPlusField)
    num_layers: int = 8
    """Number of ReLU layers of the position trunk."""
    hidden_dim: int = 256
    """Width of the trunk."""
    position_frequencies: int = 10
    """Octaves of the frequency encoding of the 4-D inverted-sphere coordinates."""
    direction_frequencies: int = 4
    """Octaves of the frequency encoding of the view direction."""
    skip_layer: int = 4
    """The encoded input is concatenated (first) to the output of this trunk layer (0-based)."""
    color_hidden_dim: int = 128
    """Width of the view-dependent colour layer."""


class NerfPlusPlusField(Field):
    """Background density and colour outside the unit sphere.

    Args:
        config: the field's configuration.
    """

    config: NerfPlusPlusFieldConfig

    def __init__(self, config: NerfPlusPlusFieldConfig) -> None:
        super().__init__()
        self.config = config
        if not 0 <= config.skip_layer < config.num_layers - 1:
            raise NeroSettingsError(
                "skip_layer", f"must lie in 0 .. num_layers - 2 = {config.num_layers - 2}, got {config.skip_layer}"
            )
        self.position_encoding = FrequencyEncoding(4, config.position_frequencies)
        self.direction_encoding = FrequencyEncoding(3, config.direction_frequencies)
        position_dim = self.position_encoding.get_out_dim()

        trunk = [nn.Linear(position_dim, config.hidden_dim)]
        for index in range(1, config.num_layers):
            in_width = config.hidden_dim + position_dim if index == config.skip_layer + 1 else config.hidden_dim
            trunk.append(nn.Linear(in_width, config.hidden_dim))
        self.trunk = nn.ModuleList(trunk)
        self.density_head = nn.Linear(config.hidden_dim, 1)
        self.feature_head = nn.Linear(config.hidden_dim, config.hidden_dim)
        color_in_dim = config.hidden_dim + self.direction_encoding.get_out_dim()
        self.color_hidden = nn.Linear(color_in_dim, config.color_hidden_dim)
        self.color_head = nn.Linear(config.color_hidden_dim, 3)
        nn.init.constant_(self.color_head.bias, BACKGROUND_COLOR_BIAS)

    def forward(  # type: ignore[override]
        self, points: Float[Tensor, "num_points 3"], view_dirs: Float[Tensor, "num_points 3"]
    ) -> Tuple[Float[Tensor, "num_points 1"], Float[Tensor, "num_points 3"]]:
        """Raw density and sRGB colour.

        Args:
            points: ``[N, 3]`` positions with ``|p| > 1``.
            view_dirs: ``[N, 3]`` unit directions pointing back to the camera (``-ray direction``).

        Returns:
            ``density_raw`` ``[N, 1]`` (turn into alpha with :func:`background_alpha`) and ``rgb`` ``[N, 3]``
            ``= sRGB(exp(min(raw, 5)))``, not clamped to 1.
        """
        encoded = self.position_encoding(inverted_sphere_coordinates(points))
        hidden = encoded
        for index, layer in enumerate(self.trunk):
            hidden = torch.relu(layer(hidden))
            if index == self.config.skip_layer:
                hidden = torch.cat([encoded, hidden], dim=-1)
        density_raw = self.density_head(hidden)
        feature = self.feature_head(hidden)
        color_hidden = torch.relu(self.color_hidden(torch.cat([feature, self.direction_encoding(view_dirs)], dim=-1)))
        color_raw = self.color_head(color_hidden)
        rgb = linear_to_srgb(torch.exp(color_raw.clamp_max(BACKGROUND_COLOR_EXP_MAX)))
        return density_raw, rgb

    def get_density(self, ray_samples: RaySamples) -> Tuple[Tensor, Optional[Tensor]]:
        """Density ``softplus(density_raw)`` at the sample midpoints, ``[*batch, 1]`` (no embedding)."""
        positions = ray_samples.frustums.get_positions()
        density_raw, _ = self(positions.reshape(-1, 3), -ray_samples.frustums.directions.reshape(-1, 3))
        return F.softplus(density_raw).view(*positions.shape[:-1], 1), None

    def get_outputs(
        self, ray_samples: RaySamples, density_embedding: Optional[Tensor] = None
    ) -> Dict[FieldHeadNames, Tensor]:
        """sRGB colour at the sample midpoints, ``[*batch, 3]``."""
        positions = ray_samples.frustums.get_positions()
        _, rgb = self(positions.reshape(-1, 3), -ray_samples.frustums.directions.reshape(-1, 3))
        return {FieldHeadNames.RGB: rgb.view(*positions.shape[:-1], 3)}
