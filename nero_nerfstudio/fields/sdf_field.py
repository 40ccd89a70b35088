"""NeRO's signed-distance field: NeuS SDF MLP with geometric initialisation plus the NeuS variance (method.md §3.3).

The network maps a point of the normalised frame (object inside the unit sphere) to ``[sdf, feature]``; the
feature feeds the split-sum shader. The fast preset (method.md §3.11) concatenates a multi-resolution feature grid,
activated coarse to fine, and takes the SDF gradient by finite differences instead of autograd; the geometric
initialisation only looks at the raw xyz columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Literal, Optional, Tuple, Type

import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.fields.base_field import Field, FieldConfig
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.field_components.encodings import FrequencyEncoding
from nero_nerfstudio.field_components.grid_encoding import (
    GridImplementation,
    MultiResGridEncoding,
    coarse_to_fine_levels,
    central_difference_offsets,
    finite_difference_gradient,
)

INV_S_MIN = 1e-6
INV_S_MAX = 1e6


@dataclass
class NeroSDFFieldConfig(FieldConfig):
    """Configuration of :class:`NeroSDFField` (defaults = NeRO's SDF network)."""

    _target: Type = field(default_factory=lambda: NeroSDFField)
    num_layers: int = 8
    """Number of hidden layers (the network has ``num_layers + 1`` linear layers)."""
    hidden_dim: int = 256
    """Width of the hidden layers."""
    num_frequencies: int = 6
    """Octaves of the frequency encoding of xyz."""
    skip_layers: Tuple[int, ...] = (4,)
    """Linear layers whose input is ``concat(h, encoded input) / sqrt(2)``."""
    feature_dim: int = 256
    """Size of the feature vector after the SDF (output is ``1 + feature_dim``)."""
    init_radius: float = 0.5
    """Radius of the sphere the SDF starts as (positive outside)."""
    init_variance: float = 0.3
    """Initial NeuS variance parameter ``v``; ``inv_s = exp(10 v)``."""
    softplus_beta: float = 100.0
    """Sharpness of the Softplus activations."""
    encoding: Literal["frequency", "grid"] = "frequency"
    """``"frequency"``: NeRO's encoding; ``"grid"``: the frequency encoding concatenated with a multi-resolution
    feature grid (fast preset)."""
    grid_num_levels: int = 8
    """Grid: number of resolution levels."""
    grid_features_per_level: int = 2
    """Grid: features per level."""
    grid_min_resolution: int = 16
    """Grid: grid points a side of the coarsest level over the cube [-1, 1]^3."""
    grid_max_resolution: int = 128
    """Grid: grid points a side of the finest level."""
    grid_log2_hashmap_size: int = 19
    """Grid: log2 of the hash table size per level (tcnn hash grid only)."""
    grid_implementation: GridImplementation = "auto"
    """Grid: ``"dense"`` torch grids (fast on a CPU), ``"tcnn"`` hash grid (CUDA), ``"auto"``: tcnn if installed."""
    grid_start_levels: int = 4
    """Coarse to fine: levels active at step 0."""
    grid_steps_per_level: int = 0
    """Coarse to fine: one more level every this many steps (0: all levels from the start)."""
    gradient: Literal["analytic", "numerical"] = "analytic"
    """SDF gradient (normals, eikonal, NeuS alpha): autograd, or central differences whose step follows the finest
    active grid level (Neuralangelo; six extra SDF evaluations, no double backward)."""
    numerical_min_step: float = 1e-3
    """Smallest finite-difference step (normalised frame)."""


class NeroSDFField(Field):
    """SDF MLP ``x -> [sdf, feature]`` with the NeuS scalar variance.

    Args:
        config: the field's configuration.
    """

    config: NeroSDFFieldConfig

    def __init__(self, config: NeroSDFFieldConfig) -> None:
        super().__init__()
        self.config = config
        self.position_encoding = FrequencyEncoding(3, config.num_frequencies)
        self.grid_encoding: Optional[MultiResGridEncoding] = None
        encoded_dim = self.position_encoding.get_out_dim()
        if config.encoding == "grid":
            self.grid_encoding = MultiResGridEncoding(
                num_levels=config.grid_num_levels,
                features_per_level=config.grid_features_per_level,
                min_resolution=config.grid_min_resolution,
                max_resolution=config.grid_max_resolution,
                log2_hashmap_size=config.grid_log2_hashmap_size,
                implementation=config.grid_implementation,
            )
            encoded_dim += self.grid_encoding.get_out_dim()
            self.set_step(0)
        elif config.encoding != "frequency":
            raise ValueError(f"unknown SDF encoding {config.encoding!r}; use 'frequency' or 'grid'")
        if config.gradient not in ("analytic", "numerical"):
            raise ValueError(f"unknown SDF gradient {config.gradient!r}; use 'analytic' or 'numerical'")
        self.encoded_dim = encoded_dim

        skip_layers = set(config.skip_layers)
        if any(not 0 < layer <= config.num_layers for layer in skip_layers):
            raise NeroSettingsError(
                "skip_layers", f"must lie in 1 .. num_layers = {config.num_layers}, got {config.skip_layers}"
            )
        if skip_layers and config.hidden_dim <= encoded_dim:
            raise NeroSettingsError(
                "hidden_dim",
                f"must exceed the encoded input size {encoded_dim} to make room for a skip connection, got "
                f"{config.hidden_dim}",
            )
        self.skip_layers = skip_layers
        widths = [encoded_dim] + [config.hidden_dim] * config.num_layers + [1 + config.feature_dim]
        linears = []
        for index in range(len(widths) - 1):
            in_width = widths[index]
            # A layer that feeds a skip leaves room for the re-injected input.
            out_width = widths[index + 1] - encoded_dim if index + 1 in skip_layers else widths[index + 1]
            linear = nn.Linear(in_width, out_width)
            self._geometric_init(linear, index, num_linears=len(widths) - 1)
            linears.append(weight_norm(linear))
        self.layers = nn.ModuleList(linears)
        self.activation = nn.Softplus(beta=config.softplus_beta)
        self.variance = nn.Parameter(torch.tensor([config.init_variance], dtype=torch.float32))

    def _geometric_init(self, linear: nn.Linear, index: int, num_linears: int) -> None:
        """SAL/IGR initialisation (NeuS's) so that the SDF starts close to ``|x| - init_radius``.

        The match is exact only for infinite width: at width 256 the start is a round blob whose zero level lies
        at radius ~0.3-0.6 depending on the seed (the Softplus offset log(2)/beta adds up over the layers).

        Only the raw xyz columns (the first 3 of the encoded input) get non-zero weights in the first layer and
        in the re-injected part of the skip layers.
        """
        out_width, in_width = linear.weight.shape
        with torch.no_grad():
            if index == num_linears - 1:
                nn.init.normal_(linear.weight, mean=math.sqrt(math.pi) / math.sqrt(in_width), std=1e-4)
                nn.init.constant_(linear.bias, -self.config.init_radius)
                return
            nn.init.normal_(linear.weight, mean=0.0, std=math.sqrt(2.0) / math.sqrt(out_width))
            nn.init.constant_(linear.bias, 0.0)
            if index == 0:
                linear.weight[:, 3:] = 0.0
            elif index in self.skip_layers:
                # Skip input is concat(h, encoded); zero the encoded part except its xyz columns.
                linear.weight[:, in_width - self.encoded_dim + 3 :] = 0.0

    def set_step(self, step: int) -> None:
        """Coarse-to-fine schedule of the grid: the levels active at training ``step`` (no-op without a grid)."""
        if self.grid_encoding is not None:
            config = self.config
            self.grid_encoding.set_active_levels(
                coarse_to_fine_levels(step, config.grid_start_levels, config.grid_steps_per_level, config.grid_num_levels)
            )

    def numerical_step(self) -> float:
        """Finite-difference step: the cell size of the finest active grid level (the frequency encoding alone: the
        minimum step)."""
        if self.grid_encoding is None:
            return self.config.numerical_min_step
        return max(self.config.numerical_min_step, self.grid_encoding.finest_active_cell())

    def encode(self, points: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points encoded_dim"]:
        """``[xyz, frequency encoding, (grid features)]`` of ``points``."""
        encoded = self.position_encoding(points)
        if self.grid_encoding is None:
            return encoded
        return torch.cat([encoded, self.grid_encoding(points)], dim=-1)

    def forward_geonetwork(self, points: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1+feature_dim"]:
        """Raw network output: column 0 is the SDF, columns ``1 ..`` the feature vector."""
        encoded = self.encode(points)
        hidden = encoded
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            if index in self.skip_layers:
                hidden = torch.cat([hidden, encoded], dim=-1) / math.sqrt(2.0)
            hidden = layer(hidden)
            if index < last:
                hidden = self.activation(hidden)
        return hidden

    def get_sdf(self, points: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1"]:
        """Signed distance (negative inside) at ``points``."""
        return self.forward_geonetwork(points)[..., :1]

    def get_sdf_feature_gradient(
        self, points: Float[Tensor, "num_points 3"]
    ) -> Tuple[Float[Tensor, "num_points 1"], Float[Tensor, "num_points feature_dim"], Float[Tensor, "num_points 3"]]:
        """SDF, feature and SDF gradient (unnormalised normal) at ``points``.

        Works under ``torch.no_grad()`` (viewer, evaluation). In training the gradient stays in the graph so that
        the eikonal loss and the shader's normals back-propagate into the network.
        """
        if self.config.gradient == "numerical":
            return self._sdf_feature_numerical_gradient(points)
        grad_enabled_outside = torch.is_grad_enabled()
        with torch.enable_grad():
            points = points.detach().requires_grad_(True) if not points.requires_grad else points
            output = self.forward_geonetwork(points)
            sdf, feature = output[..., :1], output[..., 1:]
            (gradient,) = torch.autograd.grad(
                outputs=sdf,
                inputs=points,
                grad_outputs=torch.ones_like(sdf),
                create_graph=self.training,
                retain_graph=True,
            )
        if not grad_enabled_outside:  # the caller asked for no graph (viewer, evaluation): free it now
            sdf, feature = sdf.detach(), feature.detach()
        return sdf, feature, gradient

    def _sdf_feature_numerical_gradient(
        self, points: Float[Tensor, "num_points 3"]
    ) -> Tuple[Float[Tensor, "num_points 1"], Float[Tensor, "num_points feature_dim"], Float[Tensor, "num_points 3"]]:
        """One network pass over the points and their six central-difference neighbours (the SDF column of those
        alone is used): the gradient is an ordinary function of the parameters, so backward needs no second
        derivative."""
        num_points = points.shape[0]
        offsets = central_difference_offsets(self.numerical_step(), points.device, points.dtype)  # [6, 3]
        neighbours = (points[None, :, :] + offsets[:, None, :]).reshape(-1, 3)
        output = self.forward_geonetwork(torch.cat([points, neighbours], dim=0))
        sdf, feature = output[:num_points, :1], output[:num_points, 1:]
        gradient = finite_difference_gradient(output[num_points:, 0].view(offsets.shape[0], num_points), offsets)
        return sdf, feature, gradient

    def inv_s(self, clipped: bool = True) -> Float[Tensor, "1"]:
        """NeuS sharpness ``exp(10 v)``, clipped to ``[1e-6, 1e6]`` for rendering; the occlusion march uses it
        unclipped (``clipped=False``), as NeRO does."""
        inv_s = torch.exp(10.0 * self.variance)
        return inv_s.clamp(INV_S_MIN, INV_S_MAX) if clipped else inv_s

    def get_density(self, ray_samples: RaySamples) -> Tuple[Tensor, Tensor]:
        """Not defined: NeRO turns the SDF into alpha with the NeuS formula, never into a density."""
        raise NotImplementedError("NeroSDFField has no density; use get_sdf / get_sdf_feature_gradient")

    def get_outputs(
        self, ray_samples: RaySamples, density_embedding: Optional[Tensor] = None
    ) -> Dict[FieldHeadNames, Tensor]:
        """SDF, gradient and unit normal at the sample midpoints (``[*batch, 1]``, ``[*batch, 3]``, ``[*batch, 3]``)."""
        positions = ray_samples.frustums.get_positions()
        batch_shape = positions.shape[:-1]
        sdf, _, gradient = self.get_sdf_feature_gradient(positions.reshape(-1, 3))
        gradient = gradient.view(*batch_shape, 3)
        return {
            FieldHeadNames.SDF: sdf.view(*batch_shape, 1),
            FieldHeadNames.GRADIENT: gradient,
            FieldHeadNames.NORMALS: torch.nn.functional.normalize(gradient, dim=-1),
        }

    def forward(self, ray_samples: RaySamples, compute_normals: bool = False) -> Dict[FieldHeadNames, Tensor]:
        """Field outputs at ``ray_samples`` (normals are always computed; ``compute_normals`` is ignored)."""
        return self.get_outputs(ray_samples)
