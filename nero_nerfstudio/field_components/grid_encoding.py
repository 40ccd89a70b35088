"""Multi-resolution feature grid of the fast SDF, with coarse-to-fine level activation (method.md §3.11).

Level ``l`` of ``L`` has resolution ``round(min_res * b^l)`` with ``b = (max_res / min_res)^(1 / (L - 1))`` over the
cube ``[-1, 1]^3`` and ``features_per_level`` trilinearly interpolated features; the output concatenates the levels,
coarsest first (``[num_points, L * features_per_level]``), the levels not yet active set to zero.

Two implementations of the same encoding:

* ``"dense"``: one dense grid per level, looked up with ``torch.nn.functional.grid_sample``. On a CPU this is many
  times faster than a hashed torch grid (one fused trilinear kernel per level instead of eight gathers and a hash);
  memory grows as ``max_res^3``, so it suits grids up to a few hundred cells a side.
* ``"tcnn"``: tiny-cuda-nn's hash grid (CUDA only), through nerfstudio's ``HashEncoding``.

``"auto"`` picks tcnn when it is importable and dense otherwise. :func:`trilinear_reference` is the plain-torch
reference of the dense lookup (the parity test compares them).
"""

from __future__ import annotations

from typing import List, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

GridImplementation = Literal["auto", "dense", "tcnn"]
INIT_FEATURE_SCALE = 1e-4
"""Grid features start uniform in ``[-1e-4, 1e-4]`` (Instant-NGP), so the SDF starts as its MLP's sphere."""


def level_resolutions(num_levels: int, min_resolution: int, max_resolution: int) -> List[int]:
    """Resolution of each level, geometric from ``min_resolution`` to ``max_resolution``."""
    if num_levels < 1 or min_resolution < 2 or max_resolution < min_resolution:
        raise ValueError(
            f"grid needs num_levels >= 1 and 2 <= min_resolution <= max_resolution, got {num_levels}, "
            f"{min_resolution}, {max_resolution}"
        )
    if num_levels == 1:
        return [min_resolution]
    growth = (max_resolution / min_resolution) ** (1.0 / (num_levels - 1))
    return [int(round(min_resolution * growth**level)) for level in range(num_levels)]


def trilinear_reference(
    grid: Float[Tensor, "channels res res res"], points: Float[Tensor, "num_points 3"]
) -> Float[Tensor, "num_points channels"]:
    """Trilinear interpolation of ``grid`` (``grid[:, k, j, i]`` is the value at ``x_i, y_j, z_k``, nodes evenly
    spaced on ``[-1, 1]`` including both ends) at ``points`` in ``[-1, 1]^3``, written out with eight gathers."""
    resolution = torch.tensor(grid.shape[1:][::-1], device=points.device, dtype=points.dtype)  # (x, y, z)
    position = ((points.clamp(-1.0, 1.0) + 1.0) / 2.0) * (resolution - 1)
    lower = position.floor().clamp(max=resolution - 2).long()
    fraction = position - lower
    result = points.new_zeros(points.shape[0], grid.shape[0])
    for corner in range(8):
        offset = torch.tensor([(corner >> axis) & 1 for axis in range(3)], device=points.device)
        index = lower + offset
        weight = torch.where(offset.bool(), fraction, 1.0 - fraction).prod(dim=-1, keepdim=True)
        result = result + weight * grid[:, index[:, 2], index[:, 1], index[:, 0]].T
    return result


class MultiResGridEncoding(nn.Module):
    """Multi-resolution feature grid over ``[-1, 1]^3`` with coarse-to-fine level activation.

    Args:
        num_levels: number of levels ``L``.
        features_per_level: features per level.
        min_resolution: grid points a side of the coarsest level.
        max_resolution: grid points a side of the finest level.
        log2_hashmap_size: tcnn only: log2 of the hash table size per level.
        implementation: ``"auto"``, ``"dense"`` or ``"tcnn"``.
    """

    def __init__(
        self,
        num_levels: int = 8,
        features_per_level: int = 2,
        min_resolution: int = 16,
        max_resolution: int = 128,
        log2_hashmap_size: int = 19,
        implementation: GridImplementation = "auto",
    ) -> None:
        super().__init__()
        from nerfstudio.utils.external import TCNN_EXISTS

        self.resolutions = level_resolutions(num_levels, min_resolution, max_resolution)
        self.num_levels = num_levels
        self.features_per_level = features_per_level
        if implementation == "auto":
            implementation = "tcnn" if TCNN_EXISTS else "dense"
        if implementation == "tcnn" and not TCNN_EXISTS:
            raise ValueError("grid implementation 'tcnn' needs tinycudann, which is not installed; use 'dense'")
        self.implementation = implementation
        if implementation == "tcnn":
            from nerfstudio.field_components.encodings import HashEncoding

            self.hash_grid = HashEncoding(
                num_levels=num_levels,
                min_res=min_resolution,
                max_res=max_resolution,
                log2_hashmap_size=log2_hashmap_size,
                features_per_level=features_per_level,
                implementation="tcnn",
            )
        elif implementation == "dense":
            self.grids = nn.ParameterList(
                nn.Parameter(torch.empty(1, features_per_level, res, res, res).uniform_(-1.0, 1.0) * INIT_FEATURE_SCALE)
                for res in self.resolutions
            )
        else:
            raise ValueError(f"unknown grid implementation {implementation!r}; use 'auto', 'dense' or 'tcnn'")
        # Persistent, so a loaded checkpoint renders with the levels it was trained with.
        self.register_buffer("num_active_levels", torch.tensor(num_levels, dtype=torch.long))

    def get_out_dim(self) -> int:
        return self.num_levels * self.features_per_level

    def set_active_levels(self, num_active: int) -> None:
        """Use the ``num_active`` coarsest levels (at least one); the others output zero and get no gradient."""
        self.num_active_levels.fill_(max(1, min(self.num_levels, int(num_active))))

    def finest_active_cell(self) -> float:
        """Cell size (in the ``[-1, 1]`` cube) of the finest active level."""
        return 2.0 / (self.resolutions[int(self.num_active_levels) - 1] - 1)

    def forward(self, points: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points out_dim"]:
        """Features of ``points`` in ``[-1, 1]^3`` (outside it: the border value)."""
        num_active = int(self.num_active_levels)
        if self.implementation == "tcnn":
            features = self.hash_grid((points + 1.0) / 2.0).to(points.dtype)  # tcnn: [0, 1]^3, half precision
            mask = torch.zeros(self.num_levels, device=points.device, dtype=points.dtype)
            mask[:num_active] = 1.0
            return features * mask.repeat_interleave(self.features_per_level)
        coordinates = points.view(1, 1, 1, -1, 3)
        levels = []
        for level, grid in enumerate(self.grids):
            if level < num_active:
                sampled = F.grid_sample(grid, coordinates, mode="bilinear", padding_mode="border", align_corners=True)
                levels.append(sampled.view(self.features_per_level, -1).T)
            else:
                levels.append(points.new_zeros(points.shape[0], self.features_per_level))
        return torch.cat(levels, dim=-1)


def coarse_to_fine_levels(step: int, start_levels: int, steps_per_level: int, num_levels: int) -> int:
    """Levels active at ``step``: ``start_levels``, one more every ``steps_per_level`` steps (Neuralangelo)."""
    if steps_per_level <= 0:
        return num_levels
    return min(num_levels, start_levels + step // steps_per_level)


def central_difference_offsets(step: float, device: torch.device, dtype: torch.dtype) -> Float[Tensor, "6 3"]:
    """``+-h`` along each axis: the six neighbours of a central difference (Neuralangelo's). A four-point
    tetrahedron would be cheaper but is only first-order accurate: its error is ``h (H_yz, H_xz, H_xy)``."""
    axes = torch.eye(3, dtype=dtype, device=device)
    return step * torch.cat([axes, -axes], dim=0)


def finite_difference_gradient(
    values: Float[Tensor, "num_offsets num_points"], offsets: Float[Tensor, "num_offsets 3"]
) -> Float[Tensor, "num_points 3"]:
    """Gradient from values at ``x + offsets[i]`` for a symmetric set of offsets with ``sum_i v_i v_i^T = c I``
    (:func:`central_difference_offsets`: ``c = 2 h^2``): ``sum_i f(x + v_i) v_i / c``, exact for quadratics."""
    scale = (offsets[:, 0] ** 2).sum()
    return torch.einsum("kn,kd->nd", values, offsets) / scale
