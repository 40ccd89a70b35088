"""Split-sum pre-integrated specular BRDF table ("FG" LUT) and its differentiable lookup.

The split-sum approximation writes the specular reflectance integral as ``F0 * A + B``, where ``A`` (scale)
and ``B`` (bias) depend only on ``n . v`` and the perceptual roughness ``r``. The table is regenerated here by
numerical integration (method.md §5.3) instead of being copied: GGX half vectors with ``alpha = r^2`` are
importance-sampled from a Hammersley set (deterministic), reflected into light directions, and weighted
with the height-correlated Smith visibility.

File format of ``assets/bsdf_256_256.bin``: raw little-endian float32 ``[row = roughness][column = n.v][A, B]``,
texel centres at ``(i + 0.5) / 256``, no header.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.model_components.microfacet import GGXMicrofacet
from nero_nerfstudio.utils.io import atomic_write_bytes

logger = logging.getLogger(__name__)

LUT_RESOLUTION = 256
DEFAULT_NUM_SAMPLES = 4096
DEFAULT_LUT_PATH = Path(__file__).resolve().parents[2] / "assets" / f"bsdf_{LUT_RESOLUTION}_{LUT_RESOLUTION}.bin"
_LUT_DTYPE = np.dtype("<f4")
_LUT_NUM_BYTES = LUT_RESOLUTION * LUT_RESOLUTION * 2 * _LUT_DTYPE.itemsize


def hammersley_points(num_samples: int) -> np.ndarray:
    """Hammersley point set in the unit square.

    Returns:
        ``[num_samples, 2]`` float64: ``(i / N, radical_inverse_base2(i))``.
    """
    index = np.arange(num_samples, dtype=np.uint64)
    reversed_bits = np.zeros(num_samples, dtype=np.uint64)
    remaining = index.copy()
    for _ in range(32):
        reversed_bits = (reversed_bits << np.uint64(1)) | (remaining & np.uint64(1))
        remaining >>= np.uint64(1)
    radical_inverse = reversed_bits.astype(np.float64) / float(2**32)
    return np.stack([index.astype(np.float64) / num_samples, radical_inverse], axis=-1)


def _smith_lambda(cos_theta: np.ndarray, alpha: float) -> np.ndarray:
    """Height-correlated Smith Lambda for GGX: ``(sqrt(1 + alpha^2 tan^2) - 1) / 2``."""
    cos_sq = np.clip(cos_theta * cos_theta, 1e-12, 1.0)
    tan_sq = (1.0 - cos_sq) / cos_sq
    return 0.5 * (np.sqrt(1.0 + alpha * alpha * tan_sq) - 1.0)


def integrate_split_sum(n_dot_v: np.ndarray, roughness: float, num_samples: int = DEFAULT_NUM_SAMPLES) -> np.ndarray:
    """Split-sum scale and bias for one perceptual roughness and many view angles.

    Args:
        n_dot_v: ``[num_views]`` cosines of the view angle, in ``(0, 1]``.
        roughness: perceptual roughness ``r``; the GGX parameter is ``alpha = r^2``.
        num_samples: Hammersley half-vector samples per view angle.

    Returns:
        ``[num_views, 2]`` float64 ``(A, B)`` with ``integral f_spec cos = F0 * A + B``.
    """
    alpha = float(roughness) ** 2
    unit_square = hammersley_points(num_samples)
    # GGX importance sampling of the half vector around n = +z (pdf D(h) (n.h)).
    lobe = GGXMicrofacet(torch.tensor(alpha, dtype=torch.float64), nero_numerics=False)
    cos_h = lobe.sample_cos_theta(torch.from_numpy(unit_square[:, 0])).numpy()
    sin_h = np.sqrt(np.clip(1.0 - cos_h * cos_h, 0.0, 1.0))
    phi = 2.0 * np.pi * unit_square[:, 1]
    half_x = sin_h * np.cos(phi)

    # View in the x-z plane: v = (sin, 0, cos); broadcast [num_views, 1] against [1, num_samples].
    view_z = np.asarray(n_dot_v, dtype=np.float64)[:, None]
    view_x = np.sqrt(np.clip(1.0 - view_z * view_z, 0.0, 1.0))
    v_dot_h = view_x * half_x[None, :] + view_z * cos_h[None, :]
    n_dot_l = 2.0 * v_dot_h * cos_h[None, :] - view_z  # z of l = reflect(v, h)
    valid = (n_dot_l > 0.0) & (v_dot_h > 0.0)

    visibility = 1.0 / (1.0 + _smith_lambda(view_z, alpha) + _smith_lambda(np.clip(n_dot_l, 1e-12, 1.0), alpha))
    # (f cos / pdf) of the light direction, without the Fresnel factor.
    weight = visibility * v_dot_h / (cos_h[None, :] * view_z)
    weight = np.where(valid, weight, 0.0)
    fresnel_c = np.clip(1.0 - v_dot_h, 0.0, 1.0) ** 5
    scale = np.mean((1.0 - fresnel_c) * weight, axis=1)
    bias = np.mean(fresnel_c * weight, axis=1)
    return np.stack([scale, bias], axis=-1)


def texel_centres(resolution: int) -> np.ndarray:
    """``[resolution]`` texel-centre coordinates ``(i + 0.5) / resolution``."""
    return (np.arange(resolution, dtype=np.float64) + 0.5) / resolution


def compute_split_sum_lut(
    resolution: int = LUT_RESOLUTION, num_samples: int = DEFAULT_NUM_SAMPLES, show_progress: bool = True
) -> np.ndarray:
    """Integrate the split-sum table.

    Returns:
        ``[resolution (roughness rows), resolution (n.v columns), 2]`` float32 ``(A, B)``.
    """
    coords = texel_centres(resolution)
    table = np.empty((resolution, resolution, 2), dtype=np.float32)
    with Progress(
        TextColumn("[bold blue]split-sum LUT"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rows"),
        TimeRemainingColumn(),
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("rows", total=resolution)
        for row, roughness in enumerate(coords):
            table[row] = integrate_split_sum(coords, roughness, num_samples)
            progress.advance(task)
    return table


def save_split_sum_lut(table: np.ndarray, path: Union[str, Path]) -> None:
    """Write ``table`` (``[256, 256, 2]``) in the raw little-endian float32 format, atomically."""
    expected = (LUT_RESOLUTION, LUT_RESOLUTION, 2)
    if table.shape != expected:
        raise ValueError(f"split-sum table must have shape {expected}, got {table.shape}")
    atomic_write_bytes(path, np.ascontiguousarray(table, dtype=_LUT_DTYPE).tobytes())


def load_split_sum_lut(path: Optional[Union[str, Path]] = None) -> torch.Tensor:
    """Read the split-sum table; if the file is missing, compute it and cache it at ``path``.

    Args:
        path: table file; defaults to the repository's ``assets/bsdf_256_256.bin``.

    Returns:
        ``[256 (roughness rows), 256 (n.v columns), 2]`` float32 tensor ``(A, B)``.
    """
    path = Path(path) if path is not None else DEFAULT_LUT_PATH
    if not path.exists():
        logger.warning("Split-sum table %s is missing; computing it (this takes a little while) and caching it.", path)
        table = compute_split_sum_lut()
        try:
            save_split_sum_lut(table, path)
        except (OSError, NeroDataError) as error:  # a read-only install
            logger.warning("Could not cache the split-sum table at %s (%s); using it from memory.", path, error)
        return torch.from_numpy(table)

    data = path.read_bytes()
    if len(data) != _LUT_NUM_BYTES:
        raise NeroDataError(
            path, f"expected {_LUT_NUM_BYTES} bytes (256x256x2 float32 split-sum table), found {len(data)}"
        )
    table = np.frombuffer(data, dtype=_LUT_DTYPE).reshape(LUT_RESOLUTION, LUT_RESOLUTION, 2).astype(np.float32)
    if not np.all(np.isfinite(table)):
        raise NeroDataError(path, "split-sum table contains non-finite values")
    return torch.from_numpy(table)


class SplitSumLUT(nn.Module):
    """Bilinear, differentiable lookup of the split-sum ``(A, B)`` table.

    Matches nvdiffrast ``texture(filter='linear', boundary='clamp')``: texel centres at ``(i + 0.5) / 256``,
    clamp-to-edge, ``x = n.v`` (columns), ``y = roughness`` (rows).

    Args:
        table: ``[rows, cols, 2]`` table; loaded with :func:`load_split_sum_lut` when omitted.
    """

    def __init__(self, table: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        if table is None:
            table = load_split_sum_lut()
        # [1, 2, rows, cols] as grid_sample wants; not persistent: it is an asset, not a learned state.
        self.register_buffer("table", table.float().permute(2, 0, 1).unsqueeze(0).contiguous(), persistent=False)

    def forward(self, n_dot_v: torch.Tensor, roughness: torch.Tensor) -> torch.Tensor:
        """Look up the table.

        Args:
            n_dot_v: ``[num_points, 1]`` cosine between normal and view direction.
            roughness: ``[num_points, 1]`` perceptual roughness.

        Returns:
            ``[num_points, 2]`` ``(A, B)``; the specular reflectance is ``F0 * A + B``.
        """
        # grid_sample's normalised coordinates span [-1, 1] across the outer texel edges (align_corners=False).
        grid_x = n_dot_v.reshape(-1).clamp(0.0, 1.0) * 2.0 - 1.0
        grid_y = roughness.reshape(-1).clamp(0.0, 1.0) * 2.0 - 1.0
        grid = torch.stack([grid_x, grid_y], dim=-1).view(1, -1, 1, 2).to(self.table.dtype)
        sampled = F.grid_sample(self.table, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return sampled.view(2, -1).transpose(0, 1)

    def specular_reflectance(
        self, base_reflectance: torch.Tensor, n_dot_v: torch.Tensor, roughness: torch.Tensor
    ) -> torch.Tensor:
        """The split-sum specular reflectance ``F0 A + B``: ``[num_points, C]`` for ``base_reflectance`` (``F0``)
        ``[num_points, C]`` or a float, ``n_dot_v`` and ``roughness`` ``[num_points, 1]``."""
        scale_bias = self(n_dot_v, roughness)
        return base_reflectance * scale_bias[:, :1] + scale_bias[:, 1:]
