"""UV unwrapping with xatlas, run in a child process.

xatlas crashes the whole interpreter (segmentation fault) on some meshes — a known upstream problem, e.g. a perfectly
regular icosphere — so it runs in a child Python (``python -m nero_nerfstudio.export.xatlas_unwrap``, arrays passed
through .npz files in a temporary folder): a crash becomes a clear ``UnwrapError`` and the files already exported
survive. This module imports only numpy and xatlas, so the child starts quickly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np
import xatlas

if TYPE_CHECKING:  # jaxtyping only for annotations: it would double the child's start-up time
    from jaxtyping import Float, Int


ATLAS_KEYS = ("vertex_map", "faces", "uv", "atlas_count")
"""Arrays in the .npz file the child writes."""


class UnwrapError(RuntimeError):
    """xatlas could not unwrap the mesh."""


@dataclass(frozen=True)
class UvAtlas:
    """A UV parametrisation: the mesh split along chart seams, with one uv per split vertex."""

    vertex_map: Int[np.ndarray, "num_atlas_vertices"]
    """Source-mesh vertex of each atlas vertex."""
    faces: Int[np.ndarray, "num_faces 3"]
    """Faces of the split mesh (indices into the atlas vertices), same order as the source faces."""
    uv: Float[np.ndarray, "num_atlas_vertices 2"]
    """Texture coordinates in [0, 1]: (0, 0) is the bottom-left corner of the image, v grows upwards."""


def check_child_result(result: subprocess.CompletedProcess) -> None:
    """Raise ``UnwrapError`` if the unwrapping child process failed; a signal means xatlas crashed."""
    if result.returncode == 0:
        return
    if result.returncode < 0:
        raise UnwrapError(
            f"xatlas crashed ({signal.Signals(-result.returncode).name}) while unwrapping the mesh "
            "(a known xatlas bug on some meshes); remesh or simplify it, or skip the textures"
        )
    stderr_lines = result.stderr.strip().splitlines()
    raise UnwrapError(f"UV unwrapping failed: {stderr_lines[-1] if stderr_lines else f'exit code {result.returncode}'}")


def xatlas_parametrize(
    vertices: Float[np.ndarray, "num_vertices 3"], faces: Int[np.ndarray, "num_faces 3"], texture_size: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run xatlas in this process: returns its ``(vertex_map, faces, uv)`` and the number of atlases."""
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.uint32))
    pack_options = xatlas.PackOptions()
    pack_options.resolution = texture_size
    # xatlas may size the atlas somewhat above `resolution`, which thins the padding once scaled to the texture.
    pack_options.padding = max(2, texture_size // 256)
    pack_options.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack_options)
    vertex_map, atlas_faces, uv = atlas[0]
    return vertex_map, atlas_faces, uv, atlas.atlas_count


def unwrap_uv(
    vertices: Float[np.ndarray, "num_vertices 3"], faces: Int[np.ndarray, "num_faces 3"], texture_size: int
) -> UvAtlas:
    """UV-unwrap a triangle mesh with xatlas (in a child process) into one atlas packed for a ``texture_size``² map.

    Raises:
        UnwrapError: xatlas crashed, or needed more than one atlas.
    """
    if texture_size < 8:
        raise ValueError(f"texture_size must be at least 8, got {texture_size}")
    with tempfile.TemporaryDirectory(prefix="nero_xatlas_") as folder:
        mesh_file, atlas_file = Path(folder) / "mesh.npz", Path(folder) / "atlas.npz"
        np.savez(mesh_file, vertices=np.asarray(vertices, np.float32), faces=np.asarray(faces, np.uint32))
        command = [sys.executable, "-m", __name__, str(mesh_file), str(atlas_file), str(texture_size)]
        check_child_result(subprocess.run(command, capture_output=True, text=True, check=False))
        with np.load(atlas_file) as atlas:
            vertex_map, atlas_faces, uv, atlas_count = (atlas[key] for key in ATLAS_KEYS)
    if atlas_count != 1:
        raise UnwrapError(f"xatlas packed the charts into {atlas_count} atlases; expected exactly one")
    return UvAtlas(vertex_map=vertex_map.astype(np.int64), faces=atlas_faces.astype(np.int64), uv=uv.astype(np.float64))


def main(argv: Optional[List[str]] = None) -> None:
    """Child process: ``MESH_NPZ ATLAS_NPZ TEXTURE_SIZE``; reads vertices and faces, writes the xatlas result."""
    mesh_file, atlas_file, texture_size = argv if argv is not None else sys.argv[1:]
    with np.load(mesh_file) as mesh:
        result = xatlas_parametrize(mesh["vertices"], mesh["faces"], int(texture_size))
    np.savez(atlas_file, **dict(zip(ATLAS_KEYS, result)))


if __name__ == "__main__":
    main()
