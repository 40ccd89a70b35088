"""UV baking pieces on their own: the texel convention, the CPU rasteriser, chart extension, gutter fill, unwrap."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh

from nero_nerfstudio.export.uv_baking import (
    barycentric_coordinates,
    bake_material_maps,
    extend_charts,
    fill_gutter,
    rasterize_uv,
    uv_to_texel,
)
from nero_nerfstudio.export.xatlas_unwrap import UnwrapError, check_child_result, unwrap_uv

SIZE = 16


def texel_centre_uv(size: int) -> np.ndarray:
    """[size, size, 2] uv of every texel centre, row 0 at the top (v = 1)."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=-1)


def test_uv_to_texel_puts_uv_origin_at_the_bottom_left_texel_centre():
    corners = np.array([[0.5 / SIZE, 0.5 / SIZE], [0.5 / SIZE, 1.0 - 0.5 / SIZE], [1.0 - 0.5 / SIZE, 0.5 / SIZE]])
    np.testing.assert_allclose(uv_to_texel(corners, SIZE), [[0, SIZE - 1], [0, 0], [SIZE - 1, SIZE - 1]])
    np.testing.assert_allclose(uv_to_texel(texel_centre_uv(SIZE), SIZE)[3, 5], [5, 3])


def test_barycentric_coordinates_interpolate_the_point_and_flag_degenerate_triangles():
    rng = np.random.default_rng(0)
    triangles = rng.uniform(-1, 1, size=(50, 3, 2))
    points = rng.uniform(-1, 1, size=(50, 2))
    weights = barycentric_coordinates(points, triangles)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.einsum("nk,nkd->nd", weights, triangles), points, atol=1e-9)
    degenerate = np.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    assert np.isnan(barycentric_coordinates(np.array([[0.5, 0.5]]), degenerate)).all()


def test_two_triangles_covering_the_square_rasterise_every_texel_once_at_its_centre():
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    face_index, barycentric = rasterize_uv(uv, faces, SIZE)
    assert (face_index >= 0).all()
    # Texel centres strictly below the diagonal v = u belong to the first triangle.
    centres = texel_centre_uv(SIZE)
    below = centres[..., 1] < centres[..., 0]
    assert (face_index[below] == 0).all() and (face_index[centres[..., 1] > centres[..., 0]] == 1).all()
    interpolated = np.einsum("hwk,hwkd->hwd", barycentric, uv[faces[face_index]])
    np.testing.assert_allclose(interpolated, centres, atol=1e-9)


def test_rasterised_area_matches_the_triangle_area():
    uv = np.array([[0.1, 0.2], [0.9, 0.3], [0.4, 0.85]])
    size = 256
    face_index, barycentric = rasterize_uv(uv, np.array([[0, 1, 2]]), size)
    area = 0.5 * abs((uv[1, 0] - uv[0, 0]) * (uv[2, 1] - uv[0, 1]) - (uv[1, 1] - uv[0, 1]) * (uv[2, 0] - uv[0, 0]))
    assert (face_index >= 0).sum() == pytest.approx(area * size * size, rel=0.01)
    assert (barycentric[face_index >= 0] >= -1e-9).all()
    assert (barycentric[face_index < 0] == 0).all()


def test_extend_charts_continues_the_nearest_triangle_linearly():
    uv = np.array([[0.3, 0.3], [0.7, 0.3], [0.5, 0.7]])
    faces = np.array([[0, 1, 2]])
    face_index, barycentric = rasterize_uv(uv, faces, 64)
    extended_index, extended_barycentric = extend_charts(face_index, barycentric, uv, faces, max_distance=2.0)
    ring = (extended_index >= 0) & (face_index < 0)
    assert ring.sum() > 0 and (face_index < 0).sum() > ring.sum()
    assert np.array_equal(extended_index[face_index >= 0], face_index[face_index >= 0])
    # Extrapolated barycentrics of a ring texel interpolate to its own centre (none is clipped this close to a
    # well-shaped triangle), so the baked position continues the triangle's plane.
    interpolated = np.einsum("nk,nkd->nd", extended_barycentric[ring], uv[faces[extended_index[ring]]])
    np.testing.assert_allclose(interpolated, texel_centre_uv(64)[ring], atol=1e-9)
    assert (extended_barycentric[ring].min(axis=-1) < 0).all()


def test_fill_gutter_copies_the_nearest_filled_texel():
    image = np.zeros((5, 5, 1), np.float32)
    filled = np.zeros((5, 5), bool)
    image[1, 1], filled[1, 1] = 0.25, True
    image[3, 4], filled[3, 4] = 0.75, True
    result = fill_gutter(image, filled)
    assert result[0, 0, 0] == 0.25 and result[4, 4, 0] == 0.75 and result[2, 4, 0] == 0.75
    assert result[1, 1, 0] == 0.25 and (result > 0).all()
    with pytest.raises(ValueError, match="no texel is filled"):
        fill_gutter(image, np.zeros((5, 5), bool))


def test_unwrap_keeps_faces_and_packs_non_overlapping_charts_into_the_unit_square():
    mesh = trimesh.creation.icosphere(subdivisions=2)
    atlas = unwrap_uv(mesh.vertices, mesh.faces, 128)
    assert np.array_equal(atlas.vertex_map[atlas.faces], mesh.faces)
    assert set(atlas.vertex_map.tolist()) == set(range(len(mesh.vertices)))
    assert atlas.uv.min() >= 0.0 and atlas.uv.max() <= 1.0
    corners = atlas.uv[atlas.faces]
    edge_1, edge_2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    uv_area = 0.5 * np.abs(edge_1[:, 0] * edge_2[:, 1] - edge_1[:, 1] * edge_2[:, 0]).sum()
    # Overlapping charts would cover fewer texels than their summed area.
    face_index, _ = rasterize_uv(atlas.uv, atlas.faces, 512)
    assert 0.2 < uv_area < 1.0
    assert (face_index >= 0).mean() == pytest.approx(uv_area, rel=0.03)


def test_a_crash_or_failure_of_the_unwrap_process_becomes_a_clear_error():
    crashed = subprocess.run([sys.executable, "-c", "import os; os.abort()"], capture_output=True, text=True)
    with pytest.raises(UnwrapError, match=r"xatlas crashed \(SIGABRT\) while unwrapping the mesh"):
        check_child_result(crashed)
    failed = subprocess.run([sys.executable, "-c", "raise SystemExit('bad input')"], capture_output=True, text=True)
    with pytest.raises(UnwrapError, match="UV unwrapping failed: bad input"):
        check_child_result(failed)


def test_baking_a_constant_material_gives_constant_maps_everywhere():
    mesh = trimesh.creation.icosphere(subdivisions=2)

    def constant_material(points: torch.Tensor) -> dict:
        ones = torch.ones(points.shape[0], 1)
        return {"metallic": 0.75 * ones, "roughness": 0.3 * ones, "albedo": ones * torch.tensor([0.2, 0.4, 0.6])}

    baked = bake_material_maps(mesh.vertices, mesh.faces, constant_material, texture_size=64, batch_size=500)
    assert baked.maps["albedo"].shape == (64, 64, 3) and baked.maps["metallic"].shape == (64, 64, 1)
    assert 0.2 < baked.chart_mask.mean() < 1.0
    np.testing.assert_allclose(baked.maps["albedo"], np.broadcast_to([0.2, 0.4, 0.6], (64, 64, 3)), atol=1e-6)
    np.testing.assert_allclose(baked.maps["metallic"], 0.75, atol=1e-6)
    np.testing.assert_allclose(baked.maps["roughness"], 0.3, atol=1e-6)
