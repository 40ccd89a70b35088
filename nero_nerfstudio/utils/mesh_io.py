"""Reading triangle meshes handed to the plugin (Stage II training, exports, evaluation) with one clear error."""

from __future__ import annotations

from pathlib import Path

import trimesh

from nero_nerfstudio.core.errors import NeroDataError

MESH_SUFFIXES = (".ply", ".obj", ".glb")


def load_triangle_mesh(path: Path) -> trimesh.Trimesh:
    """The triangles of a .ply/.obj/.glb file, vertices in file order (``process=False``: rows of per-vertex
    material files keep matching)."""
    path = Path(path)
    if not path.is_file():
        raise NeroDataError(path, "mesh file not found")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise NeroDataError(path, f"unsupported mesh format '{path.suffix}'; use one of {', '.join(MESH_SUFFIXES)}")
    options = {"maintain_order": True} if path.suffix.lower() == ".obj" else {}
    try:
        mesh = trimesh.load(path, force="mesh", process=False, **options)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise NeroDataError(path, f"cannot read mesh ({error})") from error
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise NeroDataError(path, "file holds no triangles")
    return mesh
