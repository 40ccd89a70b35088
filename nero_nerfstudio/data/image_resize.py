"""NeRO's ``raw_<N>`` resolution rule: blur, downscale so the long side is N, scale the intrinsics (method.md §2.2).

Downscaled copies are cached in ``images_raw_<N>/`` next to ``images/`` and reused on later runs.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2  # opencv-python-headless ships with nerfstudio, whose cameras module imports it anyway
import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nero_nerfstudio.core.errors import NeroDataError


def raw_target_size(width: int, height: int, max_resolution: int) -> Tuple[int, int]:
    """``(tw, th) = (round(ratio W), round(ratio H))`` with ``ratio = N / max(W, H)``.

    Images whose long side is already at most N keep their size (NeRO would upsample them; that only adds blur).
    """
    if max(width, height) <= max_resolution:
        return width, height
    ratio = max_resolution / max(width, height)
    return max(1, round(ratio * width)), max(1, round(ratio * height))


def anti_alias_kernel(ratio: float) -> Tuple[float, int]:
    """Gaussian ``(sigma, kernel_size)`` used before downscaling by ``ratio`` (< 1): ``sigma = (1 / ratio) / 3``."""
    sigma = (1.0 / ratio) / 3.0
    kernel_size = math.ceil(((sigma - 0.8) / 0.3 + 1.0) * 2.0 + 1.0)
    if kernel_size % 2 == 0:
        kernel_size += 1
    return sigma, max(kernel_size, 1)


def downscale_image(image: np.ndarray, target_size: Tuple[int, int]) -> np.ndarray:
    """Blurs and bilinearly resizes an image.

    Args:
        image: ``[H, W, C]`` uint8.
        target_size: ``(tw, th)``.

    Returns:
        ``[th, tw, C]`` uint8.
    """
    height, width = image.shape[:2]
    if (width, height) == tuple(target_size):
        return image
    sigma, kernel_size = anti_alias_kernel(target_size[0] / width)
    blurred = cv2.GaussianBlur(image, (kernel_size, kernel_size), sigma, borderType=cv2.BORDER_REFLECT_101)
    resized = cv2.resize(blurred, tuple(int(v) for v in target_size), interpolation=cv2.INTER_LINEAR)
    return resized.reshape(target_size[1], target_size[0], *image.shape[2:])


def scale_intrinsics(intrinsics: np.ndarray, size: Tuple[int, int], target_size: Tuple[int, int]) -> np.ndarray:
    """``diag(tw / W, th / H, 1) K`` for ``[..., 3, 3]`` intrinsics.

    NeRO truncates the size for K but rounds it for the image (up to 1 px apart); we use the rounded size for both so
    that K describes the image actually written.
    """
    scale = np.diag([target_size[0] / size[0], target_size[1] / size[1], 1.0])
    return scale @ np.asarray(intrinsics, dtype=np.float64)


def read_rgb(path: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of an image file (alpha dropped, grey expanded)."""
    try:
        with Image.open(path) as pil_image:
            return np.asarray(pil_image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise NeroDataError(path, f"cannot read image ({error})") from error


def write_image_atomically(image: np.ndarray, path: Path) -> None:
    """Writes ``[H, W, 3]`` uint8 to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    file_descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(file_descriptor, "wb") as file:
            image_format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
            # PIL's default JPEG quality (75) would visibly degrade the training images.
            options = {"quality": 95} if image_format == "JPEG" else {}
            Image.fromarray(image).save(file, format=image_format, **options)
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.remove(temp_name)
        raise


def is_rgb_of_size(path: Path, size: Tuple[int, int]) -> bool:
    """Whether ``path`` is a readable RGB image of ``(width, height)`` ``size`` (a cached copy still good)."""
    try:
        with Image.open(path) as pil_image:
            return pil_image.size == tuple(size) and pil_image.mode == "RGB"
    except OSError:
        return False


def cached_downscaled_images(
    images_dir: Path,
    image_names: Sequence[str],
    target_sizes: Sequence[Tuple[int, int]],
    max_resolution: int,
    cache_dir: Optional[Path] = None,
) -> List[Path]:
    """Downscaled RGB copies in ``<images_dir>/../<images_dir name>_raw_<N>/<name>`` (``images_raw_<N>`` for
    ``images/``), made once and reused.

    Args:
        images_dir: the ``images/`` folder.
        image_names: file names relative to ``images_dir`` (as COLMAP stores them).
        target_sizes: ``(tw, th)`` per image (from :func:`raw_target_size`).
        max_resolution: N, names the cache folder.

    Returns:
        Paths of the images to use, in the input order; images already at their target size are not copied.
    """
    if cache_dir is None:
        # Named after the source folder: an undistorted set (images_undistorted/) must not share the originals' cache.
        cache_dir = images_dir.parent / f"{images_dir.name}_raw_{max_resolution}"
    used_paths: List[Path] = []
    todo: List[Tuple[Path, Path, Tuple[int, int]]] = []
    for name, size in zip(image_names, target_sizes):
        source = images_dir / name
        with Image.open(source) as pil_image:
            original_size = pil_image.size
        if original_size == tuple(size):
            used_paths.append(source)
            continue
        cached = cache_dir / name
        used_paths.append(cached)
        if not is_rgb_of_size(cached, size):
            todo.append((source, cached, size))
    if todo:
        columns = (
            TextColumn(f"[bold blue]Resizing images into {cache_dir.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as progress:
            for source, cached, size in progress.track(todo):
                write_image_atomically(downscale_image(read_rgb(source), size), cached)
    return used_paths
