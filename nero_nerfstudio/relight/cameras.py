"""Relighting cameras (pure numpy): NeRO's half orbit, a synthetic dataset's own cameras, and Blender's camera model.

All poses here are OpenCV world-to-camera ``[R | t]`` in **Blender's world frame** (z-up), with pinhole ``K`` whose
pixel centres sit at ``i + 0.5``. :func:`blender_camera_parameters` turns one into what a Blender camera needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from nero_nerfstudio.core.camera_conventions import opencv_w2c_to_opengl_c2w
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.scenes.camera_rig import look_at_w2c
from nero_nerfstudio.utils.synthetic_io import load_camera_pickle, synthetic_view_ids

SENSOR_WIDTH_MM = 36.0
"""Blender's default sensor width; every relight camera uses it with a horizontal sensor fit."""
DEFAULT_LENS_MM = 50.0
"""Blender's default focal length (NeRO's relighting camera)."""

# +90 deg about X: y-up (x, y, z) -> Blender z-up (x, -z, y), NeRO's --trans (architecture.md, "Frames").
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class RelightCameras:
    """The views to render, all of one image size."""

    names: List[str]
    """Output file stem per view (``<name>.png``)."""
    w2c: np.ndarray
    """``[num_views, 3, 4]`` OpenCV world-to-camera in Blender's world frame."""
    intrinsics: np.ndarray
    """``[num_views, 3, 3]``."""
    width: int
    height: int


def object_rotation(up_axis: str) -> np.ndarray:
    """Rotation ``[3, 3]`` that stands a mesh with this up axis (``"y"`` or ``"z"``) upright in Blender."""
    if up_axis == "y":
        return Y_UP_TO_Z_UP.copy()
    if up_axis == "z":
        return np.eye(3)
    raise ValueError(f"up axis must be 'y' or 'z', got '{up_axis}'")


def orbit_cameras(
    num_frames: int,
    resolution: int,
    radius: float = 3.0,
    elevation_deg: float = 45.0,
    azimuth_center_deg: float = 0.0,
    lens_mm: float = DEFAULT_LENS_MM,
) -> RelightCameras:
    """NeRO's relighting path: a half orbit, azimuth from ``center - 90`` to ``center + 90`` degrees.

    Cameras sit at ``radius`` and ``elevation_deg`` above the xy-plane, look at the origin with +z up. Azimuth 0
    is Blender's front view (camera on the -y axis); azimuth grows counter-clockwise seen from above.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_frames == 1:
        azimuths = np.array([azimuth_center_deg])
    else:
        azimuths = np.linspace(azimuth_center_deg - 90.0, azimuth_center_deg + 90.0, num_frames)
    azimuth = np.radians(azimuths - 90.0)  # measured from +x: the front view (-y) is at -90 deg
    elevation = math.radians(elevation_deg)
    centers = radius * np.stack(
        [
            math.cos(elevation) * np.cos(azimuth),
            math.cos(elevation) * np.sin(azimuth),
            np.full_like(azimuth, math.sin(elevation)),
        ],
        axis=-1,
    )
    focal = lens_mm / SENSOR_WIDTH_MM * resolution
    intrinsics = np.array([[focal, 0.0, resolution / 2.0], [0.0, focal, resolution / 2.0], [0.0, 0.0, 1.0]])
    return RelightCameras(
        names=[str(index) for index in range(num_frames)],
        w2c=look_at_w2c(centers),
        intrinsics=np.repeat(intrinsics[None], num_frames, axis=0),
        width=resolution,
        height=resolution,
    )


def dataset_view_ids(folder: Path) -> List[str]:
    """Ids ``k`` of a GlossySynthetic folder's ``<k>-camera.pkl`` files, in numeric order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NeroDataError(folder, "camera folder does not exist")
    return synthetic_view_ids(folder)


def _image_size(path: Path) -> tuple:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError) as error:
        raise NeroDataError(path, f"cannot read image size ({error})") from error


def dataset_cameras(folder: Path, rotation: np.ndarray, view_ids: Optional[Sequence[str]] = None) -> RelightCameras:
    """A GlossySynthetic folder's own cameras, moved into Blender's world frame.

    Args:
        folder: holds ``<k>-camera.pkl`` (OpenCV w2c and K, in the dataset frame) and ``<k>.png`` (for the size).
        rotation: ``[3, 3]`` the rotation given to the mesh in Blender (``p_blender = rotation @ p_dataset``);
            the cameras get the same one, ``R_blender = R rotation^T``, so every pixel sees the same surface point.
        view_ids: the views to render (default: all).
    """
    folder = Path(folder)
    all_ids = dataset_view_ids(folder)
    ids = list(all_ids if view_ids is None else view_ids)
    unknown = [view_id for view_id in ids if view_id not in all_ids]
    if unknown:
        raise NeroDataError(folder, f"no camera for view ids {unknown}; available: {all_ids[0]}..{all_ids[-1]}")
    sizes = {view_id: _image_size(folder / f"{view_id}.png") for view_id in ids}
    if len(set(sizes.values())) != 1:
        raise NeroDataError(folder, f"views have different image sizes {sorted(set(sizes.values()))}")
    width, height = sizes[ids[0]]
    w2c_list, intrinsics_list = [], []
    for view_id in ids:
        w2c, intrinsics = load_camera_pickle(folder / f"{view_id}-camera.pkl")
        if abs(intrinsics[0, 0] - intrinsics[1, 1]) > 1e-4 * intrinsics[0, 0] or abs(intrinsics[0, 1]) > 1e-9:
            raise NeroDataError(folder / f"{view_id}-camera.pkl", "only square pixels (fx == fy, no skew) are supported")
        w2c_list.append(np.concatenate([w2c[:, :3] @ rotation.T, w2c[:, 3:]], axis=1))
        intrinsics_list.append(intrinsics)
    return RelightCameras(
        names=ids, w2c=np.stack(w2c_list), intrinsics=np.stack(intrinsics_list), width=width, height=height
    )


def blender_camera_parameters(w2c: np.ndarray, intrinsics: np.ndarray, width: int, height: int) -> Dict[str, object]:
    """What a Blender camera (horizontal sensor fit, 36 mm sensor) needs to reproduce a pinhole view.

    Blender measures lens shift in units of the fitted sensor dimension (the image width here): the optical
    axis lands at pixel ``(W / 2 - shift_x W, H / 2 + shift_y W)``.

    Returns:
        ``camera_to_world`` ``[4, 4]`` (Blender/OpenGL camera axes), ``lens_mm``, ``sensor_width_mm``,
        ``shift_x``, ``shift_y``.
    """
    camera_to_world = np.eye(4)
    camera_to_world[:3] = opencv_w2c_to_opengl_c2w(w2c)
    focal, cx, cy = intrinsics[0, 0], intrinsics[0, 2], intrinsics[1, 2]
    return {
        "camera_to_world": camera_to_world.tolist(),
        "lens_mm": float(focal * SENSOR_WIDTH_MM / width),
        "sensor_width_mm": SENSOR_WIDTH_MM,
        "shift_x": float((width / 2.0 - cx) / width),
        "shift_y": float((cy - height / 2.0) / width),
    }


def project_points(points: np.ndarray, w2c: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``[P, 2]`` (u right, v down; pixel centres at ``i + 0.5``) of world points ``[P, 3]``."""
    camera_points = points @ w2c[:, :3].T + w2c[:, 3]
    projected = camera_points @ intrinsics.T
    return projected[:, :2] / projected[:, 2:3]
