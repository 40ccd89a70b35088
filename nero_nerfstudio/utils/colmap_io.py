"""Reading the files of NeRO's COLMAP-based layouts (GlossyReal, custom): the binary COLMAP model,
``object_point_cloud.ply`` and ``meta_info.txt``, for the dataparser and the evaluation alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
from nerfstudio.data.utils.colmap_parsing_utils import (
    qvec2rotmat,
    read_cameras_binary,
    read_images_binary,
    read_points3D_binary,
)
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.errors import NeroDataError

# COLMAP's own layouts, in the order they are searched.
MODEL_FOLDERS = ("colmap/sparse/0", "sparse/0", "sparse")


@dataclass
class ColmapCameras:
    """Registered COLMAP images, ordered by image id, in the COLMAP world frame."""

    image_ids: List[str]
    image_names: List[str]
    w2c: np.ndarray
    """``[N, 3, 4]`` OpenCV world-to-camera."""
    intrinsics: np.ndarray
    """``[N, 3, 3]``."""
    sizes: List[Tuple[int, int]]
    """``(width, height)`` of the COLMAP camera of each image."""
    distortion: np.ndarray
    """``[N, 5]`` OpenCV ``(k1, k2, p1, p2, k3)`` of RADIAL and OPENCV cameras (``ns-process-data`` writes OPENCV);
    zero for the pinhole models and for SIMPLE_RADIAL, whose distortion NeRO ignores."""


def find_model_folder(data: Path) -> Path:
    """First of ``colmap/sparse/0``, ``sparse/0``, ``sparse`` under ``data`` that holds cameras.bin and images.bin."""
    for relative in MODEL_FOLDERS:
        folder = data / relative
        if (folder / "cameras.bin").is_file() and (folder / "images.bin").is_file():
            return folder
    raise NeroDataError(data, f"no COLMAP binary model (cameras.bin, images.bin) in any of {', '.join(MODEL_FOLDERS)}")


def read_colmap_cameras(model_folder: Path) -> ColmapCameras:
    """Poses, pinhole intrinsics and distortion of a COLMAP binary model (SIMPLE_RADIAL's is ignored, as in NeRO)."""
    try:
        cameras = read_cameras_binary(str(model_folder / "cameras.bin"))
    except Exception as error:  # COLMAP's reader raises struct/Key errors on truncated files.
        raise NeroDataError(model_folder / "cameras.bin", f"cannot parse COLMAP cameras ({error!r})") from error
    try:
        images = read_images_binary(str(model_folder / "images.bin"))
    except Exception as error:
        raise NeroDataError(model_folder / "images.bin", f"cannot parse COLMAP images ({error!r})") from error
    if not images:
        raise NeroDataError(model_folder / "images.bin", "no registered images")

    intrinsics_by_camera, distortion_by_camera = {}, {}
    for camera_id, camera in cameras.items():
        params = camera.params
        distortion = np.zeros(5)  # OpenCV's (k1, k2, p1, p2, k3)
        if camera.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL"):
            fx = fy = params[0]
            cx, cy = params[1], params[2]
        elif camera.model == "RADIAL":
            fx = fy = params[0]
            cx, cy = params[1], params[2]
            distortion[:2] = params[3:5]
        elif camera.model in ("PINHOLE", "OPENCV"):
            fx, fy, cx, cy = params[:4]
            if camera.model == "OPENCV":
                distortion[:4] = params[4:8]
        else:
            raise NeroDataError(
                model_folder / "cameras.bin",
                f"camera {camera_id} uses the {camera.model} model; only SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, "
                "RADIAL and OPENCV are supported (undistort the images with COLMAP's image_undistorter)",
            )
        intrinsics_by_camera[camera_id] = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        distortion_by_camera[camera_id] = distortion
    if any(camera.model == "SIMPLE_RADIAL" for camera in cameras.values()):
        CONSOLE.print(f"[yellow]{model_folder / 'cameras.bin'}: SIMPLE_RADIAL distortion is ignored (as NeRO does)")

    image_ids, names, w2c, intrinsics, distortions, sizes = [], [], [], [], [], []
    for image_id in sorted(images):
        image = images[image_id]
        if image.camera_id not in cameras:
            raise NeroDataError(
                model_folder / "images.bin", f"image {image.name} uses unknown camera {image.camera_id}"
            )
        camera = cameras[image.camera_id]
        image_ids.append(str(image_id))
        names.append(image.name)
        w2c.append(np.concatenate([qvec2rotmat(image.qvec), np.asarray(image.tvec)[:, None]], axis=1))
        intrinsics.append(intrinsics_by_camera[image.camera_id])
        distortions.append(distortion_by_camera[image.camera_id])
        sizes.append((int(camera.width), int(camera.height)))
    return ColmapCameras(image_ids, names, np.stack(w2c), np.stack(intrinsics), sizes, np.stack(distortions))


def read_colmap_points(model_folder: Path) -> np.ndarray:
    """``[P, 3]`` sparse points of a COLMAP binary model (empty when it has no ``points3D.bin``)."""
    path = model_folder / "points3D.bin"
    if not path.is_file():
        return np.empty((0, 3))
    try:
        points = read_points3D_binary(str(path))
    except Exception as error:  # COLMAP's reader raises struct errors on truncated files.
        raise NeroDataError(path, f"cannot parse COLMAP points ({error!r})") from error
    if not points:
        return np.empty((0, 3))
    return np.stack([np.asarray(point.xyz, dtype=np.float64) for point in points.values()])


def read_point_cloud(path: Path) -> np.ndarray:
    """``[P, 3]`` vertex positions of a PLY file."""
    if not path.is_file():
        raise NeroDataError(path, "object point cloud is missing (crop the object out of the dense COLMAP cloud)")
    # trimesh is imported here, not at module level: the dataparsers import this module on every ns-* command.
    import trimesh  # pylint: disable=import-outside-toplevel

    try:
        geometry = trimesh.load(str(path), file_type="ply", process=False)
    except Exception as error:  # trimesh raises a variety of parser errors on corrupt files.
        raise NeroDataError(path, f"cannot read point cloud ({error!r})") from error
    vertices = getattr(geometry, "vertices", None)
    if vertices is None:
        raise NeroDataError(path, "PLY file holds no vertices")
    return np.asarray(vertices, dtype=np.float64).reshape(-1, 3)


def read_meta_info(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """``(up, forward)`` from a ``meta_info.txt``: two lines of three numbers each."""
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        up, forward = (np.array([float(value) for value in line]) for line in lines[:2])
    except (OSError, ValueError) as error:
        raise NeroDataError(path, f"expected two lines 'up' and 'forward' of three numbers each ({error})") from error
    if len(lines) < 2 or up.shape != (3,) or forward.shape != (3,):
        raise NeroDataError(path, "expected two lines 'up' and 'forward' of three numbers each")
    return up, forward
