"""Undistorted copies of photos with OpenCV-model lens distortion (NeRO's cameras are pinholes).

``ns-process-data`` and Polycam-style exports keep the photos distorted and write the OPENCV model's coefficients;
the copies are made once into ``images_undistorted/`` next to the photos' folder and reused. The pinhole matrix is
kept, so the intrinsics stay as given. ``has_distortion`` is ``False`` when every coefficient is zero: nothing is
copied then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from nero_nerfstudio.data.image_resize import read_rgb, write_image_atomically
from nero_nerfstudio.utils.progress import counting_progress

UNDISTORTED_FOLDER = "images_undistorted"
_NEGLIGIBLE = 1e-9


def has_distortion(distortion: np.ndarray) -> bool:
    """Whether any of ``[N, 5]`` OpenCV coefficients ``(k1, k2, p1, p2, k3)`` is not zero."""
    return bool(np.any(np.abs(np.asarray(distortion)) > _NEGLIGIBLE))


def undistort_image(image: np.ndarray, intrinsics: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` image as the pinhole ``intrinsics`` ``[3, 3]`` would see it; ``distortion`` ``[5]`` is OpenCV's
    ``(k1, k2, p1, p2, k3)``. Pixels that map outside the photo are black."""
    return cv2.undistort(image, intrinsics, np.asarray(distortion, dtype=np.float64), None, intrinsics)


def undistorted_images_dir(
    images_dir: Path, image_names: Sequence[str], intrinsics: np.ndarray, distortion: np.ndarray
) -> Path:
    """The folder to read the images from: ``images_dir`` itself when no image has distortion, else
    ``<images_dir>/../images_undistorted`` with every image undistorted (each made when missing, older than its
    photo, or of another size).

    Args:
        images_dir: the photos' folder; ``image_names`` are relative to it.
        intrinsics: ``[N, 3, 3]``.
        distortion: ``[N, 5]`` OpenCV ``(k1, k2, p1, p2, k3)``.
    """
    if not has_distortion(distortion):
        return images_dir
    cache_dir = images_dir.parent / UNDISTORTED_FOLDER
    todo = []
    for index, name in enumerate(image_names):
        source, cached = images_dir / name, cache_dir / name
        with Image.open(source) as pil_image:
            size = pil_image.size
        if not cached.is_file() or cached.stat().st_mtime < source.stat().st_mtime or _size(cached) != size:
            todo.append((index, source, cached))
    if todo:
        with counting_progress() as progress:
            task = progress.add_task(f"Undistorting photos into {cache_dir.name}", total=len(todo))
            for index, source, cached in todo:
                write_image_atomically(undistort_image(read_rgb(source), intrinsics[index], distortion[index]), cached)
                progress.advance(task)
    return cache_dir


def _size(path: Path) -> Optional[Tuple[int, int]]:
    try:
        with Image.open(path) as pil_image:
            return pil_image.size
    except OSError:
        return None
