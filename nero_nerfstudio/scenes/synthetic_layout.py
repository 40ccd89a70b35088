"""Writer for the GlossySynthetic layout (method.md §2.1): ``<k>.png``, ``<k>-camera.pkl``, ``<k>-depth.png``."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from nero_nerfstudio.utils.io import atomic_path, atomic_write_bytes
from nero_nerfstudio.utils.synthetic_io import DEPTH_RANGE


def encode_depth_png(depth: np.ndarray) -> np.ndarray:
    """Z-depth ``[H, W]`` (``inf`` or 0 on background) -> uint16 ``[H, W]`` in GlossySynthetic's encoding."""
    hit = np.isfinite(depth) & (depth > 0)
    scaled = np.clip(np.where(hit, depth, DEPTH_RANGE) / DEPTH_RANGE, 0.0, 1.0)
    return np.round(scaled * 65535).astype(np.uint16)


def write_synthetic_view(
    output_dir: Path, name: str, w2c: np.ndarray, intrinsics: np.ndarray, depth: np.ndarray
) -> None:
    """Camera pickle ``(w2c [3, 4] float OpenCV, K [3, 3])`` and 16-bit depth PNG of one view.

    The image itself is written by Blender.
    """
    import imageio.v3 as iio

    camera = (w2c.astype(np.float32), intrinsics.astype(np.float32))
    atomic_write_bytes(output_dir / f"{name}-camera.pkl", pickle.dumps(camera))
    with atomic_path(output_dir / f"{name}-depth.png") as tmp_path:
        iio.imwrite(tmp_path, encode_depth_png(depth), extension=".png")
