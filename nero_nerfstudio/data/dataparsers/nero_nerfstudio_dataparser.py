"""nero-nerfstudio: nerfstudio's own ``transforms.json`` (``ns-process-data``, Polycam, Record3D, ...) for NeRO.

Camera-to-world matrices in OpenGL convention, shared or per-frame pinhole intrinsics, PINHOLE or OPENCV cameras
(distorted photos are undistorted once into ``images_undistorted/``, cropped to no empty corner), and the point cloud of ``ply_file_path`` (or of
``colmap/sparse/0``, moved by ``applied_transform``) for the automatic object frame
(:mod:`nero_nerfstudio.data.object_frame`). The dataset frame is the world ``transforms.json`` is written in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Type

import numpy as np
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataparserOutputs
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from nero_nerfstudio.core.camera_conventions import opengl_c2w_to_opencv_w2c
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.dataparsers.nero_parser_common import check_intrinsics
from nero_nerfstudio.data.dataparsers.nero_photo_parser import (
    FrameSources,
    NeroPhotoDataParserConfig,
    check_image_sizes,
    photo_dataparser_outputs,
    resolve_object_frame,
)
from nero_nerfstudio.data.undistortion import UNDISTORTED_FOLDER, undistorted_images
from nero_nerfstudio.utils.colmap_io import read_colmap_points, read_point_cloud

TRANSFORMS_FILE = "transforms.json"
SUPPORTED_CAMERA_MODELS = ("PINHOLE", "OPENCV")
# What ns-process-data applied to COLMAP's world before it wrote applied_transform into the file (nerfstudio's own
# parser assumes the same for such files).
LEGACY_APPLIED_TRANSFORM = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
_DISTORTION_KEYS = ("k1", "k2", "p1", "p2", "k3")  # OpenCV's order


@dataclass
class TransformsFile:
    """The cameras of a ``transforms.json``, in file order."""

    image_paths: List[Path]
    w2c: np.ndarray
    """``[N, 3, 4]`` OpenCV world-to-camera."""
    intrinsics: np.ndarray
    """``[N, 3, 3]``."""
    sizes: List[tuple]
    """``(width, height)`` per frame as the file states it."""
    distortion: np.ndarray
    """``[N, 5]`` OpenCV ``(k1, k2, p1, p2, k3)``."""
    meta: Dict[str, Any]


def _number(path: Path, where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise NeroDataError(path, f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def read_transforms(path: Path) -> TransformsFile:
    """Parse and check a ``transforms.json``; every problem is a :class:`NeroDataError` naming the file and frame."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NeroDataError(path, f"not a readable JSON file ({error})") from error
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise NeroDataError(path, "expected a JSON object with a non-empty 'frames' list")
    image_paths, w2c, intrinsics, sizes, distortion = [], [], [], [], []
    for index, frame in enumerate(frames):
        where = f"frame {index}"
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise NeroDataError(path, f"{where}: needs a 'file_path' string")
        where = f"frame {index} ({frame['file_path']})"
        model = frame.get("camera_model", meta.get("camera_model", "OPENCV"))
        if model not in SUPPORTED_CAMERA_MODELS:
            raise NeroDataError(
                path,
                f"{where}: camera model {model} is not supported (only {', '.join(SUPPORTED_CAMERA_MODELS)}: NeRO "
                "needs pinhole photos); run nero-process-data on the photos instead",
            )
        values = {}
        for key in _INTRINSIC_KEYS + _DISTORTION_KEYS:
            value = frame.get(key, meta.get(key))
            if value is None and key in _INTRINSIC_KEYS:
                raise NeroDataError(path, f"{where}: '{key}' is missing (neither in the frame nor at the top level)")
            values[key] = 0.0 if value is None else _number(path, where, key, value)
        if values["fl_x"] <= 0 or values["fl_y"] <= 0 or values["w"] < 1 or values["h"] < 1:
            raise NeroDataError(path, f"{where}: focal lengths and image size must be positive")
        if not (0 <= values["cx"] <= values["w"] and 0 <= values["cy"] <= values["h"]):
            raise NeroDataError(path, f"{where}: principal point ({values['cx']}, {values['cy']}) is outside the image")
        try:
            c2w = np.asarray(frame.get("transform_matrix"), dtype=np.float64)
        except (TypeError, ValueError):
            c2w = np.empty(0)
        if c2w.shape not in ((4, 4), (3, 4)) or not np.all(np.isfinite(c2w)):
            raise NeroDataError(path, f"{where}: 'transform_matrix' must be a finite 4x4 (or 3x4) matrix")
        rotation = c2w[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-3) or np.linalg.det(rotation) < 0:
            raise NeroDataError(path, f"{where}: 'transform_matrix' has no rotation in its upper 3x3 (scaled or skewed)")
        image_paths.append(Path(os.path.normpath(path.parent / frame["file_path"])))
        w2c.append(opengl_c2w_to_opencv_w2c(c2w[:3]))
        intrinsics.append([[values["fl_x"], 0.0, values["cx"]], [0.0, values["fl_y"], values["cy"]], [0.0, 0.0, 1.0]])
        sizes.append((int(values["w"]), int(values["h"])))
        distortion.append([values[key] for key in _DISTORTION_KEYS] if model == "OPENCV" else [0.0] * 5)
    return TransformsFile(image_paths, np.stack(w2c), np.asarray(intrinsics), sizes, np.asarray(distortion), meta)


def _applied_transform(path: Path, meta: Dict[str, Any], has_colmap: bool) -> Optional[np.ndarray]:
    """``[3, 4]`` COLMAP world -> the file's world, as ``ns-process-data`` records it."""
    if "applied_transform" not in meta:
        return LEGACY_APPLIED_TRANSFORM if has_colmap else None
    try:
        transform = np.asarray(meta["applied_transform"], dtype=np.float64)
    except (TypeError, ValueError):
        transform = np.empty(0)
    if transform.shape == (4, 4):
        transform = transform[:3]
    if transform.shape != (3, 4) or not np.all(np.isfinite(transform)):
        raise NeroDataError(path, f"'applied_transform' must be a 3x4 matrix, got {meta['applied_transform']!r}")
    return transform


def sparse_points(data: Path, transforms: TransformsFile, transforms_path: Path) -> Optional[np.ndarray]:
    """``[P, 3]`` structure-from-motion points in the file's world: ``ply_file_path``, else the COLMAP model moved
    by ``applied_transform``, else ``None``."""
    ply_name = transforms.meta.get("ply_file_path")
    if isinstance(ply_name, str) and (data / ply_name).is_file():
        return read_point_cloud(data / ply_name)
    colmap_folder = data / "colmap" / "sparse" / "0"
    if not (colmap_folder / "points3D.bin").is_file():
        return None
    transform = _applied_transform(transforms_path, transforms.meta, has_colmap=True)
    points = read_colmap_points(colmap_folder)
    return points if transform is None else points @ transform[:, :3].T + transform[:, 3]


@dataclass
class NeroNerfstudioDataParserConfig(NeroPhotoDataParserConfig):
    """nerfstudio's transforms.json format (ns-process-data, Polycam, Record3D, ...)."""

    _target: Type = field(default_factory=lambda: NeroNerfstudioDataParser)
    data: Path = Path()
    """Folder holding transforms.json (or the transforms.json file itself)."""


@dataclass
class NeroNerfstudioDataParser(DataParser):
    """Reads a transforms.json capture into NeRO's normalised frame."""

    config: NeroNerfstudioDataParserConfig

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        data = self.config.data
        transforms_path = data if data.suffix == ".json" else data / TRANSFORMS_FILE
        data = transforms_path.parent
        if not transforms_path.is_file():
            raise NeroDataError(transforms_path, "transforms.json not found")
        transforms = read_transforms(transforms_path)
        check_image_sizes(transforms.image_paths, transforms.sizes, transforms_path)
        check_intrinsics(transforms.intrinsics, transforms.sizes, [transforms_path] * len(transforms.sizes))

        frame = resolve_object_frame(
            self.config,
            FrameSources(),
            transforms.w2c,
            transforms.intrinsics,
            transforms.sizes,
            sparse_points=lambda: sparse_points(data, transforms, transforms_path),
            cameras_source=transforms_path,
        )
        images_dir = Path(os.path.commonpath([str(path.parent) for path in transforms.image_paths]))
        if images_dir != data and data not in images_dir.parents:
            raise NeroDataError(transforms_path, f"images must lie inside {data} (found them under {images_dir})")
        names = [str(path.relative_to(images_dir)) for path in transforms.image_paths]
        images_dir, intrinsics = undistorted_images(
            images_dir, names, transforms.intrinsics, transforms.distortion, transforms.sizes,
            data / UNDISTORTED_FOLDER,
        )
        return photo_dataparser_outputs(
            self.config,
            split,
            image_ids=[str(index) for index in range(len(names))],
            images_dir=images_dir,
            image_names=names,
            w2c=transforms.w2c,
            intrinsics=intrinsics,
            sizes=transforms.sizes,
            frame=frame,
            dataset_format="custom",
            dataset_dir=data,
        )


nero_nerfstudio_dataparser = DataParserSpecification(
    config=NeroNerfstudioDataParserConfig(),
    description="nerfstudio's transforms.json (ns-process-data, Polycam, Record3D); object frame estimated or given",
)
