"""Structure-from-motion of a folder of photos with pycolmap (CPU) or the ``colmap`` executable, into NeRO's custom
layout.

``OUT/images`` (undistorted), ``OUT/colmap/sparse/0`` (PINHOLE cameras, poses, sparse points), ``OUT/colmap/database.db``
and ``OUT/nero_frame.json`` (the object's estimated sphere, up, forward and table). The same layout as
``ns-process-data images`` writes, minus its ``transforms.json``; ``ns-train nero-shape nero-custom --data OUT`` reads it.

pycolmap is imported where it is used: the package index's wheel has no CUDA and needs none. The executable, when a
user has one (a CUDA build finds and matches features on the GPU), runs the same steps
(:mod:`nero_nerfstudio.process_data.colmap_executable`); its models are read back with pycolmap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Literal, Optional

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.dataparsers.nero_parser_common import read_image_sizes
from nero_nerfstudio.process_data import colmap_executable
from nero_nerfstudio.process_data.colmap_executable import EXECUTABLE, ColmapBuild, find_colmap, inspect_colmap

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
MIN_IMAGES = 8
"""Fewer photos cannot go round an object with the overlap SfM needs."""
MIN_REGISTERED_FRACTION = 0.5
"""Below this fraction of registered photos the reconstruction is not the capture (and NeRO would train on a part)."""

Matcher = Literal["exhaustive", "sequential"]
SfmTool = Literal["auto", "pycolmap", "colmap"]
UsedTool = Literal["pycolmap", "colmap"]


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
    tool: UsedTool
    """Which of the two ran."""


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


def choose_sfm_tool(tool: SfmTool) -> Optional[ColmapBuild]:
    """The ``colmap`` executable to run (``None``: pycolmap). ``auto`` takes the executable when one is on ``PATH``.

    Raises:
        NeroDataError: ``colmap`` asked for and not on ``PATH``.
    """
    executable = find_colmap()
    if tool == "pycolmap" or (tool == "auto" and executable is None):
        return None
    if executable is None:
        raise NeroDataError(
            Path(EXECUTABLE), "--sfm-tool colmap: no colmap executable on PATH; install COLMAP or use pycolmap"
        )
    return inspect_colmap(executable)


def run_sfm(
    photos: List[Path],
    output_dir: Path,
    matcher: Matcher = "exhaustive",
    max_image_size: int = 1600,
    num_threads: int = -1,
    tool: SfmTool = "pycolmap",
    stage: Optional[Callable[[str], None]] = None,
) -> SfmResult:
    """Features, matches, incremental mapping and undistortion of ``photos`` (one shared camera) into ``output_dir``.

    Args:
        photos: from :func:`list_photos`; they are read, never written.
        output_dir: absent or empty; receives ``images/``, ``colmap/sparse/0`` and ``colmap/database.db`` (and, from
            the executable, ``colmap/colmap.log``).
        matcher: ``exhaustive`` (every pair; up to a few hundred photos) or ``sequential`` (video frames in order).
        max_image_size: long side the features are found at (the poses are for the full-size photos).
        num_threads: CPU threads (-1: all).
        tool: pycolmap (the package index's wheel, CPU), the ``colmap`` executable, or ``auto``
            (:func:`choose_sfm_tool`).
        stage: called with a short description as each stage starts (progress display).

    Raises:
        NeroDataError: nothing registered, or fewer than :data:`MIN_REGISTERED_FRACTION` of the photos; a failing
            ``colmap`` tool (naming its log, which is kept outside ``output_dir``).
    """
    import pycolmap  # pylint: disable=import-outside-toplevel

    # COLMAP logs every image of every stage; the progress display says what runs, errors still show.
    pycolmap.logging.minloglevel = 2
    build = choose_sfm_tool(tool)
    chosen: UsedTool = "pycolmap" if build is None else "colmap"

    def announce(text: str) -> None:
        if stage is not None:
            stage(f"{text} ({chosen})")

    colmap_dir = output_dir / "colmap"
    colmap_dir.mkdir(parents=True, exist_ok=True)
    database = colmap_dir / "database.db"
    # The executable's log lives outside output_dir, which a failed run removes: a data error names it and keeps it.
    log_path: Optional[Path] = None
    if build is not None:
        handle, log_name = tempfile.mkstemp(prefix="nero-colmap-", suffix=".log")
        os.close(handle)
        log_path = Path(log_name)
    try:
        with tempfile.TemporaryDirectory(prefix="nero-sfm-", dir=colmap_dir) as work_name:
            result = _reconstruct_and_undistort(
                photos, output_dir, Path(work_name), database, matcher, max_image_size, num_threads, build, log_path,
                announce,
            )  # fmt: skip
    except NeroDataError:
        raise
    except BaseException:
        if log_path is not None:
            log_path.unlink(missing_ok=True)
        raise
    if log_path is not None:
        shutil.move(str(log_path), str(colmap_dir / "colmap.log"))
    return result


def _reconstruct_and_undistort(
    photos: List[Path], output_dir: Path, work: Path, database: Path, matcher: Matcher, max_image_size: int,
    num_threads: int, build: Optional[ColmapBuild], log_path: Optional[Path], announce: Callable[[str], None],
) -> SfmResult:  # fmt: skip
    """:func:`run_sfm`'s work inside its temporary folder ``work``."""
    import pycolmap  # pylint: disable=import-outside-toplevel

    images_dir = photos[0].parent
    names = [path.name for path in photos]
    if build is not None and log_path is not None:
        folders = colmap_executable.reconstruct(
            build, database, images_dir, names, work / "sparse", matcher, max_image_size, num_threads, log_path,
            announce,
        )  # fmt: skip
        models = [(pycolmap.Reconstruction(str(folder)), folder) for folder in folders]
    else:
        reconstructions = _pycolmap_reconstructions(database, images_dir, names, work, matcher, max_image_size,
                                                    num_threads, announce)  # fmt: skip
        models = [(reconstruction, None) for reconstruction in reconstructions]
    log_note = f" (colmap's output: {log_path})" if log_path is not None else ""
    if not models:
        raise NeroDataError(
            images_dir,
            f"SfM registered 0 of {len(photos)} photos{log_note}: no two photos share enough matched features; "
            "photograph with more overlap (an object on a textured table, each photo a few degrees from the last)",
        )
    reconstruction, model_folder = max(models, key=lambda model: model[0].num_reg_images())
    num_registered = reconstruction.num_reg_images()
    if num_registered < MIN_REGISTERED_FRACTION * len(photos):
        raise NeroDataError(
            images_dir,
            f"SfM registered {num_registered} of {len(photos)} photos (in {len(models)} model(s)){log_note}; "
            "photograph with more overlap and texture around the object (a textured table, no blur, fixed "
            "exposure), or remove photos of other things",
        )
    announce(f"Undistorting the {num_registered} registered photos")
    undistorted = work / "undistorted"
    if build is not None and log_path is not None and model_folder is not None:
        # The mapper's own folder: no round trip through another COLMAP version's writer.
        colmap_executable.undistort(build, model_folder, images_dir, names, undistorted, log_path)
    else:
        distorted = work / "distorted"
        distorted.mkdir()
        reconstruction.write_binary(str(distorted))
        pycolmap.undistort_images(undistorted, distorted, images_dir, image_names=names, num_threads=num_threads)
    sparse_folder = output_dir / "colmap" / "sparse" / "0"
    sparse_folder.parent.mkdir(parents=True)
    shutil.move(str(undistorted / "sparse"), str(sparse_folder))
    images_out = output_dir / "images"
    shutil.move(str(undistorted / "images"), str(images_out))
    return SfmResult(sparse_folder, images_out, len(photos), num_registered, reconstruction.num_points3D(),
                     "pycolmap" if build is None else "colmap")  # fmt: skip


def _pycolmap_reconstructions(
    database: Path, images_dir: Path, names: List[str], work: Path, matcher: Matcher, max_image_size: int,
    num_threads: int, announce: Callable[[str], None],
) -> list:  # fmt: skip
    """Features, matches and incremental mapping with pycolmap; the ``pycolmap.Reconstruction`` models found."""
    import pycolmap  # pylint: disable=import-outside-toplevel

    announce(f"Finding features in {len(names)} photos")

    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_image_size
    extraction.num_threads = num_threads
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
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
    (work / "sparse").mkdir()
    return list(pycolmap.incremental_mapping(database, images_dir, work / "sparse", options=mapping).values())
