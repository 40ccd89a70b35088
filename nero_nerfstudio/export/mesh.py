"""Stage I mesh export: marching cubes on an SDF, the way back to the dataset frame, and atomic mesh files.

The SDF is negative inside the object. The grid is closed at the unit sphere (the normalised frame puts the object
inside it) and at the border of the grid, so the extracted surface is always closed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence, Tuple, Union

import numpy as np
import torch
import trimesh
from jaxtyping import Float
from rich.console import Console
from skimage.measure import marching_cubes
from torch import Tensor

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.frames import dataset_to_normalised_matrix, normalised_to_dataset_matrix
from nero_nerfstudio.utils.io import atomic_path
from nero_nerfstudio.utils.mesh_io import MESH_SUFFIXES
from nero_nerfstudio.utils.progress import transient_progress

CONSOLE = Console()

SdfFunction = Callable[
    [Float[Tensor, "num_points 3"]], Union[Float[Tensor, "num_points 1"], Float[Tensor, "num_points"]]
]
"""Maps points ``[num_points, 3]`` to signed distances ``[num_points, 1]`` or ``[num_points]`` (negative inside)."""

Bounds = Tuple[Sequence[float], Sequence[float]]

DEFAULT_CHUNK_SIZE = 64**3
OUTSIDE_SDF_VALUE = 1.0
"""What grid points outside the unit sphere (and on the grid border) are set to: clearly outside."""
SURFACE_NUDGE_VOXELS = 0.01
"""Grid values closer to 0 than this fraction of a voxel are pushed to it before marching cubes (see
:func:`nudge_off_zero`); the surface moves by at most 1% of a voxel."""


class NoSurfaceError(RuntimeError):
    """The SDF grid has no zero crossing, so there is nothing to extract."""


def _grid_axes(resolution: int, bounds: Bounds) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-axis sample positions ``[resolution]`` of the grid, endpoints included."""
    bounds_min, bounds_max = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    if bounds_min.shape != (3,) or bounds_max.shape != (3,) or np.any(bounds_max <= bounds_min):
        raise ValueError(f"bounds must be ((xmin, ymin, zmin), (xmax, ymax, zmax)) with min < max, got {bounds}")
    return tuple(  # type: ignore[return-value]
        torch.linspace(float(lo), float(hi), resolution, dtype=torch.float32) for lo, hi in zip(bounds_min, bounds_max)
    )


@torch.no_grad()
def evaluate_sdf_grid(
    sdf_fn: SdfFunction,
    resolution: int,
    bounds: Bounds = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Union[str, torch.device] = "cpu",
) -> Float[np.ndarray, "resolution resolution resolution"]:
    """Sample the SDF on a ``resolution``³ grid, chunk by chunk, with a progress bar.

    Only points strictly inside the unit sphere are evaluated; the others, and the outermost layer of the grid,
    are set to ``OUTSIDE_SDF_VALUE`` so the zero level set is closed.

    Returns:
        float32 grid ``[resolution, resolution, resolution]`` indexed ``[ix, iy, iz]``.
    """
    if resolution < 3:
        raise ValueError(f"resolution must be at least 3, got {resolution}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    axis_x, axis_y, axis_z = _grid_axes(resolution, bounds)
    num_points = resolution**3
    sdf_grid = np.full(num_points, OUTSIDE_SDF_VALUE, dtype=np.float32)

    progress = transient_progress("[bold]Evaluating SDF grid {task.fields[resolution]}³", CONSOLE)
    with progress:
        task = progress.add_task("sdf", total=num_points, resolution=resolution)
        for start in range(0, num_points, chunk_size):
            flat_index = torch.arange(start, min(start + chunk_size, num_points), dtype=torch.int64)
            index_x = flat_index // (resolution * resolution)
            index_y = (flat_index // resolution) % resolution
            index_z = flat_index % resolution
            points = torch.stack([axis_x[index_x], axis_y[index_y], axis_z[index_z]], dim=-1)
            grid_index = torch.stack([index_x, index_y, index_z], dim=-1)
            on_border = ((grid_index == 0) | (grid_index == resolution - 1)).any(dim=-1)
            evaluate = (torch.linalg.vector_norm(points, dim=-1) < 1.0) & ~on_border
            if evaluate.any():
                inside_points = points[evaluate]
                sdf = sdf_fn(inside_points.to(device))
                if sdf.numel() != inside_points.shape[0]:
                    raise ValueError(
                        f"sdf_fn returned {tuple(sdf.shape)} for {inside_points.shape[0]} points; "
                        "expected [num_points, 1] or [num_points]"
                    )
                chunk_values = sdf_grid[start : start + flat_index.shape[0]]
                chunk_values[evaluate.numpy()] = sdf.reshape(-1).float().cpu().numpy()
            progress.update(task, advance=flat_index.shape[0])
    return sdf_grid.reshape(resolution, resolution, resolution)


def nudge_off_zero(
    sdf_grid: Float[np.ndarray, "res_x res_y res_z"], epsilon: float
) -> Float[np.ndarray, "res_x res_y res_z"]:
    """A float32 copy of ``sdf_grid`` whose values in ``(-epsilon, epsilon)`` become ``-epsilon`` if negative and
    ``+epsilon`` otherwise (0 counts as outside).

    A grid value at or within float error of 0 puts the marching-cubes vertices of all its edges on (nearly) the
    same point. Vertices a few float32 steps apart survive in memory, but collapse when a mesh file stores float32
    coordinates (PLY) in another frame and the loader merges them: faces degenerate and edges become non-manifold.
    Pushed away from 0, every vertex sits at least about ``epsilon`` from its grid point and its neighbours.
    """
    nudged = np.array(sdf_grid, dtype=np.float32, copy=True)
    near_zero = np.abs(nudged) < epsilon
    nudged[near_zero] = np.where(nudged[near_zero] < 0.0, -epsilon, epsilon)
    return nudged


def mesh_from_sdf_grid(
    sdf_grid: Float[np.ndarray, "res_x res_y res_z"],
    bounds: Bounds = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
) -> trimesh.Trimesh:
    """Marching cubes at level 0 on a negative-inside SDF grid, faces wound outward, vertices in world coordinates."""
    if not np.all(np.isfinite(sdf_grid)):
        raise NoSurfaceError("the SDF has NaN or infinite values — training diverged")
    if not (sdf_grid.min() < 0.0 < sdf_grid.max()):
        raise NoSurfaceError(
            "the SDF has no surface inside the unit sphere (no zero crossing on the grid) — "
            "training diverged or was too short"
        )
    bounds_min, bounds_max = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    voxel_size = (bounds_max - bounds_min) / (np.asarray(sdf_grid.shape, dtype=np.float64) - 1.0)
    # skimage winds faces towards increasing values with "descent" (its default); for an SDF that is positive
    # outside, that is outward. Checked on a sphere in tests/export/test_mesh_export.py.
    vertices, faces, _, _ = marching_cubes(
        nudge_off_zero(sdf_grid, SURFACE_NUDGE_VOXELS * float(voxel_size.min())),
        level=0.0,
        spacing=tuple(voxel_size),
        gradient_direction="descent",
        allow_degenerate=False,
    )
    return trimesh.Trimesh(vertices=vertices + bounds_min, faces=faces, process=True)


def extract_mesh(
    sdf_fn: SdfFunction,
    resolution: int = 512,
    bounds: Bounds = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: Union[str, torch.device] = "cpu",
) -> trimesh.Trimesh:
    """Extract the zero level set of ``sdf_fn`` inside the unit sphere as a closed, outward-facing mesh.

    Args:
        sdf_fn: signed distance, negative inside (see ``SdfFunction``).
        resolution: grid samples per axis (linspace over ``bounds`` including the endpoints).
        bounds: ``(min_xyz, max_xyz)`` of the grid.
        chunk_size: points per ``sdf_fn`` call.
        device: device the points are sent to.

    Raises:
        NoSurfaceError: the SDF never crosses zero inside the unit sphere, or is not finite.
    """
    sdf_grid = evaluate_sdf_grid(sdf_fn, resolution, bounds, chunk_size, device)
    return mesh_from_sdf_grid(sdf_grid, bounds)


def transform_mesh(mesh: trimesh.Trimesh, matrix: Float[np.ndarray, "4 4"]) -> trimesh.Trimesh:
    """A copy of ``mesh`` with its vertices moved by the homogeneous ``matrix``; faces stay outward even if the
    matrix contains a reflection. Vertex order is kept (per-vertex material arrays still line up)."""
    moved = mesh.copy()
    moved.vertices = trimesh.transform_points(mesh.vertices, matrix)
    if np.linalg.det(matrix[:3, :3]) < 0:
        moved.invert()
    return moved


def transform_to_dataset_frame(
    mesh: trimesh.Trimesh, dataparser_transform: Float[np.ndarray, "3 4"], dataparser_scale: float
) -> trimesh.Trimesh:
    """A copy of ``mesh`` moved from the normalised (nerfstudio) frame back to the dataset frame.

    ``x_dataset = inv([T; 0 0 0 1]) @ [x_ns / scale; 1]``.
    """
    return transform_mesh(mesh, normalised_to_dataset_matrix(dataparser_transform, dataparser_scale))


def transform_to_normalized_frame(
    mesh: trimesh.Trimesh, dataparser_transform: Float[np.ndarray, "3 4"], dataparser_scale: float
) -> trimesh.Trimesh:
    """Inverse of :func:`transform_to_dataset_frame`: ``x_ns = scale * (T @ [x_dataset; 1])``."""
    return transform_mesh(mesh, dataset_to_normalised_matrix(dataparser_transform, dataparser_scale))


def cut_at_table(
    mesh: trimesh.Trimesh, table_plane: Float[np.ndarray, "4"], offset: float = 0.02
) -> trimesh.Trimesh:
    """The part of ``mesh`` above the table, without the flat table fragments left over.

    A capture of an object on a table reconstructs a disc of table inside the unit sphere too. The mesh is sliced at
    the plane ``n . x + d = offset`` (``n`` unit, pointing up); pieces that then lie wholly within ``3 offset`` of the
    table are bumps of its surface, not the object, and are dropped.

    Args:
        mesh: in the frame of ``table_plane``.
        table_plane: ``[4]`` ``(n, d)``.
        offset: how far above the table to cut (the estimated plane is a little off the reconstructed one).
    """
    normal = np.asarray(table_plane[:3], dtype=np.float64)
    normal = normal / np.linalg.norm(normal)
    distance = float(table_plane[3]) / float(np.linalg.norm(table_plane[:3]))
    origin = (offset - distance) * normal
    above = trimesh.intersections.slice_mesh_plane(mesh, plane_normal=normal, plane_origin=origin)
    if len(above.faces) == 0:
        return above
    pieces = above.split(only_watertight=False)
    kept = [piece for piece in pieces if float((piece.vertices @ normal + distance).max()) > 3.0 * offset]
    return trimesh.util.concatenate(kept) if kept else trimesh.Trimesh()


def load_dataparser_transform(path: Path) -> Tuple[Float[np.ndarray, "3 4"], float]:
    """Read nerfstudio's ``dataparser_transforms.json`` (``{"transform": 3x4, "scale": s}``)."""
    if not path.is_file():
        raise NeroDataError(path, "dataparser_transforms.json not found (the trainer writes it next to config.yml)")
    try:
        content = json.loads(path.read_text())
        transform = np.asarray(content["transform"], dtype=np.float64)
        scale = float(content["scale"])
    except (ValueError, KeyError, TypeError) as error:
        raise NeroDataError(path, f"expected {{'transform': 3x4, 'scale': float}} ({error})") from error
    if transform.shape != (3, 4):
        raise NeroDataError(path, f"'transform' must be 3x4, got shape {transform.shape}")
    return transform, scale


def save_mesh(mesh: trimesh.Trimesh, path: Union[str, Path]) -> Path:
    """Write ``mesh`` as .ply, .obj or .glb (picked by suffix), atomically: an old file survives a failed write."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise NeroDataError(path, f"unsupported mesh format '{path.suffix}'; use one of {', '.join(MESH_SUFFIXES)}")
    with atomic_path(path) as tmp_path:
        mesh.export(tmp_path, file_type=suffix[1:])
    return path
