"""nero-eval: NeRO's evaluation metrics for meshes, novel views, relit images and materials.

Subcommands (each writes a JSON file with ``--output`` and prints a one-line summary):

* ``shape``: Chamfer distance as NeRO measures it on GlossySynthetic (method.md §6.1), normal angle error, and Chamfer
  against a ground-truth mesh;
* ``nvs``: PSNR/SSIM(/LPIPS) of a trained run on its held-out images;
* ``relight``: PSNR/SSIM(/LPIPS) of relit images after the per-channel rescale of the relighting protocol;
* ``materials``: metallic/roughness/albedo mean absolute errors on the visible surface.

LPIPS is reported only when its backbone weights are already cached (``~/.cache/torch/hub/checkpoints``); nothing
is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Literal, Optional, Tuple

import tyro
from rich.console import Console

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.eval.chamfer import NERO_VOXEL_SIZE, ChamferDistance
from nero_nerfstudio.eval.image_metrics import LpipsNet, load_lpips
from nero_nerfstudio.utils.io import atomic_path

if TYPE_CHECKING:
    from nerfstudio.pipelines.base_pipeline import Pipeline

CONSOLE = Console(soft_wrap=True)
ERROR_CONSOLE = Console(stderr=True)


def write_json(path: Path, content: Dict[str, Any]) -> None:
    """Write ``content`` as indented JSON, atomically (an infinite PSNR is written as ``Infinity``)."""
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(json.dumps(content, indent=2) + "\n")


def _chamfer_json(distance: Optional[ChamferDistance]) -> Optional[float]:
    return None if distance is None else distance.chamfer


def _format(value: Optional[float], spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _summarised(report: Dict[str, Any], summary: str) -> Dict[str, Any]:
    """Print an evaluation's one-line ``summary`` and hand its ``report`` back."""
    CONSOLE.print(summary, highlight=False)
    return report


@dataclass
class EvalShape:
    """Chamfer distance (NeRO's GlossySynthetic protocol), normal error, and Chamfer against a GT mesh."""

    mesh: Path
    """Predicted mesh (.ply/.obj/.glb) in the scene's dataset frame (nero-export's default frame)."""
    data: Path
    """Scene folder (GlossySynthetic, GlossyReal or custom layout)."""
    gt_mesh: Optional[Path] = None
    """Ground-truth mesh or point-cloud .ply in the dataset frame (e.g. SCENE/gt/mesh.ply); adds chamfer_gt_mesh."""
    views: Literal["test", "all"] = "test"
    """test: NeRO's 32 test views (all views when the folder lacks some of them); all: every view."""
    output: Optional[Path] = None
    """JSON file to write."""
    voxel_size: float = NERO_VOXEL_SIZE
    """Voxel down-sampling of both point sets (NeRO: 0.01)."""
    num_mesh_samples: int = 100_000
    """Surface samples per mesh for chamfer_gt_mesh."""
    backend: Literal["auto", "open3d", "cuda"] = "auto"
    """Ray-casting backend."""

    def main(self) -> Dict[str, Any]:
        from nero_nerfstudio.eval.shape_metrics import evaluate_shape

        result = evaluate_shape(
            self.mesh, self.data, self.gt_mesh, self.views, self.voxel_size, self.num_mesh_samples, self.backend
        )
        for note in result.notes:
            CONSOLE.print(f"[yellow]{note}")
        report = {
            "chamfer": _chamfer_json(result.chamfer),
            "normal_error_deg": result.normal_error_deg,
            "chamfer_gt_mesh": _chamfer_json(result.chamfer_gt_mesh),
            "chamfer_details": dataclasses.asdict(result.chamfer) if result.chamfer else None,
            "chamfer_gt_mesh_details": dataclasses.asdict(result.chamfer_gt_mesh) if result.chamfer_gt_mesh else None,
            "num_gt_points": result.num_gt_points,
            "num_pred_points": result.num_pred_points,
            "voxel_size": self.voxel_size,
            "views": result.view_names,
            "mesh": str(self.mesh),
            "data": str(self.data),
            "notes": result.notes,
        }
        return _summarised(
            report,
            f"{self.mesh.stem}: chamfer {_format(report['chamfer'], '.5f')}, "
            f"normal error {_format(report['normal_error_deg'], '.2f')} deg, "
            f"chamfer vs GT mesh {_format(report['chamfer_gt_mesh'], '.5f')}",
        )


def load_eval_pipeline(config_path: Path) -> Tuple[Pipeline, int]:
    """The run's pipeline with its held-out ("test") images loaded and its latest checkpoint; ``(pipeline, step)``."""
    from nero_nerfstudio.utils.run_loading import load_pipeline

    pipeline, _, step = load_pipeline(config_path, test_mode="test")
    return pipeline, step


@dataclass
class EvalNovelViews:
    """PSNR/SSIM(/LPIPS) of a trained run on the held-out images of its data split."""

    load_config: Path
    """The run's config.yml (the latest checkpoint next to it is used)."""
    output: Optional[Path] = None
    """JSON file to write."""
    lpips_net: LpipsNet = "alex"
    """LPIPS backbone (nerfstudio reports AlexNet)."""

    def main(self) -> Dict[str, Any]:
        from nero_nerfstudio.eval.novel_view_metrics import evaluate_novel_views

        pipeline, step = load_eval_pipeline(self.load_config)
        datamanager: Any = pipeline.datamanager
        split_mode = getattr(getattr(datamanager.config, "dataparser", None), "split_mode", None)
        if split_mode == "validation":
            CONSOLE.print(
                "[yellow]The run used NeRO's validation split: one held-out image. For the 96/32 split, train with "
                "'ns-train nero-shape --data SCENE nero-synthetic --split-mode test'."
            )
        lpips = load_lpips(self.lpips_net)
        result = evaluate_novel_views(pipeline.model, datamanager.eval_dataset, pipeline.device, lpips)
        report = {
            "psnr": result.psnr,
            "ssim": result.ssim,
            "lpips": result.lpips,
            "num_images": len(result.per_view),
            "step": step,
            "split_mode": split_mode,
            "per_view": result.per_view,
            "load_config": str(self.load_config),
        }
        return _summarised(
            report,
            f"{len(result.per_view)} held-out images (step {step}): PSNR {result.psnr:.2f} dB, "
            f"SSIM {result.ssim:.4f}, LPIPS {_format(result.lpips, '.4f')}",
        )


@dataclass
class EvalRelight:
    """Relit images against ground truth: per-channel least-squares rescale, then PSNR/SSIM(/LPIPS)."""

    pred: Path
    """Folder of predicted relit images (<name>.png; RGBA is composited over --background)."""
    gt: Path
    """Folder of ground-truth images with the same file names (RGBA composited over --background)."""
    num_views: int = 16
    """Score the first N common views (natural file-name order)."""
    background: Literal["white", "black"] = "white"
    output: Optional[Path] = None
    """JSON file to write."""
    lpips_net: LpipsNet = "vgg"
    """LPIPS backbone (the relighting protocol uses VGG)."""

    def main(self) -> Dict[str, Any]:
        from nero_nerfstudio.eval.relight_metrics import evaluate_relight, matched_views

        views = matched_views(self.pred, self.gt, self.num_views)  # fail on bad folders before LPIPS loads
        if len(views) < self.num_views:
            CONSOLE.print(
                f"[bold yellow]{self.pred}: scoring {len(views)} of the {self.num_views} views asked for (--num-views): "
                f"only {len(views)} image name(s) are in both it and {self.gt}",
                highlight=False,
            )
        result = evaluate_relight(self.pred, self.gt, self.num_views, self.background, load_lpips(self.lpips_net))
        report = {
            "psnr": result.scaled.psnr,
            "ssim": result.scaled.ssim,
            "lpips": result.scaled.lpips,
            "unscaled": dataclasses.asdict(result.unscaled),
            "num_views": len(result.views),
            "num_views_asked": self.num_views,
            "background": self.background,
            "per_view": result.per_view,
            "pred": str(self.pred),
            "gt": str(self.gt),
        }
        return _summarised(
            report,
            f"{len(result.views)} views, rescaled: PSNR {result.scaled.psnr:.2f} dB, SSIM {result.scaled.ssim:.4f}, "
            f"LPIPS {_format(result.scaled.lpips, '.4f')} (unscaled PSNR {result.unscaled.psnr:.2f} dB)",
        )


@dataclass
class EvalMaterials:
    """Metallic/roughness/albedo mean absolute errors on the mesh vertices the cameras see."""

    mesh: Path
    """The mesh the materials belong to (one material row per vertex, file order), in the dataset frame."""
    mesh_materials: Path
    """NeRO material folder: metallic.npy, roughness.npy, albedo.npy (sRGB-encoded, as NeRO exports them)."""
    data: Path
    """Scene folder with gt/scene.json (made by nero-render-scene)."""
    output: Optional[Path] = None
    """JSON file to write."""
    backend: Literal["auto", "open3d", "cuda"] = "auto"
    """Ray-casting backend for the visibility test."""

    def main(self) -> Dict[str, Any]:
        from nero_nerfstudio.eval.material_metrics import (
            ground_truth_material,
            material_errors,
            mean_material,
            visible_vertices,
        )
        from nero_nerfstudio.utils.mesh_io import load_triangle_mesh
        from nero_nerfstudio.eval.scene_views import load_scene_info, load_scene_views
        from nero_nerfstudio.raycasting.factory import make_ray_caster
        from nero_nerfstudio.relight.material_inputs import load_nero_materials

        mesh = load_triangle_mesh(self.mesh)
        materials = load_nero_materials(self.mesh_materials, len(mesh.vertices))
        ground_truth = ground_truth_material(load_scene_info(self.data), self.data / "gt" / "scene.json")
        caster = make_ray_caster(mesh.vertices, mesh.faces, backend=self.backend)
        visible = visible_vertices(caster, load_scene_views(self.data, "all"))
        if not visible.any():
            raise NeroDataError(self.mesh, "no vertex is seen by any camera of the scene (wrong frame?)")
        errors = material_errors(materials, ground_truth, visible)
        report = {
            **errors,
            "num_visible_vertices": int(visible.sum()),
            "num_vertices": int(visible.size),
            "predicted_mean": mean_material(materials, visible),
            "ground_truth": {
                "metallic": float(ground_truth.metallic),
                "roughness": float(ground_truth.roughness),
                "albedo": [float(value) for value in ground_truth.albedo],
            },
            "mesh": str(self.mesh),
            "mesh_materials": str(self.mesh_materials),
            "data": str(self.data),
        }
        return _summarised(
            report,
            f"{int(visible.sum())}/{visible.size} visible vertices: metallic MAE {errors['metallic_mae']:.4f}, "
            f"roughness MAE {errors['roughness_mae']:.4f}, albedo MAE {errors['albedo_mae']:.4f}",
        )


EVALUATIONS: Dict[str, type] = {
    "shape": EvalShape,
    "nvs": EvalNovelViews,
    "relight": EvalRelight,
    "materials": EvalMaterials,
}
"""Subcommand name -> evaluation dataclass."""


def run(evaluation: Any) -> Dict[str, Any]:
    """Run one evaluation, write its JSON if asked, and return the report."""
    report = evaluation.main()
    if evaluation.output is not None:
        write_json(evaluation.output, report)
        CONSOLE.print(f"Wrote {evaluation.output}", highlight=False)
    return report


def entrypoint() -> None:
    """Console-script entry point: parse the subcommand, run it, and turn bad input into a one-line error."""
    evaluation = tyro.extras.subcommand_cli_from_dict(EVALUATIONS, description=__doc__.split("\n\n")[0])
    try:
        run(evaluation)
    except (NeroDataError, ValueError) as error:  # bad files or bad settings: one line, no traceback
        ERROR_CONSOLE.print(f"[bold red]nero-eval: {error}", soft_wrap=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    entrypoint()
