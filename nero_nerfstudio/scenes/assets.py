"""Names the scene generator accepts: HDR environments bundled with the bpy wheel, and meshes.

Found through the installed packages' files, without importing bpy (which loads Blender into the process).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from nero_nerfstudio.core.errors import NeroDataError

PRIMITIVE_MESHES = ("sphere", "torus", "suzanne")
"""Meshes built inside Blender."""
FILE_MESHES = {"bunny": "bunny.obj", "cow": "cow.obj"}
"""Meshes of pymeshlab's installed test data, by name: the Stanford bunny (28k vertices) and a cow (3k vertices) with
thin legs, horns, ears and a tail. Both are watertight, y-up, and long along z (the cow's head is at +z)."""
MESH_FILE_SUFFIXES = (".ply", ".obj")


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NeroDataError(package, f"the Python package '{package}' is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _existing_file(name_or_path: str, suffixes: Tuple[str, ...], kind: str, unknown: str) -> Path:
    """``name_or_path`` as an absolute path, if it ends with one of ``suffixes`` and the file exists.

    Raises:
        NeroDataError: ``"<kind> file does not exist"`` for a missing file, ``unknown`` for any other name.
    """
    path = Path(name_or_path)
    if path.suffix.lower() not in suffixes:
        raise NeroDataError(name_or_path, unknown)
    if not path.is_file():
        raise NeroDataError(path, f"{kind} file does not exist")
    return path.resolve()


def environments_under(blender_root: Path) -> Dict[str, Path]:
    """Environment name -> equirectangular EXR in the newest ``<blender_root>/<version>/datafiles/studiolights/world``
    (CC0 HDRIs shipped with Blender); empty if there is none."""
    world_dirs = sorted(blender_root.glob("*/datafiles/studiolights/world"))
    if not world_dirs:
        return {}
    return {path.stem: path for path in sorted(world_dirs[-1].glob("*.exr"))}


def bundled_environments() -> Dict[str, Path]:
    """Environment name -> equirectangular EXR bundled with the bpy wheel."""
    return environments_under(_package_dir("bpy"))


def resolve_environment(name_or_path: str, environments: Optional[Dict[str, Path]] = None) -> Path:
    """An environment name (e.g. ``courtyard``) of ``environments`` (default: the bundled ones) or a path to an
    equirectangular .exr/.hdr file."""
    environments = bundled_environments() if environments is None else environments
    if name_or_path in environments:
        return environments[name_or_path]
    path = _existing_file(
        name_or_path,
        (".exr", ".hdr"),
        "environment map",
        f"unknown environment; use one of {', '.join(sorted(environments))} or a path to an .exr/.hdr file",
    )
    check_environment_map(path)
    return path


def check_environment_map(path: Path) -> None:
    """Decode an .exr/.hdr file once (OpenCV) and refuse one that does not decode to an RGB image: Blender would
    render a damaged map as plain magenta, without an error.

    Raises:
        NeroDataError: naming the file.
    """
    import os  # pylint: disable=import-outside-toplevel

    # OpenCV's EXR reader is built in but off unless asked for (before the first EXR is read).
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2  # pylint: disable=import-outside-toplevel

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise NeroDataError(
            path, "cannot decode this environment map (OpenCV cannot read it: truncated, or not an OpenEXR/Radiance HDR)"
        )
    if (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise NeroDataError(path, f"environment map of shape {image.shape}; expected an equirectangular image")


def file_mesh_path(name: str) -> Path:
    """The file of one of ``FILE_MESHES`` in pymeshlab's installed test data."""
    path = _package_dir("pymeshlab") / "tests" / "sample_meshes" / FILE_MESHES[name]
    if not path.is_file():
        raise NeroDataError(path, f"pymeshlab's sample mesh '{name}' is missing from the installed package")
    return path


def resolve_mesh(name_or_path: str) -> str | Path:
    """A primitive name (returned as is), a name of ``FILE_MESHES`` or a .ply/.obj path (returned as a checked
    path)."""
    if name_or_path in PRIMITIVE_MESHES:
        return name_or_path
    if name_or_path in FILE_MESHES:
        return file_mesh_path(name_or_path)
    return _existing_file(
        name_or_path,
        MESH_FILE_SUFFIXES,
        "mesh",
        f"unknown mesh; use one of {', '.join((*FILE_MESHES, *PRIMITIVE_MESHES))} or a path to a .ply/.obj file",
    )


def load_mesh_file(path: Path, up_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[N, 3]`` (turned to Blender's z-up) and triangles ``[F, 3]`` of a .ply/.obj file.

    Args:
        up_axis: ``"y"`` for y-up files (the OBJ convention; the bunny and the cow), ``"z"`` for z-up files.
    """
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as error:  # trimesh raises many types for unreadable files
        raise NeroDataError(path, f"cannot read mesh ({error})") from error
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise NeroDataError(path, "file holds no triangles")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if up_axis == "y":
        # y-up (x, y, z) -> Blender z-up (x, -z, y), the inverse of the synthetic layout's axis swap.
        vertices = np.stack([vertices[:, 0], -vertices[:, 2], vertices[:, 1]], axis=-1)
    elif up_axis != "z":
        raise NeroDataError(path, f"mesh up axis must be 'y' or 'z', got '{up_axis}'")
    return vertices, np.asarray(mesh.faces, dtype=np.int64)
