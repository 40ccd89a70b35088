"""Reading NeRO's GlossySynthetic files: ``<k>-camera.pkl`` (a pickled ``(w2c 3x4 OpenCV, K 3x3)`` pair) and
``<k>-depth.png`` (16-bit z-depth), for the dataparser, the evaluation and the relighting cameras alike."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

from nero_nerfstudio.core.errors import NeroDataError

DEPTH_RANGE = 15.0
"""``<k>-depth.png`` stores ``round(z / 15 * 65535)``; the background saturates at 65535."""
BACKGROUND_DEPTH = 14.5
"""Depths at or beyond this are background."""

_CAMERA_FILE = re.compile(r"^(\d+)-camera\.pkl$")


def synthetic_view_ids(folder: Path) -> List[str]:
    """Ids ``k`` of the ``<k>-camera.pkl`` files of an existing folder, in numeric order.

    Raises:
        NeroDataError: the folder holds no camera file.
    """
    ids = [match.group(1) for match in (_CAMERA_FILE.match(p.name) for p in folder.iterdir()) if match]
    if not ids:
        raise NeroDataError(folder, "no <k>-camera.pkl files; not a NeRO synthetic (GlossySynthetic) folder")
    return sorted(ids, key=int)


def load_depth_and_mask(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Depth ``[H, W]`` float32 (z-depth, scene units) and foreground mask ``[H, W]`` bool of a ``<k>-depth.png``."""
    try:
        with Image.open(path) as pil_image:
            if pil_image.mode not in ("I;16", "I;16B", "I"):
                raise NeroDataError(path, f"depth must be a 16-bit single-channel PNG, got mode {pil_image.mode}")
            values = np.asarray(pil_image).astype(np.float64)
    except OSError as error:
        raise NeroDataError(path, f"cannot read depth image ({error})") from error
    depth = (values / 65535.0 * DEPTH_RANGE).astype(np.float32)
    return depth, depth < BACKGROUND_DEPTH


def load_camera_pickle(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """``(w2c [3, 4], K [3, 3])`` float64 from a ``<k>-camera.pkl``."""
    try:
        with open(path, "rb") as file:
            content = pickle.load(file)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as error:
        raise NeroDataError(path, f"cannot unpickle camera ({error})") from error
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        raise NeroDataError(path, "expected a pickled (pose 3x4, K 3x3) pair")
    try:
        pose, intrinsics = (np.asarray(item, dtype=np.float64) for item in content)
    except (TypeError, ValueError) as error:
        raise NeroDataError(path, f"expected a pickled (pose 3x4, K 3x3) pair of numbers ({error})") from error
    if pose.shape != (3, 4) or intrinsics.shape != (3, 3):
        raise NeroDataError(
            path, f"expected a pickled (pose 3x4, K 3x3) pair, got shapes {pose.shape} and {intrinsics.shape}"
        )
    if not (np.all(np.isfinite(pose)) and np.all(np.isfinite(intrinsics))):
        raise NeroDataError(path, "camera pose or K contains NaN or infinite values")
    return pose, intrinsics
