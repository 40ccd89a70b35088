"""Structure-from-motion of a folder of photos with pycolmap (CPU), into NeRO's custom layout.

``OUT/images`` (undistorted), ``OUT/colmap/sparse/0`` (PINHOLE cameras, poses, sparse points), ``OUT/colmap/database.db``
and ``OUT/nero_frame.json`` (the object's estimated sphere, up, forward and table). The same layout as
``ns-process-data images`` writes, minus its ``transforms.json``; ``ns-train nero-shape nero-custom --data OUT`` reads it.

Only :func:`run_sfm` touches pycolmap, imported there: the package index's wheel has no CUDA and needs none.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Literal, Optional

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.dataparsers.nero_parser_common import read_image_sizes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
MIN_IMAGES = 8
"""Fewer photos cannot go round an object with the overlap SfM needs."""
MIN_REGISTERED_FRACTION = 0.5
"""Below this fraction of registered photos the reconstruction is not the capture (and NeRO would train on a part)."""

Matcher = Literal["exhaustive", "sequential"]


@dataclass
class SfmResult:
    """What :func:`run_sfm` made."""

    model_folder: Path
    """The undistorted model (``cameras.bin``, ``images.bin``, ``points3D.bin``)."""
    images_dir: Path
    """The undistorted images."""
    num_images: int
    num_registered: int
    num_points: int


def list_photos(images_dir: Path) -> List[Path]:
    """The photos of a folder (sorted), checked: at least :data:`MIN_IMAGES`, all readable and of one size.

    Raises:
        NeroDataError: naming the folder or the first photo at fault.
    """
    if not images_dir.is_dir():
        raise NeroDataError(images_dir, "photo folder not found")
    photos = sorted(path for path in images_dir.iterdir() if path.is_file() and path.suffix in IMAGE_SUFFIXES)
    if len(photos) < MIN_IMAGES:
        raise NeroDataError(
            images_dir,
            f"found {len(photos)} photo(s) (.jpg/.png); structure-from-motion needs at least {MIN_IMAGES}, and a good "
            "capture has 40-100 photos all around the object",
        )
    sizes = read_image_sizes(photos)
    for path, size in zip(photos, sizes):
        if size != sizes[0]:
            raise NeroDataError(
                path,
                f"image size {size[0]}x{size[1]} differs from {photos[0].name}'s {sizes[0][0]}x{sizes[0][1]}; the "
                "photos must come from one camera at one size (one shared intrinsics)",
            )
    return photos


def run_sfm(
    photos: List[Path],
    output_dir: Path,
    matcher: Matcher = "exhaustive",
    max_image_size: int = 1600,
    num_threads: int = -1,
    stage: Optional[Callable[[str], None]] = None,
) -> SfmResult:
    """Features, matches, incremental mapping and undistortion of ``photos`` (one shared camera) into ``output_dir``.

    Args:
        photos: from :func:`list_photos`; they are read, never written.
        output_dir: absent or empty; receives ``images/``, ``colmap/sparse/0`` and ``colmap/database.db``.
        matcher: ``exhaustive`` (every pair; up to a few hundred photos) or ``sequential`` (video frames in order).
        max_image_size: long side the features are found at (the poses are for the full-size photos).
        num_threads: CPU threads (-1: all).
        stage: called with a short description as each stage starts (progress display).

    Raises:
        NeroDataError: nothing registered, or fewer than :data:`MIN_REGISTERED_FRACTION` of the photos.
    """
    import pycolmap  # pylint: disable=import-outside-toplevel

    # COLMAP logs every image of every stage; the progress display says what runs, errors still show.
    pycolmap.logging.minloglevel = 2

    def announce(text: str) -> None:
        if stage is not None:
            stage(text)

    images_dir = photos[0].parent
    names = [path.name for path in photos]
    colmap_dir = output_dir / "colmap"
    colmap_dir.mkdir(parents=True, exist_ok=True)
    database = colmap_dir / "database.db"

    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_image_size
    extraction.num_threads = num_threads
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    announce(f"Finding features in {len(photos)} photos")
    pycolmap.extract_features(
        database,
        images_dir,
        image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = num_threads
    announce(f"Matching features ({matcher})")
    if matcher == "sequential":
        pycolmap.match_sequential(database, matching_options=matching, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)

    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = num_threads
    mapping.random_seed = 0
    announce("Reconstructing the cameras (incremental mapping)")
    with tempfile.TemporaryDirectory(prefix="nero-sfm-", dir=colmap_dir) as work_name:
        reconstructions = pycolmap.incremental_mapping(database, images_dir, Path(work_name), options=mapping)
        if not reconstructions:
            raise NeroDataError(
                images_dir,
                f"SfM registered 0 of {len(photos)} photos: no two photos share enough matched features; photograph "
                "with more overlap (an object on a textured table, each photo a few degrees from the last)",
            )
        reconstruction = max(reconstructions.values(), key=lambda model: model.num_reg_images())
        num_registered = reconstruction.num_reg_images()
        if num_registered < MIN_REGISTERED_FRACTION * len(photos):
            raise NeroDataError(
                images_dir,
                f"SfM registered {num_registered} of {len(photos)} photos (in {len(reconstructions)} model(s)); "
                "photograph with more overlap and texture around the object (a textured table, no blur, fixed "
                "exposure), or remove photos of other things",
            )
        distorted = Path(work_name) / "distorted"
        distorted.mkdir()
        reconstruction.write_binary(str(distorted))
        announce(f"Undistorting the {num_registered} registered photos")
        undistorted = Path(work_name) / "undistorted"
        pycolmap.undistort_images(undistorted, distorted, images_dir, image_names=names, num_threads=num_threads)
        model_folder = colmap_dir / "sparse" / "0"
        model_folder.parent.mkdir(parents=True)
        shutil.move(str(undistorted / "sparse"), str(model_folder))
        images_out = output_dir / "images"
        shutil.move(str(undistorted / "images"), str(images_out))
        num_points = reconstruction.num_points3D()
    return SfmResult(model_folder, images_out, len(photos), num_registered, num_points)
