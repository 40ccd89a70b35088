"""Read the meshes (and ground-truth point clouds) handed to the evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import trimesh

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.mesh_io import load_triangle_mesh

def load_ground_truth_geometry(path: Path) -> Union[trimesh.Trimesh, np.ndarray]:
    """A ground-truth triangle mesh, or the ``[N, 3]`` points of a point-cloud .ply (GlossyReal's scans)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".ply":
        try:
            geometry = trimesh.load(path, process=False)
        except Exception as error:  # trimesh raises many types for unreadable files
            raise NeroDataError(path, f"cannot read PLY ({error})") from error
        if isinstance(geometry, trimesh.PointCloud):
            if len(geometry.vertices) == 0:
                raise NeroDataError(path, "point cloud is empty")
            return np.asarray(geometry.vertices, dtype=np.float64)
    return load_triangle_mesh(path)
