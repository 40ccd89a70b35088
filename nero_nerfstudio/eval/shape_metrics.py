"""Shape evaluation of a predicted mesh against a scene: NeRO's depth-map Chamfer, normal error, GT-mesh Chamfer.

* ``chamfer`` (method.md §6.1, GlossySynthetic only): GT points are the test views' depth maps lifted to 3D; predicted
  points are the predicted mesh ray-cast into the same views (instead of NeRO's OpenGL rasterisation) and lifted
  the same way; both voxel-downsampled at 0.01; symmetric mean nearest-neighbour distance. Only surfaces seen by
  the views count, so hidden interior junk is not penalised.
* ``normal_error_deg``: mean angle between the predicted mesh's face normals and ``gt/<k>-normal.npy`` at the
  pixels of the same views where both see the object.
* ``chamfer_gt_mesh``: Chamfer against a ground-truth mesh (:func:`mesh_chamfer_distance`) or point cloud
  (:func:`mesh_to_points_chamfer_distance`), in the normalised frame.

The predicted mesh and the ground truth are expected in the scene's dataset frame (what ``nero-export mesh``
writes by default); for GlossySynthetic that is also the normalised frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
from jaxtyping import Float

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.splits import SYNTHETIC_TEST_IDS
from nero_nerfstudio.eval.chamfer import (
    NERO_VOXEL_SIZE,
    ChamferDistance,
    chamfer_distance,
    mesh_chamfer_distance,
    mesh_to_points_chamfer_distance,
    voxel_downsample,
)
from nero_nerfstudio.eval.mesh_loading import load_ground_truth_geometry
from nero_nerfstudio.eval.scene_views import (
    SceneView,
    ViewSelection,
    dataset_to_normalized_scale,
    load_synthetic_views,
    scene_layout,
)
from nero_nerfstudio.eval.view_geometry import backproject_depth, cast_view, normal_angular_error_deg
from nero_nerfstudio.raycasting.factory import RayCasterBackend, make_ray_caster
from nero_nerfstudio.utils.mesh_io import load_triangle_mesh
from nero_nerfstudio.utils.progress import counting_progress
from nero_nerfstudio.utils.synthetic_io import load_depth_and_mask


@dataclass
class ShapeEvaluation:
    """Everything ``nero-eval shape`` reports."""

    chamfer: Optional[ChamferDistance] = None
    """NeRO's depth-map Chamfer; None without depth maps."""
    normal_error_deg: Optional[float] = None
    """Mean normal angle error; None without ``gt/<k>-normal.npy`` files."""
    chamfer_gt_mesh: Optional[ChamferDistance] = None
    """Mesh-to-mesh Chamfer in the normalised frame; None without a GT mesh."""
    view_names: List[str] = field(default_factory=list)
    """Views the depth-map metrics used."""
    num_gt_points: int = 0
    """GT points after voxel down-sampling."""
    num_pred_points: int = 0
    """Predicted points after voxel down-sampling."""
    notes: List[str] = field(default_factory=list)
    """Why a metric was not computed, which views were used, etc."""


@dataclass
class DepthMapComparison:
    """Point sets and normal errors gathered over the views."""

    gt_points: np.ndarray
    """``[N, 3]`` lifted GT depth (before down-sampling)."""
    pred_points: np.ndarray
    """``[M, 3]`` lifted predicted depth (before down-sampling)."""
    normal_errors_deg: Optional[np.ndarray]
    """``[K]`` per-pixel angles over views with GT normals, or None if no view has them."""


def compare_with_depth_maps(
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    views: List[SceneView],
    gt_dir: Optional[Path],
    backend: RayCasterBackend = "auto",
) -> DepthMapComparison:
    """Lift GT depth maps and the ray-cast predicted mesh to points, and compare normals, over ``views``.

    Args:
        pred_vertices: ``[V, 3]`` predicted mesh, dataset frame.
        pred_faces: ``[F, 3]``.
        views: views with ``depth_path`` set.
        gt_dir: folder with ``<name>-normal.npy`` (may be absent).
        backend: ray-casting backend.
    """
    caster = make_ray_caster(pred_vertices, pred_faces, backend=backend)
    gt_points, pred_points, normal_errors = [], [], []
    with counting_progress() as progress:
        task = progress.add_task("Casting the mesh into the views", total=len(views))
        for view in views:
            assert view.depth_path is not None
            gt_depth, gt_mask = load_depth_and_mask(view.depth_path)
            if gt_depth.shape != (view.height, view.width):
                raise NeroDataError(view.depth_path, f"depth is {gt_depth.shape}, the image {view.height}x{view.width}")
            gt_points.append(backproject_depth(gt_depth, gt_mask, view.w2c, view.intrinsics))
            pred_depth, pred_normals = cast_view(caster, view.w2c, view.intrinsics, view.width, view.height)
            pred_mask = np.isfinite(pred_depth)
            pred_points.append(backproject_depth(pred_depth, pred_mask, view.w2c, view.intrinsics))
            normal_path = gt_dir / f"{view.name}-normal.npy" if gt_dir is not None else None
            if normal_path is not None and normal_path.is_file():
                gt_normals = np.load(normal_path).astype(np.float64)
                expected_shape = (view.height, view.width, 3)
                if gt_normals.shape != expected_shape:
                    raise NeroDataError(
                        normal_path, f"expected shape {list(expected_shape)}, got {list(gt_normals.shape)}"
                    )
                both = pred_mask & (np.linalg.norm(gt_normals, axis=-1) > 0.5)
                normal_errors.append(normal_angular_error_deg(pred_normals[both], gt_normals[both]))
            progress.advance(task)
    return DepthMapComparison(
        gt_points=np.concatenate(gt_points),
        pred_points=np.concatenate(pred_points),
        normal_errors_deg=np.concatenate(normal_errors) if normal_errors else None,
    )


def frame_mismatch(pred_points: Float[np.ndarray, "N 3"], gt_points: Float[np.ndarray, "M 3"]) -> Optional[str]:
    """Why the two point sets cannot be one object in one frame, or None: bounding boxes that do not overlap, or
    whose diagonals differ more than 2x (a mesh exported in the normalised frame, or another scene's)."""
    pred_low, pred_high = pred_points.min(axis=0), pred_points.max(axis=0)
    gt_low, gt_high = gt_points.min(axis=0), gt_points.max(axis=0)
    if np.any(pred_low > gt_high) or np.any(gt_low > pred_high):
        return "its bounding box does not overlap the ground truth's"
    ratio = float(np.linalg.norm(pred_high - pred_low) / max(np.linalg.norm(gt_high - gt_low), 1e-12))
    if not 0.5 <= ratio <= 2.0:
        return f"its bounding box is {ratio:.3g}x the size of the ground truth's"
    return None


def evaluate_shape(
    mesh_path: Path,
    scene_dir: Path,
    gt_mesh_path: Optional[Path] = None,
    view_selection: ViewSelection = "test",
    voxel_size: float = NERO_VOXEL_SIZE,
    num_mesh_samples: int = 100_000,
    backend: RayCasterBackend = "auto",
) -> ShapeEvaluation:
    """Run every shape metric the scene allows (see the module docstring)."""
    pred_mesh = load_triangle_mesh(mesh_path)
    result = ShapeEvaluation()
    if scene_layout(scene_dir) == "synthetic":
        views = load_synthetic_views(scene_dir, view_selection)
        if view_selection == "test" and {view.name for view in views} != set(SYNTHETIC_TEST_IDS):
            result.notes.append(f"the scene lacks some of NeRO's 32 test views; used all {len(views)} views")
        with_depth = [view for view in views if view.depth_path is not None]
        if with_depth:
            comparison = compare_with_depth_maps(
                pred_mesh.vertices, pred_mesh.faces, with_depth, scene_dir / "gt", backend
            )
            result.view_names = [view.name for view in with_depth]
            if len(comparison.pred_points) == 0:
                raise NeroDataError(mesh_path, "the mesh is not seen by any evaluation view (wrong frame?)")
            if len(comparison.gt_points) == 0:
                raise NeroDataError(scene_dir, "the depth maps contain no foreground pixel (depth < 14.5)")
            gt_points = voxel_downsample(comparison.gt_points, voxel_size)
            pred_points = voxel_downsample(comparison.pred_points, voxel_size)
            result.chamfer = chamfer_distance(pred_points, gt_points)
            result.num_gt_points, result.num_pred_points = len(gt_points), len(pred_points)
            if comparison.normal_errors_deg is not None and len(comparison.normal_errors_deg) > 0:
                result.normal_error_deg = float(comparison.normal_errors_deg.mean())
            else:
                result.notes.append("no gt/<k>-normal.npy files: normal error not computed")
        else:
            result.notes.append("no <k>-depth.png files: depth-map Chamfer not computed")
    else:
        result.notes.append(
            "GlossyReal/custom scenes have no depth maps: only the Chamfer against a GT mesh (--gt-mesh) is computed"
        )
    if gt_mesh_path is not None:
        ground_truth = load_ground_truth_geometry(gt_mesh_path)
        gt_points = ground_truth if isinstance(ground_truth, np.ndarray) else np.asarray(ground_truth.vertices)
        mismatch = frame_mismatch(np.asarray(pred_mesh.vertices), gt_points)
        if mismatch is not None:
            result.notes.append(
                f"{mesh_path.name}: {mismatch}; is it in the scene's dataset frame (nero-export's default)? The "
                "Chamfer below compares two different places"
            )
        if isinstance(ground_truth, np.ndarray):
            distance = mesh_to_points_chamfer_distance(pred_mesh, ground_truth, num_mesh_samples)
        else:
            distance = mesh_chamfer_distance(pred_mesh, ground_truth, num_mesh_samples)
        result.chamfer_gt_mesh = distance.scaled(dataset_to_normalized_scale(scene_dir))
    if result.chamfer is None and result.chamfer_gt_mesh is None:
        raise NeroDataError(scene_dir, "; ".join(result.notes + ["nothing to evaluate: pass --gt-mesh"]))
    return result
