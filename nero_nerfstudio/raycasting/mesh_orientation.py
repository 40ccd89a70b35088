"""Consistent, outward face orientation for a triangle mesh, so flat face normals point out of the object.

NeRO negates the ray tracer's normals because marching cubes emits inward-wound triangles; that is a blind
sign flip which breaks for any other mesh. Here the winding is made consistent across shared edges and each
connected component is flipped, if needed, so that its signed volume is positive (outward normals for a
closed mesh, and for a nearly closed one).
"""

from __future__ import annotations

import numpy as np
import trimesh


def validate_mesh_arrays(vertices: np.ndarray, faces: np.ndarray) -> None:
    """Raise a one-line ``ValueError`` if ``vertices [V, 3]`` / ``faces [F, 3]`` do not form a triangle mesh."""
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"mesh vertices must have shape [num_vertices, 3], got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"mesh faces must have shape [num_faces, 3], got {tuple(faces.shape)}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"mesh faces index vertices outside [0, {len(vertices) - 1}]")
    if not np.all(np.isfinite(vertices)):
        raise ValueError("mesh vertices contain non-finite values")


def orient_faces_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Re-wind triangles consistently and outward.

    Face order is kept, so face ids refer to the input faces.

    Args:
        vertices: ``[num_vertices, 3]`` positions.
        faces: ``[num_faces, 3]`` vertex indices.

    Returns:
        ``[num_faces, 3]`` int64 vertex indices into ``vertices``, each row a (possibly reversed) input face.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    validate_mesh_arrays(vertices, faces)

    # Merge coincident vertices (exact duplicates) only to find shared edges; the face order is kept.
    unique_rows, vertex_to_unique = trimesh.grouping.unique_rows(vertices)
    merged_faces = vertex_to_unique[faces]
    merged = trimesh.Trimesh(vertices=vertices[unique_rows], faces=merged_faces.copy(), process=False)
    trimesh.repair.fix_winding(merged)
    flipped = ~_is_cyclic_rotation(merged.faces, merged_faces)

    # Per connected component, the signed volume (divergence theorem) is positive when normals point out.
    component_of_face = np.zeros(len(faces), dtype=np.int64)
    components = trimesh.graph.connected_components(merged.face_adjacency, nodes=np.arange(len(faces)))
    for component_index, component in enumerate(components):
        component_of_face[component] = component_index
    corners = merged.vertices[merged.faces] - merged.vertices.mean(axis=0)  # [F, 3 corners, 3]
    signed_volume = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2]))
    component_volume = np.bincount(component_of_face, weights=signed_volume)
    flipped ^= component_volume[component_of_face] < 0

    oriented = faces.copy()
    oriented[flipped] = oriented[flipped][:, ::-1]
    return oriented


def _is_cyclic_rotation(faces: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[num_faces]`` bool: whether each row of ``faces`` is a cyclic rotation (same winding) of ``reference``."""
    return np.any([np.all(faces == np.roll(reference, shift, axis=1), axis=1) for shift in range(3)], axis=0)
