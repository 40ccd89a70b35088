"""Material accuracy of an exported per-vertex material set on the surface the cameras see.

Ground truth is the constant material of a ``nero-render-scene`` scene (``gt/scene.json``: metallic, roughness =
Blender's perceptual roughness = sqrt of GGX alpha, linear albedo). The prediction is NeRO's material folder
(sRGB-encoded ``.npy`` files, decoded by :func:`load_nero_materials`). Only vertices seen by at least one camera
count: the back of an object no view sees has no data to fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.eval.scene_views import SceneView
from nero_nerfstudio.raycasting.base import MeshRayCaster
from nero_nerfstudio.relight.material_inputs import VertexMaterials
from nero_nerfstudio.utils.progress import counting_progress

# A vertex is visible if the first hit along the ray towards it lies no closer than this fraction of the mesh's
# bounding-box diagonal in front of it (the ray hits the vertex itself or a face sharing it).
VISIBILITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class GroundTruthMaterial:
    """A material that may be constant (scalars / one colour) or per vertex."""

    albedo: Float[np.ndarray, "*num_vertices 3"]
    """Linear RGB."""
    metallic: Float[np.ndarray, "*num_vertices"]
    roughness: Float[np.ndarray, "*num_vertices"]
    """Perceptual roughness (GGX alpha = roughness²)."""


def ground_truth_material(scene_info: Dict, source: Path) -> GroundTruthMaterial:
    """The constant material in a ``gt/scene.json`` dictionary; ``source`` names the file in errors."""
    try:
        albedo = np.asarray(scene_info["albedo"], dtype=np.float64)
        metallic = np.asarray(float(scene_info["metallic"]))
        roughness = np.asarray(float(scene_info["roughness"]))
    except (KeyError, TypeError, ValueError) as error:
        raise NeroDataError(source, f"expected numeric 'albedo' (3), 'metallic' and 'roughness' ({error!r})") from error
    if albedo.shape != (3,):
        raise NeroDataError(source, f"'albedo' must be three numbers, got {albedo.tolist()}")
    return GroundTruthMaterial(albedo=albedo, metallic=metallic, roughness=roughness)


def _visible_in_view(
    caster: MeshRayCaster, vertices: np.ndarray, view: SceneView, tolerance: float
) -> Bool[np.ndarray, "num_vertices"]:
    """Vertices inside the image of ``view``, in front of it, and not hidden by another part of the mesh."""
    rotation, translation = view.w2c[:3, :3], view.w2c[:3, 3]
    camera_points = vertices @ rotation.T + translation
    in_front = camera_points[:, 2] > 0
    pixels = camera_points @ view.intrinsics.T
    pixels = pixels[:, :2] / np.where(in_front, pixels[:, 2], 1.0)[:, None]
    in_image = in_front & np.all((pixels >= 0) & (pixels <= [view.width, view.height]), axis=-1)
    candidates = np.nonzero(in_image)[0]
    visible = np.zeros(len(vertices), dtype=bool)
    if len(candidates) == 0:
        return visible
    center = camera_centers(view.w2c)
    to_vertex = vertices[candidates] - center
    distance = np.linalg.norm(to_vertex, axis=-1)
    hits = caster.cast(
        torch.tensor(np.broadcast_to(center, to_vertex.shape), dtype=torch.float32),
        torch.tensor(to_vertex, dtype=torch.float32),
    )
    visible[candidates] = hits.hit_mask.numpy() & (hits.depth.numpy() >= distance - tolerance)
    return visible


def visible_vertices(caster: MeshRayCaster, views: Sequence[SceneView]) -> Bool[np.ndarray, "num_vertices"]:
    """Whether each vertex of the caster's mesh is seen by at least one of ``views``."""
    vertices = caster.vertices.astype(np.float64)
    tolerance = VISIBILITY_TOLERANCE * float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    visible = np.zeros(len(vertices), dtype=bool)
    with counting_progress() as progress:
        task = progress.add_task("Finding visible vertices", total=len(views))
        for view in views:
            visible |= _visible_in_view(caster, vertices, view, tolerance)
            progress.advance(task)
    return visible


def material_errors(
    predicted: VertexMaterials, ground_truth: GroundTruthMaterial, mask: Bool[np.ndarray, "num_vertices"]
) -> Dict[str, float]:
    """Mean absolute errors over the masked vertices (albedo: over vertices and channels, linear RGB).

    Returns:
        ``{"metallic_mae", "roughness_mae", "albedo_mae"}``.
    """
    if not mask.any():
        raise ValueError("no vertex selected: nothing to compare")

    def mae(prediction: np.ndarray, target: np.ndarray) -> float:
        target = np.broadcast_to(target, prediction.shape)
        return float(np.abs(prediction[mask] - target[mask]).mean())

    return {
        "metallic_mae": mae(predicted.metallic, ground_truth.metallic),
        "roughness_mae": mae(predicted.roughness, ground_truth.roughness),
        "albedo_mae": mae(predicted.albedo, ground_truth.albedo),
    }


def mean_material(predicted: VertexMaterials, mask: Bool[np.ndarray, "num_vertices"]) -> Dict[str, object]:
    """Mean predicted values over the masked vertices (reported next to the errors, to see their sign)."""
    return {
        "metallic": float(predicted.metallic[mask].mean()),
        "roughness": float(predicted.roughness[mask].mean()),
        "albedo": [float(value) for value in predicted.albedo[mask].mean(axis=0)],
    }

