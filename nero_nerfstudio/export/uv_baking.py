"""Baking a material function into UV texture maps on the CPU: xatlas unwrap, UV rasterisation, gutter fill.

Texture convention (glTF, OBJ and trimesh agree on it): ``uv = (0, 0)`` is the bottom-left corner of the image,
``v`` grows upwards, and texel ``(row, col)`` of a ``size x size`` image has its centre at
``uv = ((col + 0.5) / size, 1 - (row + 0.5) / size)``; row 0 is the top row of the PNG. (glTF stores ``1 - v``
in the file; trimesh flips on export and import, so our ``uv`` arrays are always in the convention above.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple, Union

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from rich.console import Console
from scipy.ndimage import distance_transform_edt

from nero_nerfstudio.export.material_query import DEFAULT_BATCH_SIZE, MaterialFn, query_materials
from nero_nerfstudio.export.xatlas_unwrap import UnwrapError, UvAtlas, unwrap_uv

CONSOLE = Console()

RASTER_CHUNK_PAIRS = 1 << 22
"""Upper bound on (triangle, candidate texel) pairs tested at once, to bound memory."""
EXTEND_TEXELS = 2.0
"""Texels within this distance of a chart are baked too, extrapolating the nearest chart triangle, so that bilinear
filtering at a chart border mixes correct values."""
MIN_EXTRAPOLATED_BARYCENTRIC = -0.5
"""Extrapolated barycentrics are clipped here so a sliver triangle cannot throw a border texel far off the mesh."""


@dataclass(frozen=True)
class BakedMaterials:
    """Material maps baked over a ``UvAtlas``."""

    atlas: UvAtlas
    maps: Dict[str, Float[np.ndarray, "size size channels"]]
    """``metallic``, ``roughness`` ``[size, size, 1]`` and ``albedo`` ``[size, size, 3]``, linear, float32 in
    [0, 1]; every texel is set (gutter texels copy the nearest baked texel)."""
    chart_mask: Bool[np.ndarray, "size size"]
    """Texels whose centre lies inside a chart triangle."""


def uv_to_texel(uv: Float[np.ndarray, "*batch 2"], texture_size: int) -> Float[np.ndarray, "*batch 2"]:
    """Continuous texel coordinates ``(col, row)`` of ``uv``; texel centres are at integers."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([uv[..., 0] * texture_size - 0.5, (1.0 - uv[..., 1]) * texture_size - 0.5], axis=-1)


def barycentric_coordinates(
    points: Float[np.ndarray, "num_points 2"], triangles: Float[np.ndarray, "num_points 3 2"]
) -> Float[np.ndarray, "num_points 3"]:
    """Barycentric coordinates of each 2-D point in its triangle (outside the triangle some are negative).

    Degenerate (zero-area) triangles give NaN.
    """
    corner_a, corner_b, corner_c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    edge_ab, edge_ac, to_point = corner_b - corner_a, corner_c - corner_a, points - corner_a
    area2 = edge_ab[:, 0] * edge_ac[:, 1] - edge_ab[:, 1] * edge_ac[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        weight_b = (to_point[:, 0] * edge_ac[:, 1] - to_point[:, 1] * edge_ac[:, 0]) / area2
        weight_c = (edge_ab[:, 0] * to_point[:, 1] - edge_ab[:, 1] * to_point[:, 0]) / area2
    weight_b = np.where(area2 == 0.0, np.nan, weight_b)
    weight_c = np.where(area2 == 0.0, np.nan, weight_c)
    return np.stack([1.0 - weight_b - weight_c, weight_b, weight_c], axis=-1)


def rasterize_uv(
    uv: Float[np.ndarray, "num_uv_vertices 2"], faces: Int[np.ndarray, "num_faces 3"], texture_size: int
) -> Tuple[Int[np.ndarray, "size size"], Float[np.ndarray, "size size 3"]]:
    """Which triangle covers each texel centre, and where: a vectorised CPU rasteriser over triangle bounding boxes.

    Returns:
        face_index ``[size, size]`` (``-1`` where no triangle covers the texel centre) and barycentric coordinates
        ``[size, size, 3]`` of the texel centre in that triangle (zero where uncovered).
    """
    size = texture_size
    face_index = np.full((size, size), -1, dtype=np.int64)
    barycentric = np.zeros((size, size, 3), dtype=np.float64)
    triangles = uv_to_texel(uv, size)[faces]  # [num_faces, 3, 2] in (col, row)
    lower = np.clip(np.ceil(triangles.min(axis=1)), 0, size).astype(np.int64)
    upper = np.clip(np.floor(triangles.max(axis=1)), -1, size - 1).astype(np.int64)
    box_size = np.maximum(upper - lower + 1, 0)  # [num_faces, 2] candidate texels along (col, row)
    num_candidates = box_size[:, 0] * box_size[:, 1]
    candidate_faces = np.nonzero(num_candidates)[0]
    chunk_id = (np.cumsum(num_candidates[candidate_faces]) - 1) // RASTER_CHUNK_PAIRS
    for chunk in np.split(candidate_faces, np.nonzero(np.diff(chunk_id))[0] + 1):
        counts = num_candidates[chunk]
        pair_face = np.repeat(chunk, counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        col = lower[pair_face, 0] + offset % box_size[pair_face, 0]
        row = lower[pair_face, 1] + offset // box_size[pair_face, 0]
        weights = barycentric_coordinates(np.stack([col, row], axis=-1).astype(np.float64), triangles[pair_face])
        # A small tolerance so texel centres exactly on a shared edge are not lost to rounding.
        inside = np.all(weights >= -1e-9, axis=-1)
        face_index[row[inside], col[inside]] = pair_face[inside]
        barycentric[row[inside], col[inside]] = weights[inside]
    return face_index, barycentric


def extend_charts(
    face_index: Int[np.ndarray, "size size"],
    barycentric: Float[np.ndarray, "size size 3"],
    uv: Float[np.ndarray, "num_uv_vertices 2"],
    faces: Int[np.ndarray, "num_faces 3"],
    max_distance: float = EXTEND_TEXELS,
) -> Tuple[Int[np.ndarray, "size size"], Float[np.ndarray, "size size 3"]]:
    """Give uncovered texels within ``max_distance`` texels of a chart the triangle of their nearest covered texel.

    Their barycentric coordinates in that triangle are extrapolated (clipped at ``MIN_EXTRAPOLATED_BARYCENTRIC`` and
    renormalised), so the baked value continues the chart's values linearly across its border.

    Returns:
        New ``face_index`` and ``barycentric`` arrays (the inputs are not modified).
    """
    covered = face_index >= 0
    if not covered.any():
        return face_index.copy(), barycentric.copy()
    distance, (nearest_row, nearest_col) = distance_transform_edt(~covered, return_indices=True)
    ring_rows, ring_cols = np.nonzero(~covered & (distance <= max_distance))
    ring_faces = face_index[nearest_row[ring_rows, ring_cols], nearest_col[ring_rows, ring_cols]]
    triangles = uv_to_texel(uv, face_index.shape[0])[faces[ring_faces]]
    weights = barycentric_coordinates(np.stack([ring_cols, ring_rows], axis=-1).astype(np.float64), triangles)
    weights = np.maximum(weights, MIN_EXTRAPOLATED_BARYCENTRIC)
    weights /= weights.sum(axis=-1, keepdims=True)
    extended_index, extended_barycentric = face_index.copy(), barycentric.copy()
    extended_index[ring_rows, ring_cols] = ring_faces
    extended_barycentric[ring_rows, ring_cols] = weights
    return extended_index, extended_barycentric


def fill_gutter(
    image: Float[np.ndarray, "size size channels"], filled: Bool[np.ndarray, "size size"]
) -> Float[np.ndarray, "size size channels"]:
    """Copy, into every texel outside ``filled``, the value of the nearest filled texel (so filtering and mipmaps
    never mix in black)."""
    if not filled.any():
        raise ValueError("nothing to fill the gutter from: no texel is filled")
    _, (nearest_row, nearest_col) = distance_transform_edt(~filled, return_indices=True)
    return image[nearest_row, nearest_col]


def bake_material_maps(
    vertices: Float[np.ndarray, "num_vertices 3"],
    faces: Int[np.ndarray, "num_faces 3"],
    material_fn: MaterialFn,
    texture_size: int = 1024,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Union[str, torch.device] = "cpu",
) -> BakedMaterials:
    """Unwrap the mesh, rasterise its charts, query ``material_fn`` at each texel's 3-D position, fill the gutter.

    Args:
        vertices: ``[num_vertices, 3]`` in the normalised frame (the frame ``material_fn`` expects).
        faces: ``[num_faces, 3]``.
        material_fn: see ``MaterialFn``.
        texture_size: width and height of the maps.
        batch_size: points per ``material_fn`` call.
        device: where the points are sent.

    Raises:
        UnwrapError: xatlas crashed or could not pack the charts into one atlas (or no texel lies in a chart).
        MaterialFnError: ``material_fn`` returned something other than documented.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    with CONSOLE.status(f"UV-unwrapping {len(faces)} faces with xatlas (minutes for large meshes)"):
        atlas = unwrap_uv(vertices, faces, texture_size)
    chart_index, chart_barycentric = rasterize_uv(atlas.uv, atlas.faces, texture_size)
    chart_mask = chart_index >= 0
    if not chart_mask.any():
        raise UnwrapError("no texel centre falls inside any UV chart; increase the texture size")
    face_index, barycentric = extend_charts(chart_index, chart_barycentric, atlas.uv, atlas.faces)
    baked_rows, baked_cols = np.nonzero(face_index >= 0)
    corners = vertices[atlas.vertex_map[atlas.faces[face_index[baked_rows, baked_cols]]]]  # [num_baked, 3, 3]
    positions = np.einsum("nk,nkd->nd", barycentric[baked_rows, baked_cols], corners)
    texel_materials = query_materials(
        material_fn, positions, batch_size=batch_size, device=device, description=f"Baking {texture_size}² maps"
    )
    baked = face_index >= 0
    maps = {}
    for name, values in texel_materials.items():
        image = np.zeros((texture_size, texture_size, values.shape[1]), dtype=np.float32)
        image[baked_rows, baked_cols] = values
        maps[name] = fill_gutter(image, baked)
    return BakedMaterials(atlas=atlas, maps=maps, chart_mask=chart_mask)
