"""Writer for the GlossyReal / custom layouts (method.md §2.2-2.3): a COLMAP binary model and the object's points.

``colmap/sparse/0/{cameras,images,points3D}.bin`` through nerfstudio's ``colmap_parsing_utils`` writers,
``object_point_cloud.ply`` and, for ``custom``, ``meta_info.txt`` (line 1 up, line 2 forward).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from nero_nerfstudio.utils.io import atomic_path, atomic_write_bytes

SPARSE_DIR = Path("colmap") / "sparse" / "0"


def write_colmap_model(
    output_dir: Path,
    image_names: Sequence[str],
    w2c: np.ndarray,
    intrinsics: np.ndarray,
    width: int,
    height: int,
    points: np.ndarray,
    point_rgb: np.ndarray,
    shared_camera: bool,
) -> None:
    """Write the COLMAP binary model.

    Args:
        image_names: file names inside ``images/``, one per pose.
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera in the COLMAP frame.
        intrinsics: ``[3, 3]`` with ``fx == fy``.
        points: ``[P, 3]`` surface points in the COLMAP frame (written without tracks).
        point_rgb: ``[3]`` uint8 colour of every point.
        shared_camera: one PINHOLE camera for all images (as GlossyReal), or one SIMPLE_PINHOLE camera per image
            (as NeRO's ``run_colmap.py`` makes for custom data).
    """
    from nerfstudio.data.utils import colmap_parsing_utils as colmap

    focal_x, focal_y = float(intrinsics[0, 0]), float(intrinsics[1, 1])
    center_x, center_y = float(intrinsics[0, 2]), float(intrinsics[1, 2])
    cameras = {}
    images = {}
    for index, name in enumerate(image_names):
        image_id = index + 1
        camera_id = 1 if shared_camera else image_id
        if camera_id not in cameras:
            if shared_camera:
                params = np.array([focal_x, focal_y, center_x, center_y])
                cameras[camera_id] = colmap.Camera(camera_id, "PINHOLE", width, height, params)
            else:
                params = np.array([focal_x, center_x, center_y])
                cameras[camera_id] = colmap.Camera(camera_id, "SIMPLE_PINHOLE", width, height, params)
        images[image_id] = colmap.Image(
            id=image_id,
            qvec=colmap.rotmat2qvec(w2c[index, :3, :3]),
            tvec=w2c[index, :3, 3].astype(np.float64),
            camera_id=camera_id,
            name=name,
            xys=np.zeros((0, 2)),
            point3D_ids=np.zeros(0, dtype=np.int64),
        )
    points3d = {
        point_id + 1: colmap.Point3D(
            id=point_id + 1,
            xyz=point.astype(np.float64),
            rgb=point_rgb.astype(np.uint8),
            error=0.0,
            image_ids=np.zeros(0, dtype=np.int64),
            point2D_idxs=np.zeros(0, dtype=np.int64),
        )
        for point_id, point in enumerate(points)
    }
    sparse_dir = output_dir / SPARSE_DIR
    sparse_dir.mkdir(parents=True, exist_ok=True)
    for file_name, writer, content in (
        ("cameras.bin", colmap.write_cameras_binary, cameras),
        ("images.bin", colmap.write_images_binary, images),
        ("points3D.bin", colmap.write_points3D_binary, points3d),
    ):
        with atomic_path(sparse_dir / file_name) as tmp_path:
            writer(content, tmp_path)


def write_object_point_cloud(output_dir: Path, points: np.ndarray) -> None:
    """``object_point_cloud.ply``: points ``[P, 3]`` on the object surface, in the COLMAP frame."""
    import trimesh

    with atomic_path(output_dir / "object_point_cloud.ply") as tmp_path:
        trimesh.PointCloud(points).export(tmp_path)


def write_meta_info(output_dir: Path, up: np.ndarray, forward: np.ndarray) -> None:
    """``meta_info.txt``: line 1 the up direction (+z after normalisation), line 2 forward (+x)."""
    lines: List[str] = [" ".join(f"{value:.9f}" for value in vector) for vector in (up, forward)]
    atomic_write_bytes(output_dir / "meta_info.txt", ("\n".join(lines) + "\n").encode())
