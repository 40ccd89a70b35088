"""Reading triangle meshes handed to the plugin (Stage II training, exports, evaluation) with one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import torch
import trimesh
from jaxtyping import Float
from torch import Tensor

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.frames import dataset_to_normalised

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


def load_mesh_in_normalised_frame(
    mesh_path: Path, dataparser_transform: Float[Tensor, "3 4"], dataparser_scale: float
) -> Tuple[np.ndarray, np.ndarray]:
    """Vertices ``[V, 3]`` (float64) and faces ``[F, 3]`` of a dataset-frame mesh, moved to the normalised frame
    ``x_n = scale (R x + t)`` (:func:`nero_nerfstudio.core.frames.dataset_to_normalised`).

    Raises:
        NeroDataError: the file is missing, unreadable, holds no triangles or non-finite vertices.
    """
    mesh = load_triangle_mesh(Path(mesh_path))
    transform = torch.as_tensor(dataparser_transform, dtype=torch.float64).cpu().numpy()
    vertices = dataset_to_normalised(mesh.vertices, transform, float(dataparser_scale))
    if not np.isfinite(vertices).all():
        raise NeroDataError(mesh_path, "mesh has NaN or infinite vertex coordinates")
    return vertices, np.asarray(mesh.faces, dtype=np.int64)
