"""Undistorted copies of photos with OpenCV-model lens distortion (NeRO's cameras are pinholes).

``ns-process-data`` and Polycam-style exports keep the photos distorted and write the OPENCV model's coefficients.
The copies are made once into ``images_undistorted/`` in the dataset folder and reused while the photos and the
coefficients stay the same (``distortion.json`` beside them records the coefficients). Each copy is cropped to the
largest pinhole view with no empty corner (OpenCV's ``getOptimalNewCameraMatrix`` with ``alpha = 0``): black corners
would be fitted as scene colour. Photos without distortion are used as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence, Tuple

import cv2
import numpy as np

from nero_nerfstudio.data.image_resize import is_rgb_of_size, read_rgb, write_image_atomically
from nero_nerfstudio.utils.io import atomic_write_bytes
from nero_nerfstudio.utils.progress import counting_progress

UNDISTORTED_FOLDER = "images_undistorted"
_RECORD = "distortion.json"
_NEGLIGIBLE = 1e-9


def has_distortion(distortion: np.ndarray) -> bool:
    """Whether any of the OpenCV coefficients ``[..., 5]`` ``(k1, k2, p1, p2, k3)`` is not zero."""
    return bool(np.any(np.abs(np.asarray(distortion)) > _NEGLIGIBLE))


def undistorted_intrinsics(intrinsics: np.ndarray, distortion: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``[3, 3]`` pinhole matrix of the undistorted copy: the largest view of the same size with no empty corner."""
    new_intrinsics, _ = cv2.getOptimalNewCameraMatrix(intrinsics, np.asarray(distortion, np.float64), size, 0.0, size)
    return new_intrinsics


def undistort_image(
    image: np.ndarray, intrinsics: np.ndarray, distortion: np.ndarray, new_intrinsics: np.ndarray
) -> np.ndarray:
    """``[H, W, 3]`` photo as the pinhole ``new_intrinsics`` would see it; ``distortion`` ``[5]`` is OpenCV's
    ``(k1, k2, p1, p2, k3)`` of the camera ``intrinsics`` ``[3, 3]`` that took it."""
    return cv2.undistort(image, intrinsics, np.asarray(distortion, dtype=np.float64), None, new_intrinsics)


def undistorted_images(
    images_dir: Path,
    image_names: Sequence[str],
    intrinsics: np.ndarray,
    distortion: np.ndarray,
    sizes: Sequence[Tuple[int, int]],
    cache_dir: Path,
) -> Tuple[Path, np.ndarray]:
    """The folder to read the images from and their pinhole intrinsics ``[N, 3, 3]``.

    ``images_dir`` and ``intrinsics`` as they are when no image has distortion; else ``cache_dir`` with every image
    undistorted (each made when missing, older than its photo, of another size, or made with other coefficients).

    Args:
        images_dir: the photos' folder; ``image_names`` are relative to it.
        intrinsics: ``[N, 3, 3]``; ``distortion``: ``[N, 5]`` OpenCV ``(k1, k2, p1, p2, k3)``; ``sizes``: ``(w, h)``.
        cache_dir: where the copies go (inside the dataset folder).
    """
    if not has_distortion(distortion):
        return images_dir, np.asarray(intrinsics)
    new_intrinsics = np.stack(
        [undistorted_intrinsics(k, d, tuple(size)) for k, d, size in zip(intrinsics, distortion, sizes)]
    )
    record = {name: [np.asarray(k).tolist(), np.asarray(d).tolist()] for name, k, d in zip(image_names, intrinsics, distortion)}
    previous = _read_record(cache_dir / _RECORD)
    todo = []
    for index, name in enumerate(image_names):
        source, cached = images_dir / name, cache_dir / name
        fresh = (
            cached.is_file()
            and cached.stat().st_mtime >= source.stat().st_mtime
            and is_rgb_of_size(cached, tuple(sizes[index]))
        )
        if not fresh or previous.get(name) != record[name]:
            todo.append((index, source, cached))
    if todo:
        with counting_progress() as progress:
            task = progress.add_task(f"Undistorting photos into {cache_dir}", total=len(todo))
            for index, source, cached in todo:
                image = undistort_image(read_rgb(source), intrinsics[index], distortion[index], new_intrinsics[index])
                write_image_atomically(image, cached)
                progress.advance(task)
        atomic_write_bytes(cache_dir / _RECORD, json.dumps(record).encode())
    return cache_dir, new_intrinsics


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}

