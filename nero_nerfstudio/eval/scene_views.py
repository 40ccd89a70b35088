"""The cameras of a scene folder, in its dataset frame, for evaluation (GlossySynthetic or COLMAP layouts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence

import numpy as np
from PIL import Image

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.splits import SYNTHETIC_TEST_IDS
from nero_nerfstudio.data.object_frame import FRAME_FILE_NAME, ObjectFrame, point_cloud_sphere
from nero_nerfstudio.utils.colmap_io import find_model_folder, read_colmap_cameras, read_point_cloud
from nero_nerfstudio.utils.synthetic_io import load_camera_pickle, synthetic_view_ids

SceneLayout = Literal["synthetic", "colmap"]
ViewSelection = Literal["test", "all"]


@dataclass
class SceneView:
    """One pinhole camera of a scene."""

    name: str
    """Image stem (``<k>`` for GlossySynthetic)."""
    w2c: np.ndarray
    """``[3, 4]`` OpenCV world-to-camera, dataset frame."""
    intrinsics: np.ndarray
    """``[3, 3]``."""
    width: int
    height: int
    depth_path: Optional[Path] = None
    """``<k>-depth.png`` (GlossySynthetic only)."""


def scene_layout(folder: Path) -> SceneLayout:
    """``synthetic`` for ``<k>-camera.pkl`` folders, ``colmap`` for GlossyReal/custom folders."""
    if not folder.is_dir():
        raise NeroDataError(folder, "scene folder not found")
    if any(folder.glob("*-camera.pkl")):
        return "synthetic"
    find_model_folder(folder)  # raises a clear error when this is neither layout
    return "colmap"


def select_synthetic_ids(all_ids: Sequence[str], selection: ViewSelection) -> List[str]:
    """NeRO's 32 test ids when ``selection`` is ``test`` and the folder has all of them, else every id."""
    if selection == "test" and set(SYNTHETIC_TEST_IDS) <= set(all_ids):
        return [image_id for image_id in all_ids if image_id in set(SYNTHETIC_TEST_IDS)]
    return list(all_ids)


def load_synthetic_views(folder: Path, selection: ViewSelection = "all") -> List[SceneView]:
    """Cameras (and depth files, if present) of a GlossySynthetic folder; see :func:`select_synthetic_ids`."""
    if not folder.is_dir():
        raise NeroDataError(folder, "dataset folder not found")
    all_ids = synthetic_view_ids(folder)
    views = []
    for image_id in select_synthetic_ids(all_ids, selection):
        w2c, intrinsics = load_camera_pickle(folder / f"{image_id}-camera.pkl")
        image_path = folder / f"{image_id}.png"
        depth_path = folder / f"{image_id}-depth.png"
        size_source = image_path if image_path.is_file() else depth_path
        if not size_source.is_file():
            raise NeroDataError(image_path, "image missing (needed for the view's size)")
        with Image.open(size_source) as image:
            width, height = image.size
        views.append(
            SceneView(image_id, w2c, intrinsics, width, height, depth_path if depth_path.is_file() else None)
        )
    return views


def load_colmap_views(folder: Path) -> List[SceneView]:
    """Registered cameras of a GlossyReal/custom folder, in the COLMAP frame."""
    cameras = read_colmap_cameras(find_model_folder(folder))
    return [
        SceneView(Path(name).stem, w2c, intrinsics, width, height)
        for name, w2c, intrinsics, (width, height) in zip(
            cameras.image_names, cameras.w2c, cameras.intrinsics, cameras.sizes
        )
    ]


def load_scene_views(folder: Path, selection: ViewSelection = "all") -> List[SceneView]:
    """The views of either layout (``selection`` only applies to GlossySynthetic)."""
    if scene_layout(folder) == "synthetic":
        return load_synthetic_views(folder, selection)
    return load_colmap_views(folder)


def dataset_to_normalized_scale(folder: Path) -> float:
    """Length scale from the dataset frame to NeRO's normalised frame (method.md §2.2).

    GlossySynthetic is already normalised (1). GlossyReal/custom: ``1 / max ‖x - c‖`` over
    ``object_point_cloud.ply`` with ``c`` its bounding-box centre, or without it ``1 / radius`` of the folder's
    ``nero_frame.json``; the rotation and centre do not change distances.
    """
    if scene_layout(folder) == "synthetic":
        return 1.0
    path = folder / "object_point_cloud.ply"
    if not path.exists() and (folder / FRAME_FILE_NAME).is_file():
        # A folder of own photos (nero-process-data): the sphere of its object frame.
        return 1.0 / ObjectFrame.read(folder / FRAME_FILE_NAME).radius
    return 1.0 / point_cloud_sphere(read_point_cloud(path), path)[1]


def load_scene_info(folder: Path) -> Dict[str, Any]:
    """``gt/scene.json`` written by ``nero-render-scene`` (ground-truth materials and scene settings)."""
    path = folder / "gt" / "scene.json"
    if not path.is_file():
        raise NeroDataError(path, "ground-truth scene description missing (scenes made by nero-render-scene have it)")
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise NeroDataError(path, f"cannot read JSON ({error})") from error
    if not isinstance(content, dict):
        raise NeroDataError(path, "expected a JSON object")
    return content
