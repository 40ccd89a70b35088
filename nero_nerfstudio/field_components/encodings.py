"""Input encodings of NeRO's Stage I networks (method.md §3.1).

* :class:`FrequencyEncoding`: NeRO/NeuS positional encoding (powers of two, no pi, input included).
* :class:`IntegratedDirectionalEncoding`: Ref-NeRF's integrated directional encoding (IDE).
* :func:`integrated_positional_encoding`: mip-NeRF's integrated positional encoding (IPE) of a 2-D Gaussian.

nerfstudio's ``NeRFEncoding`` multiplies by pi and orders the columns ``[sin of all frequencies, cos of all
frequencies]``; the SDF's geometric initialisation depends on NeRO's exact column layout, hence our own class.
"""

from __future__ import annotations

import functools
import math
from typing import List, Tuple

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

IDE_DEFAULT_DEGREE_EXPONENT = 5


class FrequencyEncoding(nn.Module):
    """NeRO's frequency positional encoding.

    Column layout of the output (``D`` = ``in_dim``, ``L`` = ``num_frequencies``)::

        [x (D) | sin(2^0 x) (D) | cos(2^0 x) (D) | sin(2^1 x) (D) | cos(2^1 x) (D) | ... | cos(2^(L-1) x) (D)]

    so the raw input occupies columns ``0 .. D-1`` and every later column is periodic.

    Args:
        in_dim: size ``D`` of the last input dimension.
        num_frequencies: number of octaves ``L`` (0 gives the identity).
    """

    def __init__(self, in_dim: int, num_frequencies: int) -> None:
        super().__init__()
        if in_dim < 1 or num_frequencies < 0:
            raise ValueError(
                f"FrequencyEncoding needs in_dim >= 1 and num_frequencies >= 0, got {in_dim}, {num_frequencies}"
            )
        self.in_dim = in_dim
        self.num_frequencies = num_frequencies
        self.register_buffer("frequencies", 2.0 ** torch.arange(num_frequencies, dtype=torch.float32), persistent=False)

    def get_out_dim(self) -> int:
        """Output size ``D * (1 + 2 L)``."""
        return self.in_dim * (1 + 2 * self.num_frequencies)

    def forward(self, x: Float[Tensor, "*batch in_dim"]) -> Float[Tensor, "*batch out_dim"]:
        """Encode ``x`` (``[..., D]``) into ``[..., D (1 + 2 L)]``."""
        if self.num_frequencies == 0:
            return x
        scaled = x[..., None, :] * self.frequencies.to(x.dtype)[:, None]  # [..., L, D]
        periodic = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # [..., L, 2, D]
        return torch.cat([x, periodic.flatten(start_dim=-3)], dim=-1)


def ide_degrees(degree_exponent: int = IDE_DEFAULT_DEGREE_EXPONENT) -> List[int]:
    """Spherical-harmonic degrees used by the IDE: ``[1, 2, 4, ..., 2^(degree_exponent-1)]``."""
    return [2**i for i in range(degree_exponent)]


def ide_degree_order_pairs(degree_exponent: int = IDE_DEFAULT_DEGREE_EXPONENT) -> List[Tuple[int, int]]:
    """The ``(l, m)`` of every IDE entry, in output order: ``l`` ascending, then ``m = 0 .. l``."""
    return [(degree, order) for degree in ide_degrees(degree_exponent) for order in range(degree + 1)]


def _legendre_polynomial_coefficients(degree: int, order: int) -> np.ndarray:
    """Coefficients ``c_k`` (``k = 0 .. degree``, float64) of the orthonormal spherical harmonic's z-polynomial.

    ``Y_l^m(w) = (x + i y)^m * sum_k c_k z^k`` for a unit vector ``w = (x, y, z)``, with Condon-Shortley phase.
    This follows from Rodrigues' formula ``P_l^m(z) = (-1)^m (1 - z^2)^(m/2) d^(l+m)/dz^(l+m) (z^2 - 1)^l / (2^l l!)``
    and ``sin(theta)^m e^(i m phi) = (x + i y)^m``. The integer parts are exact (Python ints) before the one
    conversion to float.
    """
    coefficients = np.zeros(degree + 1, dtype=np.float64)
    derivative_order = degree + order
    for j in range(degree + 1):
        power = 2 * j  # (z^2 - 1)^l = sum_j C(l, j) (-1)^(l - j) z^(2j)
        if power < derivative_order:
            continue
        falling_factorial = math.factorial(power) // math.factorial(power - derivative_order)
        integer_part = math.comb(degree, j) * (-1) ** (degree - j) * falling_factorial
        coefficients[power - derivative_order] = float(integer_part) / float(2**degree * math.factorial(degree))
    normalisation = math.sqrt(
        (2 * degree + 1) / (4.0 * math.pi) * math.factorial(degree - order) / math.factorial(degree + order)
    )
    return coefficients * ((-1) ** order) * normalisation


@functools.lru_cache(maxsize=None)
def _ide_tables(degree_exponent: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constant tables of the IDE: z-polynomial coefficients ``[max_degree + 1, E]``, orders ``m`` ``[E]`` and
    attenuation exponents ``l (l + 1) / 2`` ``[E]``."""
    pairs = ide_degree_order_pairs(degree_exponent)
    max_degree = max(degree for degree, _ in pairs)
    polynomial = np.zeros((max_degree + 1, len(pairs)), dtype=np.float64)
    for column, (degree, order) in enumerate(pairs):
        polynomial[: degree + 1, column] = _legendre_polynomial_coefficients(degree, order)
    orders = np.array([order for _, order in pairs], dtype=np.int64)
    attenuation = np.array([degree * (degree + 1) / 2.0 for degree, _ in pairs], dtype=np.float64)
    for table in (polynomial, orders, attenuation):
        table.setflags(write=False)
    return polynomial, orders, attenuation


class IntegratedDirectionalEncoding(nn.Module):
    """Ref-NeRF integrated directional encoding ``exp(-l(l+1)/2 kappa_inv) Y_l^m(w)``.

    Degrees ``l`` in ``{1, 2, 4, ..., 2^(degree_exponent-1)}``, orders ``m = 0 .. l``; output is the real parts of all
    entries followed by their imaginary parts (72 values for ``degree_exponent = 5``). The input direction is used
    as given (not re-normalised).

    Args:
        degree_exponent: number of degrees (NeRO: 5).
    """

    def __init__(self, degree_exponent: int = IDE_DEFAULT_DEGREE_EXPONENT) -> None:
        super().__init__()
        polynomial, orders, attenuation = _ide_tables(degree_exponent)
        self.num_entries = len(orders)
        self.max_degree = polynomial.shape[0] - 1
        # Constants rebuilt on construction, so not persistent; float64 for an exact float64 evaluation.
        self.register_buffer("z_polynomial", torch.tensor(polynomial), persistent=False)  # [max_degree + 1, E]
        self.register_buffer("orders", torch.tensor(orders), persistent=False)  # [E]
        self.register_buffer("attenuation", torch.tensor(attenuation), persistent=False)  # [E]

    def get_out_dim(self) -> int:
        """``2 * number of (l, m) entries`` (72 for NeRO)."""
        return 2 * self.num_entries

    def forward(
        self, directions: Float[Tensor, "num_points 3"], inv_kappa: Float[Tensor, "num_points 1"]
    ) -> Float[Tensor, "num_points out_dim"]:
        """Encode ``directions`` (``[N, 3]``) with concentration ``1 / inv_kappa`` (``[N, 1]``) into ``[N, 72]``."""
        dtype = directions.dtype
        x, y, z = directions[..., 0:1], directions[..., 1:2], directions[..., 2:3]

        # (x + i y)^m for m = 0 .. max_degree as one running complex product: [N, max_degree + 1].
        xy = torch.complex(x, y)
        xy_powers = torch.cat([torch.ones_like(xy), xy.expand(-1, self.max_degree).cumprod(dim=-1)], dim=-1)
        xy_powers = xy_powers[..., self.orders.to(directions.device)]  # [N, E]
        real_xy, imag_xy = xy_powers.real, xy_powers.imag

        # The degree-16 polynomials cancel large coefficients (~1e4): float32 evaluation would be off by ~1e-2,
        # so this small part always runs in float64, also under mixed precision.
        with torch.autocast(device_type=directions.device.type, enabled=False):
            z64 = z.double()
            z_powers = torch.cat([torch.ones_like(z64), z64.expand(-1, self.max_degree).cumprod(dim=-1)], dim=-1)
            legendre = (z_powers @ self.z_polynomial.double()).to(dtype)  # [N, E]

        attenuation = torch.exp(-self.attenuation.to(dtype) * inv_kappa)  # [N, E]
        return torch.cat([real_xy * legendre * attenuation, imag_xy * legendre * attenuation], dim=-1)


def integrated_directional_encoding(
    directions: Float[Tensor, "num_points 3"],
    inv_kappa: Float[Tensor, "num_points 1"],
    degree_exponent: int = IDE_DEFAULT_DEGREE_EXPONENT,
) -> Float[Tensor, "num_points out_dim"]:
    """Functional form of :class:`IntegratedDirectionalEncoding` (its coefficient tables are cached)."""
    return IntegratedDirectionalEncoding(degree_exponent).to(directions.device)(directions, inv_kappa)


def integrated_positional_encoding(
    mean: Float[Tensor, "num_points 2"],
    variance: Float[Tensor, "num_points variance_dim"],
    num_scales: int = 6,
) -> Float[Tensor, "num_points out_dim"]:
    """mip-NeRF IPE of a 2-D Gaussian with diagonal covariance.

    Args:
        mean: ``[N, 2]`` Gaussian means.
        variance: ``[N, 2]`` per-coordinate variances, or ``[N, 1]`` shared by both coordinates.
        num_scales: number of scales ``2^k``, ``k = 0 .. num_scales-1``.

    Returns:
        ``[N, 4 num_scales]``: ``sin(2^k mu) exp(-4^k var / 2)`` for ``k`` major, coordinate minor, then the same
        with ``cos`` (24 values for 6 scales).
    """
    scales = 2.0 ** torch.arange(num_scales, dtype=mean.dtype, device=mean.device)  # [K]
    scaled_mean = (mean[..., None, :] * scales[:, None]).flatten(start_dim=-2)  # [N, 2K]
    scaled_variance = (variance.expand_as(mean)[..., None, :] * (scales**2)[:, None]).flatten(start_dim=-2)
    damping = torch.exp(-0.5 * scaled_variance)
    return torch.cat([torch.sin(scaled_mean) * damping, torch.cos(scaled_mean) * damping], dim=-1)
