"""Exact ground-truth depth and normals of a rendered scene, by ray casting the mesh with open3d.

This is independent of Blender's render passes: the same pinhole cameras, rays through pixel centres
``(u + 0.5, v + 0.5)``, hit against the triangle mesh, smooth normals interpolated from the vertex normals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass
class GroundTruthMesh:
    """A triangle mesh with per-vertex unit normals (the normals Blender shaded with)."""

    vertices: np.ndarray
    """``[num_vertices, 3]`` float."""
    faces: np.ndarray
    """``[num_faces, 3]`` int."""
    vertex_normals: np.ndarray
    """``[num_vertices, 3]`` float, unit length."""


def pixel_center_rays(
    w2c: np.ndarray, intrinsics: np.ndarray, width: int, height: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Rays through the pixel centres of one OpenCV camera.

    Directions are ``R^T K^-1 [u + 0.5, v + 0.5, 1]``, not normalised, so a hit distance along them is the
    camera z-depth.

    Returns:
        origins ``[height, width, 3]`` and directions ``[height, width, 3]``.
    """
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pixels = np.stack([cols, rows, np.ones_like(cols)], axis=-1)
    directions_cam = pixels @ np.linalg.inv(intrinsics).T
    rotation, translation = w2c[:3, :3], w2c[:3, 3]
    directions = directions_cam @ rotation
    origin = -rotation.T @ translation
    return np.broadcast_to(origin, directions.shape), directions


class GroundTruthCaster:
    """Casts pixel-centre rays of pinhole cameras against one mesh (the BVH is built once)."""

    def __init__(self, mesh: GroundTruthMesh) -> None:
        import open3d as o3d  # heavy; only the scene generator needs it

        self._o3d = o3d
        self.mesh = mesh
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            o3d.core.Tensor(mesh.vertices.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32))
        )

    def depth_and_normals(
        self, w2c: np.ndarray, intrinsics: np.ndarray, width: int, height: int
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Z-depth and world-space normals of the mesh seen by one camera.

        Args:
            w2c: ``[3, 4]`` OpenCV world-to-camera, in the mesh's frame.
            intrinsics: ``[3, 3]``.

        Returns:
            depth ``[height, width]`` float32 (``inf`` where no surface is hit) and normals ``[height, width, 3]``
            float32 (unit, zero where no surface is hit).
        """
        origins, directions = pixel_center_rays(w2c, intrinsics, width, height)
        rays = np.concatenate([origins, directions], axis=-1).reshape(-1, 6).astype(np.float32)
        hits = self.scene.cast_rays(self._o3d.core.Tensor(rays))
        depth = hits["t_hit"].numpy().reshape(height, width)
        hit = np.isfinite(depth)

        face_ids = hits["primitive_ids"].numpy().reshape(-1)[hit.reshape(-1)]
        barycentric_uv = hits["primitive_uvs"].numpy().reshape(-1, 2)[hit.reshape(-1)]
        # open3d's hit point is (1 - u - v) * v0 + u * v1 + v * v2; interpolate the normals the same way.
        corner_normals = self.mesh.vertex_normals[self.mesh.faces[face_ids]]
        weights = np.concatenate([1.0 - barycentric_uv.sum(-1, keepdims=True), barycentric_uv], axis=-1)
        interpolated = (weights[:, :, None] * corner_normals).sum(axis=1)
        interpolated /= np.maximum(np.linalg.norm(interpolated, axis=-1, keepdims=True), 1e-12)

        normals = np.zeros((height, width, 3), dtype=np.float32)
        normals[hit] = interpolated
        return depth.astype(np.float32), normals


def sample_surface_points(mesh: GroundTruthMesh, num_points: int, seed: int) -> np.ndarray:
    """Points ``[num_points, 3]`` sampled uniformly by area on the mesh surface."""
    rng = np.random.default_rng(seed)
    corners = mesh.vertices[mesh.faces]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=-1)
    face_ids = rng.choice(len(areas), size=num_points, p=areas / areas.sum())
    u, v = rng.uniform(size=(2, num_points))
    outside = u + v > 1.0  # fold the unit square onto the triangle
    u[outside], v[outside] = 1.0 - u[outside], 1.0 - v[outside]
    chosen = corners[face_ids]
    return chosen[:, 0] + u[:, None] * (chosen[:, 1] - chosen[:, 0]) + v[:, None] * (chosen[:, 2] - chosen[:, 0])
