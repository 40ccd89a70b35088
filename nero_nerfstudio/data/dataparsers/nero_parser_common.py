"""Pieces both NeRO dataparsers share: image header checks, Cameras from OpenCV poses, splits, metadata.

Imported by dataparser entry-point modules, so only light imports here (see architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Sequence, Tuple, Union

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image

from nero_nerfstudio.core.camera_conventions import opencv_w2c_to_opengl_c2w
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.core.photographer import photographer_w2p
from nero_nerfstudio.core.splits import nero_validation_split, synthetic_test_split

# 8-bit modes that convert losslessly to RGB; anything else (16-bit, float, CMYK) is refused.
_READABLE_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA"}


def read_image_sizes(paths: Sequence[Path]) -> List[Tuple[int, int]]:
    """``(width, height)`` of each image from its header, raising on missing or unusable files.

    Alpha channels are allowed (the dataset drops them); one warning is printed for the first such image.
    """
    sizes = []
    warned_about_alpha = False
    for path in paths:
        if not path.is_file():
            raise NeroDataError(path, "image file is missing")
        try:
            with Image.open(path) as pil_image:
                size, mode = pil_image.size, pil_image.mode
        except (OSError, ValueError) as error:
            raise NeroDataError(path, f"cannot read image ({error})") from error
        if mode not in _READABLE_MODES:
            raise NeroDataError(path, f"unsupported image mode {mode}; save the images as 8-bit RGB")
        if mode.endswith("A") and not warned_about_alpha:
            CONSOLE.print(
                f"[yellow]{path}: image has an alpha channel; only its RGB channels are used (warned once)",
                soft_wrap=True,
            )
            warned_about_alpha = True
        sizes.append(size)
    return sizes


def check_intrinsics(
    intrinsics: np.ndarray, sizes: Sequence[Tuple[int, int]], sources: Sequence[Union[str, Path]]
) -> None:
    """Refuse pinhole matrices no camera has: a focal length that is not a positive number, or a principal point
    more than half an image outside the image (training would go on without a word, on rays that miss the object).

    Args:
        intrinsics: ``[N, 3, 3]``; ``sizes``: ``(width, height)`` per view.
        sources: the file each view's matrix came from (one per view), named in the error.

    Raises:
        NeroDataError: naming the file of the first bad view.
    """
    for matrix, (width, height), source in zip(np.asarray(intrinsics, dtype=np.float64), sizes, sources):
        fx, fy, cx, cy = matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]
        if not (np.isfinite([fx, fy]).all() and fx > 0 and fy > 0):
            raise NeroDataError(source, f"focal length fx = {fx:g}, fy = {fy:g}; both must be positive pixels")
        inside = -0.5 * width <= cx <= 1.5 * width and -0.5 * height <= cy <= 1.5 * height
        if not (np.isfinite([cx, cy]).all() and inside):
            raise NeroDataError(source, f"principal point ({cx:g}, {cy:g}) lies far outside the {width}x{height} image")


def nero_cameras(w2c: np.ndarray, intrinsics: np.ndarray, sizes: Sequence[Tuple[int, int]]) -> Cameras:
    """nerfstudio Cameras from NeRO cameras.

    Args:
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses in the normalised frame.
        intrinsics: ``[N, 3, 3]`` pinhole matrices for pixel coordinates whose pixel centres sit at ``i + 0.5``
            (nerfstudio's default pixel offset, the same as NeRO's).
        sizes: ``(width, height)`` per image.
    """
    intrinsics = torch.as_tensor(np.asarray(intrinsics), dtype=torch.float32)
    sizes_tensor = torch.as_tensor(np.asarray(sizes, dtype=np.int64).reshape(-1, 2))
    return Cameras(
        camera_to_worlds=torch.as_tensor(opencv_w2c_to_opengl_c2w(np.asarray(w2c)), dtype=torch.float32),
        fx=intrinsics[:, 0, 0:1],
        fy=intrinsics[:, 1, 1:2],
        cx=intrinsics[:, 0, 2:3],
        cy=intrinsics[:, 1, 2:3],
        width=sizes_tensor[:, 0:1],
        height=sizes_tensor[:, 1:2],
        camera_type=CameraType.PERSPECTIVE,
    )


def split_indices(ids: Sequence[str], split: str, split_mode: Literal["validation", "test", "all"]) -> List[int]:
    """Indices into ``ids`` of the images of a nerfstudio split.

    ``validation``: NeRO's single held-out image (seed 6033) is "val"/"test", the rest "train".
    ``test``: GlossySynthetic's 96/32 split. ``all``: train on every image, evaluate on the NeRO held-out one.
    """
    if split_mode == "test":
        train_ids, eval_ids = synthetic_test_split(ids)
        if not eval_ids:
            raise ValueError("split_mode 'test' needs the GlossySynthetic ids 0..127; none of its 32 test ids exist")
    else:
        train_ids, eval_ids = nero_validation_split(ids)
        if split_mode == "all":
            train_ids = list(ids)
    if split == "train":
        chosen = set(train_ids)
    elif split in ("val", "test"):
        chosen = set(eval_ids)
    else:
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
    return [index for index, image_id in enumerate(ids) if image_id in chosen]


def nero_metadata(
    image_ids: Sequence[str],
    w2c: np.ndarray,
    dataset_format: Literal["synthetic", "real", "custom"],
    fixed_camera: bool = False,
) -> Dict[str, Any]:
    """The metadata shared by all formats (:class:`~nero_nerfstudio.core.keys.NeroKey`; ``depth_filenames`` is added by
    the caller).

    Args:
        image_ids: NeRO ids of the split's images.
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses of those images in the normalised frame.
    """
    synthetic = dataset_format == "synthetic"
    return {
        NeroKey.IMAGE_IDS: list(image_ids),
        NeroKey.UP_AXIS: "y" if synthetic else "z",
        # NeRO builds the photographer frame assuming z-up for every format; synthetic runs keep the light off.
        NeroKey.PHOTOGRAPHER_W2P: torch.as_tensor(
            photographer_w2p(w2c, fixed_camera=fixed_camera), dtype=torch.float32
        ),
        NeroKey.PHOTOGRAPHER_LIGHT: not synthetic,
        NeroKey.DATASET_FORMAT: dataset_format,
    }
