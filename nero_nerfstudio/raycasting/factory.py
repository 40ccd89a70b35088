"""Pick a mesh ray-casting backend."""

from __future__ import annotations

import logging
from typing import Literal

from nero_nerfstudio.raycasting.base import ArrayLike, MeshRayCaster
from nero_nerfstudio.raycasting.cuda_bvh_caster import MIN_NUM_FACES, CudaBvhRayCaster, load_cuda_bvh_module
from nero_nerfstudio.raycasting.open3d_caster import Open3dRayCaster

logger = logging.getLogger(__name__)

RayCasterBackend = Literal["auto", "open3d", "cuda"]


def make_ray_caster(
    vertices: ArrayLike, faces: ArrayLike, backend: RayCasterBackend = "auto", orient_outward: bool = True
) -> MeshRayCaster:
    """Build a ray caster over ``vertices [V, 3]`` / ``faces [F, 3]``.

    ``"auto"`` takes the CUDA BVH when ashawkey's ``raytracing`` extension and CUDA are both available (and the
    mesh has enough faces for it), else open3d on the CPU. ``"cuda"`` fails if the extension is unusable.
    """
    if backend == "open3d":
        return Open3dRayCaster(vertices, faces, orient_outward)
    if backend == "cuda":
        return CudaBvhRayCaster(vertices, faces, orient_outward)
    if backend != "auto":
        raise ValueError(f"unknown ray-casting backend {backend!r}; expected 'auto', 'open3d' or 'cuda'")
    tracer_module = load_cuda_bvh_module()
    if tracer_module is not None and len(faces) >= MIN_NUM_FACES:
        logger.info("Ray casting with the CUDA BVH backend.")
        return CudaBvhRayCaster(vertices, faces, orient_outward, tracer_module=tracer_module)
    return Open3dRayCaster(vertices, faces, orient_outward)
