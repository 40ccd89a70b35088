"""Optional CUDA BVH backend on ashawkey's ``raytracing`` extension (the mesh tracer NeRO uses).

That extension is git-only; the PyPI package named ``raytracing`` is an unrelated optics library, so the
module is accepted only if it exposes ``RayTracer`` with a ``trace`` method, and only when CUDA is available.
It is never a dependency of this project.

The extension has a fixed maximum distance (10 or 100 units depending on its version: a miss returns that
depth) and reports no face ids. To remove the distance limit, the mesh is traced in a normalised frame where it
fits in the unit sphere, and each ray starts where it enters that sphere, so no trace is longer than ~2 units.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from nero_nerfstudio.raycasting.base import ArrayLike, DeviceLike, MeshRayCaster, RayHits, miss_filled_hits

# The extension's BVH builder needs more than 8 triangles.
MIN_NUM_FACES = 9
# Margin (normalised units) kept between a ray's advanced start and the unit sphere, and the longest trace
# that can still be a hit inside the unit sphere (its diameter plus that margin, rounded up).
_ENTRY_MARGIN = 0.01
_MAX_HIT_DEPTH = 2.5


def load_cuda_bvh_module() -> Optional[ModuleType]:
    """ashawkey's ``raytracing`` module if it is importable, has the right API, and CUDA is available."""
    if not torch.cuda.is_available():
        return None
    try:
        module = importlib.import_module("raytracing")
    except (ImportError, OSError):
        return None
    tracer_class = getattr(module, "RayTracer", None)
    if tracer_class is None or not callable(getattr(tracer_class, "trace", None)):
        return None
    return module


class CudaBvhRayCaster(MeshRayCaster):
    """CUDA BVH backend. Inputs on any device are moved to ``device`` and results come back.

    Args:
        vertices: ``[num_vertices, 3]`` positions.
        faces: ``[num_faces, 3]`` vertex indices (more than 8 faces).
        orient_outward: re-wind faces consistently and outward (see :class:`MeshRayCaster`).
        device: the CUDA device to trace on.
        tracer_module: the ``raytracing`` module; found with :func:`load_cuda_bvh_module` when omitted.
    """

    def __init__(
        self,
        vertices: ArrayLike,
        faces: ArrayLike,
        orient_outward: bool = True,
        device: DeviceLike = "cuda",
        tracer_module: Optional[ModuleType] = None,
    ) -> None:
        super().__init__(vertices, faces, orient_outward, device)
        if tracer_module is None:
            tracer_module = load_cuda_bvh_module()
            if tracer_module is None:
                raise RuntimeError(
                    "the CUDA ray-casting backend needs CUDA and ashawkey's raytracing extension "
                    "(github.com/ashawkey/raytracing); use backend='open3d'"
                )
        if len(self.faces) < MIN_NUM_FACES:
            raise ValueError(f"the CUDA BVH backend needs at least {MIN_NUM_FACES} faces, got {len(self.faces)}")
        centre = 0.5 * (self.vertices.min(axis=0) + self.vertices.max(axis=0))
        radius = float(np.linalg.norm(self.vertices - centre, axis=-1).max()) * 1.01 + 1e-6
        self._centre = torch.as_tensor(centre, dtype=torch.float32, device=self.device)
        self._radius = radius
        normalised_vertices = ((self.vertices - centre) / radius).astype(np.float32)
        self._tracer = tracer_module.RayTracer(normalised_vertices, self.faces)

    def _cast_unit_rays(
        self, origins: Float[Tensor, "num_rays 3"], unit_directions: Float[Tensor, "num_rays 3"]
    ) -> RayHits:
        # Start each ray where it enters the unit sphere around the normalised mesh.
        local_origins = (origins - self._centre) / self._radius
        half_b = (local_origins * unit_directions).sum(-1)
        c = (local_origins * local_origins).sum(-1) - 1.0
        discriminant = half_b * half_b - c
        t_enter = -half_b - discriminant.clamp_min(0.0).sqrt()
        outside = c > 0
        # From outside, both sphere crossings lie on the same side of the origin (their product is c > 0).
        may_hit = ~outside | ((discriminant > 0) & (t_enter > 0))
        advance = torch.where(outside, (t_enter - _ENTRY_MARGIN).clamp_min(0.0), torch.zeros_like(t_enter))
        start = (local_origins + advance[:, None] * unit_directions).contiguous()

        traced = self._tracer.trace(start, unit_directions.contiguous())
        if len(traced) != 3:
            raise RuntimeError(
                "this raytracing version is unsupported: RayTracer.trace() must return (positions, normals, depth)"
            )
        _, face_normals, local_depth = traced
        hit_mask = may_hit & (local_depth < _MAX_HIT_DEPTH)
        depth = (advance + local_depth) * self._radius
        points = origins + depth[:, None] * unit_directions
        # The extension does not report which face was hit.
        face_ids = torch.full_like(hit_mask, -1, dtype=torch.long)
        return miss_filled_hits(hit_mask, depth, points, face_normals.float(), face_ids)

    def _occluded_unit_rays(
        self, origins: Float[Tensor, "num_rays 3"], unit_directions: Float[Tensor, "num_rays 3"], t_min: float
    ) -> Bool[Tensor, "num_rays"]:
        # The extension accepts hits at t >= 0, so start the rays t_min further on.
        return self._cast_unit_rays(origins + t_min * unit_directions, unit_directions).hit_mask
