"""What the photo formats (nero-real, nero-custom, nero-nerfstudio) share: the options that place the object, the
order in which flags, files and the automatic estimate decide its sphere, up and forward, and the outputs built from
the cameras and that frame.

Imported by dataparser entry-point modules, so only light imports here (see architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.data.dataparsers.nero_parser_common import (
    nero_cameras,
    nero_metadata,
    read_image_sizes,
    split_indices,
)
from nero_nerfstudio.data.image_resize import cached_downscaled_images, raw_target_size, scale_intrinsics
from nero_nerfstudio.data.normalization import (
    apply_to_w2c,
    check_cameras_outside_unit_sphere,
    forward_towards_camera,
    frame_rotation,
)
from nero_nerfstudio.data.object_frame import (
    FRAME_FILE_NAME,
    ObjectFrame,
    describe,
    estimate_object_frame,
    point_cloud_sphere,
)

Vector3 = Tuple[float, float, float]


@dataclass
class NeroPhotoDataParserConfig(DataParserConfig):
    """Options of every photographed-object format."""

    data: Path = Path()
    """Folder of one object."""
    up: Optional[Vector3] = None
    """Up direction in the dataset frame (becomes +z); wins over every file and the estimate."""
    forward: Optional[Vector3] = None
    """Forward direction in the dataset frame (its part orthogonal to up becomes +x)."""
    object_center: Optional[Vector3] = None
    """Centre of the object's bounding sphere in the dataset frame; wins over every file and the estimate."""
    object_radius: Optional[float] = None
    """Radius of the object's bounding sphere in the dataset frame (with --object-center)."""
    frame_file: Optional[Path] = None
    """A nero_frame.json (written by a run or nero-process-data, maybe edited): centre, radius, up, forward, table.
    Without it, the dataset folder's nero_frame.json is used for what no other file gives."""
    max_resolution: Optional[int] = 1024
    """NeRO's raw_<N>: blur and downscale so the long image side is at most N (cached in images_raw_<N>/). None keeps
    the originals."""
    split_mode: Literal["validation", "all"] = "validation"
    """validation: NeRO's setup (one held-out image, seed 6033); all: also train on that image."""
    fixed_camera: bool = False
    """Keep the camera height for the photographer frame (NeRO drops the photographer to the object's height)."""


@dataclass
class FrameSources:
    """What a format's own files say about the object, read only when no higher source decides (a broken file must
    not block the flag meant to replace it); each ``None`` when the format or folder lacks it."""

    object_points: Optional[Callable[[], Tuple[np.ndarray, Path]]] = None
    """Reads ``[P, 3]`` object-only points (NeRO's ``object_point_cloud.ply``) and names their file."""
    up_forward: Optional[Callable[[], Tuple[np.ndarray, np.ndarray, Path]]] = None
    """Reads up, forward and names the file (or folder) they came from (``meta_info.txt``, NeRO's GlossyReal table)."""


def check_image_sizes(image_paths: Sequence[Path], stated_sizes: Sequence[Tuple[int, int]], cameras_file: Path) -> None:
    """Raises, naming the image, when an image's size is not the one ``cameras_file`` states for it."""
    for path, size, stated in zip(image_paths, read_image_sizes(image_paths), stated_sizes):
        if tuple(size) != tuple(stated):
            raise NeroDataError(path, f"image size {tuple(size)} differs from the size {tuple(stated)} in {cameras_file}")


def _given_sphere(config: NeroPhotoDataParserConfig) -> Optional[Tuple[np.ndarray, float]]:
    if (config.object_center is None) != (config.object_radius is None):
        raise NeroDataError(config.data, "give both --object-center and --object-radius, or neither")
    if config.object_center is None or config.object_radius is None:
        return None
    center = np.asarray(config.object_center, dtype=np.float64)
    if not np.all(np.isfinite(center)) or not config.object_radius > 0:
        raise NeroDataError(config.data, "--object-center must be finite and --object-radius positive")
    return center, float(config.object_radius)


def resolve_object_frame(
    config: NeroPhotoDataParserConfig,
    sources: FrameSources,
    w2c: np.ndarray,
    intrinsics: np.ndarray,
    sizes: Sequence[Tuple[int, int]],
    sparse_points: Callable[[], Optional[np.ndarray]],
    cameras_source: Path,
) -> ObjectFrame:
    """The object's frame: for the sphere and for up/forward, the first of flags, ``--frame-file``, the format's own
    files, the dataset's ``nero_frame.json``, the estimate (:func:`estimate_object_frame`).

    Raises:
        NeroDataError: naming the file at fault: a bad flag or file, an estimate that fails, or a sphere that holds
            a camera.

    Args:
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses (dataset frame), for the estimate.
        intrinsics: ``[N, 3, 3]``; ``sizes``: ``(width, height)`` per view.
        sparse_points: returns the structure-from-motion points ``[P, 3]`` (or ``None``); called only when estimating.
        cameras_source: the poses' file, named in errors of the estimate.
    """
    data = config.data
    if (config.up is None) != (config.forward is None):
        raise NeroDataError(data, "give both --up and --forward, or neither")
    frame_file_path = config.frame_file
    frame_file = ObjectFrame.read(frame_file_path) if frame_file_path is not None else None
    dataset_frame_path = data / FRAME_FILE_NAME
    dataset_frame: Optional[ObjectFrame] = None

    def read_dataset_frame() -> Optional[ObjectFrame]:
        nonlocal dataset_frame
        if dataset_frame is None and dataset_frame_path.is_file():
            dataset_frame = ObjectFrame.read(dataset_frame_path)
        return dataset_frame

    # The sphere, how it was found, and the file (or folder) an error about it names.
    sphere: Optional[Tuple[np.ndarray, float, str]] = None
    sphere_file: Path = cameras_source
    given = _given_sphere(config)
    if given is not None:
        sphere, sphere_file = (*given, "--object-center / --object-radius"), data
    elif frame_file is not None and frame_file_path is not None:
        sphere, sphere_file = (frame_file.center, frame_file.radius, f"{frame_file_path}"), frame_file_path
    elif sources.object_points is not None:
        points, sphere_file = sources.object_points()
        sphere = (*point_cloud_sphere(points, sphere_file), f"bounding box of {sphere_file}")
    elif read_dataset_frame() is not None:
        assert dataset_frame is not None
        sphere, sphere_file = (dataset_frame.center, dataset_frame.radius, f"{dataset_frame_path}"), dataset_frame_path

    orientation: Optional[Tuple[np.ndarray, np.ndarray, str]] = None
    if config.up is not None and config.forward is not None:
        orientation = (np.asarray(config.up, dtype=np.float64), np.asarray(config.forward, dtype=np.float64), "--up / --forward")
    elif frame_file is not None:
        orientation = (frame_file.up, frame_file.forward, f"{frame_file_path}")
    elif sources.up_forward is not None:
        up, forward, origin = sources.up_forward()
        orientation = (up, forward, f"{origin}")
    elif read_dataset_frame() is not None:
        assert dataset_frame is not None
        orientation = (dataset_frame.up, dataset_frame.forward, f"{dataset_frame_path}")

    # The table comes with a frame file, or with the estimate.
    known = frame_file if frame_file is not None else read_dataset_frame()
    table_plane = known.table_plane if known is not None else None
    how: Dict[str, str] = dict(known.how) if known is not None else {}
    estimated = sphere is None or orientation is None
    if estimated:
        estimate = estimate_object_frame(w2c, intrinsics, sizes, sparse_points(), source=cameras_source)
        if orientation is None:
            up = estimate.up
            center = estimate.center if sphere is None else sphere[0]
            # Forward points at the first camera from the object's centre, wherever that came from.
            forward = forward_towards_camera(camera_centers(w2c[:1])[0], center, up, cameras_source)
            orientation = (up, forward, "")
            how.update(up=estimate.how["up"], forward=estimate.how["forward"])
        if sphere is None:
            sphere = (estimate.center, estimate.radius, "")
            how.update(center=estimate.how["center"], radius=estimate.how["radius"])
        table_plane = estimate.table_plane
        how["table_plane"] = estimate.how["table_plane"]
    center, radius, sphere_origin = sphere
    up, forward, orientation_origin = orientation
    if sphere_origin:
        how["center"] = how["radius"] = sphere_origin
    if orientation_origin:
        how["up"] = how["forward"] = orientation_origin
    rotation = frame_rotation(up, forward, orientation_origin or cameras_source)
    frame = ObjectFrame(center, radius, rotation[2], rotation[0], table_plane, how)
    check_cameras_outside_unit_sphere(
        apply_to_w2c(w2c, rotation, center, 1.0 / radius), source=sphere_file, sphere_origin=how["center"]
    )
    CONSOLE.print("Object frame (dataset coordinates):\n  " + "\n  ".join(describe(frame)), soft_wrap=True)
    if estimated:
        CONSOLE.print(
            f"[bold yellow]Parts of the object frame were estimated: check them in the run folder's {FRAME_FILE_NAME} "
            "(the viewer shows the unit sphere); edit that file and pass it back with --frame-file to correct them.",
            soft_wrap=True,
        )
    return frame


def photo_dataparser_outputs(
    config: NeroPhotoDataParserConfig,
    split: str,
    image_ids: List[str],
    images_dir: Path,
    image_names: List[str],
    w2c: np.ndarray,
    intrinsics: np.ndarray,
    sizes: Sequence[Tuple[int, int]],
    frame: ObjectFrame,
    dataset_format: Literal["real", "custom"],
    dataset_dir: Path,
) -> DataparserOutputs:
    """The split's cameras in the normalised frame, its images at NeRO's resolution, and the metadata.

    Args:
        image_ids: NeRO id of every image (the validation split draws from them).
        images_dir: folder the ``image_names`` are relative to.
        w2c: ``[N, 3, 4]`` OpenCV world-to-camera poses in the dataset frame.
        intrinsics: ``[N, 3, 3]``; ``sizes``: ``(width, height)`` of each image.
        frame: the object's frame (:func:`resolve_object_frame`).
        dataset_dir: the dataset folder; image caches stay inside it.
    """
    rotation, center, scale = frame.rotation(), frame.center, 1.0 / frame.radius
    normalised_w2c = apply_to_w2c(w2c, rotation, center, scale)
    indices = split_indices(image_ids, split, config.split_mode)
    names = [image_names[i] for i in indices]
    split_sizes = [tuple(sizes[i]) for i in indices]
    split_intrinsics = np.asarray(intrinsics)[indices]
    if config.max_resolution is None:
        image_paths = [images_dir / name for name in names]
    else:
        target_sizes = [raw_target_size(w, h, config.max_resolution) for w, h in split_sizes]
        split_intrinsics = np.stack(
            [scale_intrinsics(k, s, t) for k, s, t in zip(split_intrinsics, split_sizes, target_sizes)]
        )
        # Photos straight in the dataset folder get their cache inside it, not beside it.
        cache_dir = dataset_dir / f"images_raw_{config.max_resolution}" if images_dir == dataset_dir else None
        image_paths = cached_downscaled_images(images_dir, names, target_sizes, config.max_resolution, cache_dir)
        split_sizes = target_sizes

    transform = np.concatenate([rotation, -(rotation @ center)[:, None]], axis=1)
    metadata = nero_metadata(
        [image_ids[i] for i in indices], normalised_w2c[indices], dataset_format, fixed_camera=config.fixed_camera
    )
    metadata[NeroKey.OBJECT_FRAME] = frame
    return DataparserOutputs(
        image_filenames=image_paths,
        cameras=nero_cameras(normalised_w2c[indices], split_intrinsics, split_sizes),
        scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
        metadata=metadata,
        dataparser_transform=torch.as_tensor(transform, dtype=torch.float32),
        dataparser_scale=float(scale),
    )
