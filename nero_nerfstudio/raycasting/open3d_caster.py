"""CPU ray casting with open3d's Embree-backed ``RaycastingScene`` (always available)."""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from nero_nerfstudio.raycasting.base import ArrayLike, MeshRayCaster, RayHits, miss_filled_hits, to_numpy


class Open3dRayCaster(MeshRayCaster):
    """open3d ``RaycastingScene`` backend; tensors on any device are moved to the CPU and back."""

    def __init__(self, vertices: ArrayLike, faces: ArrayLike, orient_outward: bool = True) -> None:
        super().__init__(vertices, faces, orient_outward)
        import open3d as o3d  # lazily: open3d is heavy and needs libusb at import time

        self._o3d = o3d
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor(self.vertices), o3d.core.Tensor(self.faces.astype(np.uint32))
        )

    def _open3d_rays(self, origins: Tensor, unit_directions: Tensor):
        """open3d ``[N, 6]`` float32 rays."""
        return self._o3d.core.Tensor(to_numpy(torch.cat([origins, unit_directions], dim=-1), np.float32))

    def _cast_unit_rays(
        self, origins: Float[Tensor, "num_rays 3"], unit_directions: Float[Tensor, "num_rays 3"]
    ) -> RayHits:
        result = self._scene.cast_rays(self._open3d_rays(origins, unit_directions))
        depth = torch.from_numpy(result["t_hit"].numpy().copy())
        hit_mask = torch.isfinite(depth)
        # open3d marks misses with the invalid id 2^32 - 1; use face 0 there until the miss fill.
        face_ids = torch.from_numpy(result["primitive_ids"].numpy().astype(np.int64))
        face_ids = torch.where(hit_mask, face_ids, torch.zeros_like(face_ids))
        face_normals = torch.from_numpy(self.face_normals)[face_ids]
        points = origins + depth.masked_fill(~hit_mask, 0.0)[:, None] * unit_directions
        return miss_filled_hits(hit_mask, depth, points, face_normals, face_ids)

    def _occluded_unit_rays(
        self, origins: Float[Tensor, "num_rays 3"], unit_directions: Float[Tensor, "num_rays 3"], t_min: float
    ) -> Bool[Tensor, "num_rays"]:
        rays = self._open3d_rays(origins, unit_directions)
        result = self._scene.test_occlusions(rays, tnear=t_min, tfar=float("inf"))
        return torch.from_numpy(result.numpy().astype(bool))
