"""The object's frame in a photographed capture: its bounding sphere, up, forward and the table it stands on.

NeRO's own photo formats need an object point cloud cropped by hand and ``meta_info.txt``. Here the same facts are
estimated from what structure-from-motion gives (camera poses and sparse points) and written to a small JSON file
(``nero_frame.json``) that a user can read, edit and pass back. Pure numpy (open3d for the plane fit); the ``source``
arguments only name the file an error message should point at.

Estimation, in the dataset (COLMAP) frame:

1. the point all optical axes pass closest to (least squares): where the photographer aimed;
2. the table: the largest plane (RANSAC) among the sparse points near that point, when it is level enough with the
   camera ring and the cameras are above it; its normal, towards the cameras, is up;
3. the object: sparse points above the table that sit near the image centre in most views (props and walls around
   the object do so only in the few views that look past the object at them);
4. the sphere: centred on the aim point (photographers centre the object) kept inside those points' bounding box,
   which reaches down to the table (the object stands on it), and a margin over the farthest point; without object
   points, a sphere around the aim point that fits in every view.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.normalization import camera_ring_up, forward_towards_camera, frame_rotation
from nero_nerfstudio.utils.io import atomic_write_bytes

FRAME_FILE_NAME = "nero_frame.json"
"""The frame file's name in a dataset folder, a run's output folder and ``nero-process-data``'s output."""

_FRAME_FORMAT = "nero-object-frame"
_FRAME_VERSION = 1

# Points nearer to the aim point than this fraction of the median camera distance may belong to the object or the
# table; farther ones are the room.
_NEAR_FRACTION = 0.8
# RANSAC inlier distance of the table plane, as a fraction of the median camera distance.
_PLANE_THRESHOLD_FRACTION = 0.01
# A table is the plane of at least this many points and this fraction of the near points.
_MIN_TABLE_POINTS = 30
_MIN_TABLE_FRACTION = 0.15
# The table's normal is within this angle of the camera ring's normal (handheld rings tilt; walls are ~90 deg off).
_MAX_TABLE_TILT_DEG = 35.0
# A point is "central" in a view when it projects within this fraction of the half image size from the centre.
_CENTRAL_FRACTION = 0.5
# ... and belongs to the object when it is central in at least this fraction of the views that have it in front.
_MIN_CENTRAL_SCORE = 0.6
_MIN_OBJECT_POINTS = 10
# Radius margin over the farthest object point: sparse points miss the extremes of a glossy surface (measured on a
# rendered gold bunny on a table: its farthest vertex 1.07x the farthest of its 89 sparse points from the aim point).
_RADIUS_MARGIN = 1.3
# Without object points: the sphere around the aim point whose outline fits within this fraction of every view.
_FRAMING_FRACTION = 0.6


@dataclass
class ObjectFrame:
    """Where the object is, in the dataset frame, and how each part was found."""

    center: np.ndarray
    """``[3]`` centre of the object's bounding sphere."""
    radius: float
    """Radius of the bounding sphere (becomes the unit sphere)."""
    up: np.ndarray
    """``[3]`` unit up (becomes +z)."""
    forward: np.ndarray
    """``[3]`` unit forward, orthogonal to up (becomes +x)."""
    table_plane: Optional[np.ndarray] = None
    """``[4]`` ``(n, d)`` of the table ``n . x + d = 0``, ``n`` the unit up; ``None`` when no table was found."""
    how: Dict[str, str] = field(default_factory=dict)
    """How each of ``center``, ``radius``, ``up``, ``forward``, ``table_plane`` was found (human-readable)."""

    def rotation(self) -> np.ndarray:
        """``[3, 3]`` rotation into the normalised frame (rows: forward, up x forward, up)."""
        return frame_rotation(self.up, self.forward)

    def to_json(self) -> dict:
        """The frame as plain JSON values (what :meth:`write` saves)."""
        return {
            "format": _FRAME_FORMAT,
            "version": _FRAME_VERSION,
            "frame": "dataset (the COLMAP / transforms.json world the poses are given in)",
            "center": np.round(self.center, 9).tolist(),
            "radius": round(float(self.radius), 9),
            "up": np.round(self.up, 9).tolist(),
            "forward": np.round(self.forward, 9).tolist(),
            "table_plane": None if self.table_plane is None else np.round(self.table_plane, 9).tolist(),
            "how": dict(self.how),
        }

    def write(self, path: Union[str, Path]) -> None:
        """Save as indented JSON, atomically."""
        atomic_write_bytes(Path(path), (json.dumps(self.to_json(), indent=2) + "\n").encode())

    @classmethod
    def read(cls, path: Union[str, Path]) -> "ObjectFrame":
        """Load a frame file, raising :class:`NeroDataError` naming it on any problem."""
        path = Path(path)
        if not path.is_file():
            raise NeroDataError(path, "frame file not found")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise NeroDataError(path, f"not a readable JSON file ({error})") from error
        if not isinstance(data, dict) or data.get("format", _FRAME_FORMAT) != _FRAME_FORMAT:
            raise NeroDataError(
                path, "not an object frame file (nero_frame.json: a JSON object with center, radius, up, forward)"
            )

        def vector(name: str, required: bool = True, size: int = 3) -> Optional[np.ndarray]:
            value = data.get(name)
            if value is None and not required:
                return None
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                array = np.empty(0)
            if array.shape != (size,) or not np.all(np.isfinite(array)):
                raise NeroDataError(path, f"'{name}' must be a list of {size} finite numbers, got {value!r}")
            return array

        center, up, forward = vector("center"), vector("up"), vector("forward")
        table_plane = vector("table_plane", required=False, size=4)
        radius = data.get("radius")
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius <= 0:
            raise NeroDataError(path, f"'radius' must be a positive number, got {radius!r}")
        how = data.get("how") if isinstance(data.get("how"), dict) else {}
        assert center is not None and up is not None and forward is not None
        rotation = frame_rotation(up, forward, path)  # validates up and forward
        if table_plane is not None:
            normal_norm = float(np.linalg.norm(table_plane[:3]))
            if normal_norm < 1e-12:
                raise NeroDataError(path, "'table_plane' has a zero normal")
            table_plane = table_plane / normal_norm
        return cls(
            center=center,
            radius=float(radius),
            up=rotation[2],
            forward=rotation[0],
            table_plane=table_plane,
            how={str(key): str(value) for key, value in how.items()},
        )


def point_cloud_sphere(points: np.ndarray, source: Union[str, Path]) -> Tuple[np.ndarray, float]:
    """NeRO's sphere of an object point cloud ``[P, 3]``: bounding-box centre (not the mean: a dense patch of points
    must not pull it) and the farthest point's distance (method.md §2.2)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 4:
        raise NeroDataError(source, f"needs at least 4 points with x, y, z, got array of shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise NeroDataError(source, "contains NaN or infinite coordinates")
    center = (points.max(axis=0) + points.min(axis=0)) / 2.0
    radius = float(np.linalg.norm(points - center, axis=1).max())
    if radius < 1e-9:
        raise NeroDataError(source, "all points coincide (zero extent)")
    return center, radius


def convergence_point(
    centers: np.ndarray, optical_axes: np.ndarray, source: Union[str, Path] = "cameras"
) -> np.ndarray:
    """The point nearest to all optical axes (least squares), where a capture around an object aims.

    Args:
        centers: ``[N, 3]`` camera centres.
        optical_axes: ``[N, 3]`` unit viewing directions.
        source: file named in errors.

    Raises:
        NeroDataError: the axes are (nearly) parallel, or the point is behind most cameras: the cameras do not circle
            one object.
    """
    axes = optical_axes / np.linalg.norm(optical_axes, axis=-1, keepdims=True)
    # Sum of the projections orthogonal to each axis; singular when every axis is parallel.
    projections = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    matrix = projections.sum(axis=0)
    eigenvalues = np.linalg.eigvalsh(matrix)
    if eigenvalues[0] < 0.02 * len(centers):
        raise NeroDataError(
            source,
            "the cameras do not converge on one object (their viewing directions are nearly parallel); photograph "
            "the object from all around it",
        )
    point = np.linalg.solve(matrix, np.einsum("nij,nj->i", projections, centers))
    depths = np.einsum("ni,ni->n", point[None] - centers, axes)
    if np.mean(depths > 0) < 0.9:
        raise NeroDataError(
            source,
            f"the cameras do not converge on one object ({int(np.sum(depths <= 0))} of {len(centers)} look away "
            "from the point their viewing directions meet at); photograph the object from all around it",
        )
    return point


def _fit_table(
    points: np.ndarray, centers: np.ndarray, ring_up: np.ndarray, aim: np.ndarray, scale: float
) -> Optional[Tuple[np.ndarray, int]]:
    """``((n, d), number of inliers)`` of the table among ``points`` ``[P, 3]``, or ``None``.

    Tries the three largest planes (a wall or a prop's face may be larger than the visible table top) and keeps the
    first that is level with the camera ring and has the cameras and the aim point above it.
    """
    import open3d as o3d  # pylint: disable=import-outside-toplevel

    threshold = _PLANE_THRESHOLD_FRACTION * scale
    remaining = points
    o3d.utility.random.seed(0)
    for _ in range(3):
        if len(remaining) < max(_MIN_TABLE_POINTS, 3):
            return None
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(remaining))
        plane, inliers = cloud.segment_plane(distance_threshold=threshold, ransac_n=3, num_iterations=1000)
        inliers = np.asarray(inliers, dtype=np.int64)
        if len(inliers) < max(_MIN_TABLE_POINTS, _MIN_TABLE_FRACTION * len(points)):
            return None
        plane = np.asarray(plane, dtype=np.float64)
        plane /= np.linalg.norm(plane[:3])
        if plane[:3] @ ring_up < 0:
            plane = -plane
        tilt = math.degrees(math.acos(min(1.0, abs(float(plane[:3] @ ring_up)))))
        camera_heights = centers @ plane[:3] + plane[3]
        level = tilt <= _MAX_TABLE_TILT_DEG
        below_cameras = np.mean(camera_heights > threshold) >= 0.9 and float(aim @ plane[:3] + plane[3]) > -threshold
        if level and below_cameras:
            return plane, len(inliers)
        remaining = np.delete(remaining, inliers, axis=0)
    return None


def central_view_score(
    points: np.ndarray, w2c: np.ndarray, intrinsics: np.ndarray, sizes: Sequence[Tuple[int, int]]
) -> np.ndarray:
    """``[P]`` fraction of the views (with the point in front) where the point projects near the image centre.

    Args:
        points: ``[P, 3]`` world points.
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses.
        intrinsics: ``[N, 3, 3]``.
        sizes: ``(width, height)`` per view.
    """
    camera_points = np.einsum("nij,pj->npi", w2c[:, :, :3], points) + w2c[:, None, :, 3]
    depth = camera_points[..., 2]
    in_front = depth > 1e-9
    safe_depth = np.where(in_front, depth, 1.0)
    pixel_x = intrinsics[:, None, 0, 0] * camera_points[..., 0] / safe_depth + intrinsics[:, None, 0, 2]
    pixel_y = intrinsics[:, None, 1, 1] * camera_points[..., 1] / safe_depth + intrinsics[:, None, 1, 2]
    half_size = 0.5 * np.asarray(sizes, dtype=np.float64)
    central = (np.abs(pixel_x - half_size[:, None, 0]) <= _CENTRAL_FRACTION * half_size[:, None, 0]) & (
        np.abs(pixel_y - half_size[:, None, 1]) <= _CENTRAL_FRACTION * half_size[:, None, 1]
    )
    return (central & in_front).sum(axis=0) / np.maximum(in_front.sum(axis=0), 1)


def _framing_radius(aim: np.ndarray, w2c: np.ndarray, intrinsics: np.ndarray, sizes: Sequence[Tuple[int, int]]) -> float:
    """The largest sphere around ``aim`` whose outline stays within :data:`_FRAMING_FRACTION` of every view."""
    distances = np.linalg.norm(camera_centers(w2c) - aim, axis=-1)
    half_fov = np.array(
        [
            min(math.atan(0.5 * width / k[0, 0]), math.atan(0.5 * height / k[1, 1]))
            for k, (width, height) in zip(intrinsics, sizes)
        ]
    )
    return float(np.min(distances * np.sin(_FRAMING_FRACTION * half_fov)))


def estimate_object_frame(
    w2c: np.ndarray,
    intrinsics: np.ndarray,
    sizes: Sequence[Tuple[int, int]],
    points: Optional[np.ndarray] = None,
    source: Union[str, Path] = "cameras",
) -> ObjectFrame:
    """Estimate the object's sphere, up, forward and table from a capture around it.

    Args:
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses (dataset frame).
        intrinsics: ``[N, 3, 3]`` pinhole matrices.
        sizes: ``(width, height)`` per view.
        points: ``[P, 3]`` sparse structure-from-motion points, or ``None`` (cameras only).
        source: file named in errors (the camera poses' file).

    Raises:
        NeroDataError: fewer than 3 cameras, or cameras that do not converge on one object.
    """
    w2c = np.asarray(w2c, dtype=np.float64)
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    if len(w2c) < 3:
        raise NeroDataError(source, f"need at least 3 cameras to find the object, got {len(w2c)}")
    centers = camera_centers(w2c)
    optical_axes = w2c[:, 2, :3]
    aim = convergence_point(centers, optical_axes, source)
    camera_distance = float(np.median(np.linalg.norm(centers - aim, axis=-1)))
    ring_up = camera_ring_up(centers, optical_axes, aim, source)
    how: Dict[str, str] = {}

    near: np.ndarray = np.empty((0, 3))
    if points is not None and len(points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        points = points[np.all(np.isfinite(points), axis=1)]
        near = points[np.linalg.norm(points - aim, axis=-1) < _NEAR_FRACTION * camera_distance]

    table = _fit_table(near, centers, ring_up, aim, camera_distance) if len(near) else None
    table_plane: Optional[np.ndarray] = None
    if table is not None:
        table_plane, num_inliers = table
        up = table_plane[:3]
        how["up"] = how["table_plane"] = (
            f"table plane: RANSAC over {len(near)} sparse points near the cameras' aim point, {num_inliers} inliers; "
            "up is its normal towards the cameras"
        )
    else:
        up = ring_up
        how["up"] = "normal of the camera ring, towards the cameras (no table plane found among the sparse points)"
        how["table_plane"] = "none found"

    candidates = near
    if table_plane is not None and len(near):
        heights = near @ table_plane[:3] + table_plane[3]
        candidates = near[heights > 2.0 * _PLANE_THRESHOLD_FRACTION * camera_distance]
    object_points = np.empty((0, 3))
    if len(candidates):
        object_points = candidates[central_view_score(candidates, w2c, intrinsics, sizes) >= _MIN_CENTRAL_SCORE]
        if len(object_points):
            # Stray points (mismatches, reflections triangulated off the surface) far from the object's core.
            spread = np.linalg.norm(object_points - np.median(object_points, axis=0), axis=-1)
            object_points = object_points[spread <= 3.0 * max(float(np.median(spread)), 1e-12)]

    if len(object_points) >= _MIN_OBJECT_POINTS:
        # The points' box in an up-aligned frame.
        rotation = frame_rotation(up, forward_towards_camera(centers[0], aim, up, source), source)
        local = object_points @ rotation.T
        low, high = local.min(axis=0), local.max(axis=0)
        if table_plane is not None:
            # The object stands on the table: its box reaches down to it, however few points its base has.
            low[2] = -table_plane[3]  # up is the plane's unit normal
        # Photographers centre the object: the aim point, kept inside the box (a sparse side must not pull it).
        local_center = np.clip(rotation @ aim, low, high)
        center = rotation.T @ local_center
        foot = rotation.T @ np.array([local_center[0], local_center[1], low[2]])
        extent = np.concatenate([object_points, foot[None]])
        radius = _RADIUS_MARGIN * float(np.linalg.norm(extent - center, axis=-1).max())
        how["center"] = how["radius"] = (
            f"{len(object_points)} sparse points above the table near the centre of most views"
            + (", extended down to the table" if table_plane is not None else "")
            + f"; centred on the cameras' aim point within their bounding box, {_RADIUS_MARGIN:g}x their farthest"
        )
    else:
        center = aim
        radius = _framing_radius(aim, w2c, intrinsics, sizes)
        how["center"] = "the point the cameras' viewing directions meet at (too few sparse points on the object)"
        how["radius"] = f"the sphere around it that fills {_FRAMING_FRACTION:.0%} of the narrowest view (a guess)"
    forward = forward_towards_camera(centers[0], center, up, source)
    how["forward"] = "towards the first camera, level with the table" if table_plane is not None else (
        "towards the first camera, orthogonal to up"
    )
    return ObjectFrame(center=center, radius=radius, up=up, forward=forward, table_plane=table_plane, how=how)


def describe(frame: ObjectFrame) -> List[str]:
    """Lines for the console: each estimated value and how it was found."""
    center_how, radius_how = frame.how.get("center", "given"), frame.how.get("radius", "given")
    lines = [
        f"centre {np.round(frame.center, 4).tolist()}: {center_how}",
        f"radius {frame.radius:.4g}: {radius_how}" if radius_how != center_how else f"radius {frame.radius:.4g}",
        f"up {np.round(frame.up, 4).tolist()}: {frame.how.get('up', 'given')}",
        f"forward {np.round(frame.forward, 4).tolist()}: {frame.how.get('forward', 'given')}",
    ]
    if frame.table_plane is not None:
        lines.append(f"table plane {np.round(frame.table_plane, 4).tolist()}")
    return lines
