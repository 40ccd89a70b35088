"""Outward, consistent face orientation."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nero_nerfstudio.raycasting.mesh_orientation import orient_faces_outward


def _two_bodies() -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    box = trimesh.creation.box(extents=(1.0, 2.0, 0.5))
    box.vertices += (4.0, 0.0, 0.0)
    return trimesh.util.concatenate([sphere, box])


def test_restores_outward_winding_after_random_flips() -> None:
    mesh = _two_bodies()
    assert mesh.volume > 0
    rng = np.random.default_rng(0)
    scrambled = mesh.faces.copy()
    flip = rng.random(len(scrambled)) < 0.5
    scrambled[flip] = scrambled[flip][:, ::-1]
    oriented = orient_faces_outward(mesh.vertices, scrambled)
    # Same faces in the same order, each wound as in the outward original (up to a cyclic rotation).
    assert oriented.shape == mesh.faces.shape
    np.testing.assert_array_equal(np.sort(oriented, axis=1), np.sort(mesh.faces, axis=1))
    np.testing.assert_allclose(
        trimesh.Trimesh(mesh.vertices, oriented, process=False).face_normals, mesh.face_normals, atol=1e-12
    )


def test_flips_an_inward_component_only() -> None:
    mesh = _two_bodies()
    sphere_faces = len(trimesh.creation.icosphere(subdivisions=2).faces)
    inward = mesh.faces.copy()
    inward[:sphere_faces] = inward[:sphere_faces][:, ::-1]  # marching-cubes-like inward sphere
    oriented = orient_faces_outward(mesh.vertices, inward)
    oriented_mesh = trimesh.Trimesh(mesh.vertices, oriented, process=False)
    for body in oriented_mesh.split(only_watertight=False):
        assert body.volume > 0
    # Outward: the normal of each sphere face points away from the sphere centre.
    centres = oriented_mesh.triangles_center[:sphere_faces]
    assert np.all(np.einsum("ij,ij->i", oriented_mesh.face_normals[:sphere_faces], centres) > 0)


def test_duplicated_vertices_are_treated_as_shared() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=1)
    soup_vertices = sphere.vertices[sphere.faces].reshape(-1, 3)  # every face has its own corners
    soup_faces = np.arange(len(soup_vertices)).reshape(-1, 3)[:, ::-1].copy()  # all inward
    oriented = orient_faces_outward(soup_vertices, soup_faces)
    assert trimesh.Trimesh(soup_vertices, oriented, process=False).volume > 0


def test_rejects_bad_faces() -> None:
    with pytest.raises(ValueError, match="outside"):
        orient_faces_outward(np.zeros((3, 3)), np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="faces must have shape"):
        orient_faces_outward(np.zeros((3, 3)), np.array([0, 1, 2]))
