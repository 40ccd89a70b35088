"""Colour transfer functions (linear radiance <-> sRGB), for torch tensors and numpy arrays."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)

_EPS = float(np.finfo(np.float32).eps)


def linear_to_srgb(linear: ArrayT) -> ArrayT:
    """Standard sRGB curve. Clamped from below (to keep the power finite); no upper clamp, as NeRO does."""
    if isinstance(linear, torch.Tensor):
        clamped = linear.clamp_min(_EPS)
        return torch.where(linear <= 0.0031308, 12.92 * linear, 1.055 * clamped.pow(1.0 / 2.4) - 0.055)
    clamped = np.maximum(linear, _EPS)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(clamped, 1.0 / 2.4) - 0.055)


def srgb_slope(linear: torch.Tensor) -> torch.Tensor:
    """Derivative of :func:`linear_to_srgb` at (non-negative) ``linear`` values."""
    power_law = (1.055 / 2.4) * linear.clamp_min(0.0031308).pow(1.0 / 2.4 - 1.0)
    return torch.where(linear <= 0.0031308, torch.full_like(linear, 12.92), power_law)


def srgb_to_linear(srgb: ArrayT) -> ArrayT:
    """Inverse of :func:`linear_to_srgb` for values in ``[0, 1]``."""
    if isinstance(srgb, torch.Tensor):
        return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp_min(0) + 0.055) / 1.055).pow(2.4))
    return np.where(srgb <= 0.04045, srgb / 12.92, np.power((np.maximum(srgb, 0) + 0.055) / 1.055, 2.4))
