"""The whole NeRO pipeline on a suite of rendered glossy scenes, next to a NeuS-style baseline, in one command.

For each scene (a mirror-like metal, a rough metal and a glossy dielectric; different meshes and environments):

1. render it with the project's Blender generator (``nero-render-scene``, GlossySynthetic layout, exact ground truth),
   and the ground-truth relit images: the ground-truth mesh and material under another environment
   (``nero-relight --cameras-from``);
2. Stage I, ``nero-shape-small`` (split-sum shading), and the NeuS colour-MLP baseline with identical settings, each
   with a Chamfer-vs-training-time curve; meshes by marching cubes;
3. ``nero-eval shape`` (NeRO's depth-map Chamfer, normal error, Chamfer to the GT mesh) and ``nero-eval nvs`` on the
   held-out views of both;
4. Stage II, ``nero-material-small``, on the Stage I mesh (the pipeline) and on the ground-truth mesh (Stage II alone);
   ``nero-export materials``; ``nero-eval materials``; PSNR of re-rendered training views;
5. ``nero-relight`` of the pipeline's mesh and materials under the relight environment, ``nero-eval relight``
   against the ground-truth relit images.

Every stage is a child process (a console script, or ``nero_nerfstudio.scripts.bench_train`` for training), built
from the pipeline's stage table (``nero_nerfstudio/scripts/stages.py``), so its wall time and peak memory (sampled
from ``/proc``) are its own; ``--workers`` jobs run side by side (2 on a 2-core machine, one thread each). Stages whose
result file exists are reused, so an interrupted benchmark resumes. Writes ``benchmarks/RESULTS.md``,
``benchmarks/chamfer_vs_time.png`` and ``benchmarks/relight_comparison.png``::

    OMP_NUM_THREADS=1 python benchmarks/bench_pipeline.py --output-dir /tmp/nero_bench_pipeline
    python benchmarks/bench_pipeline.py --full --output-dir /tmp/nero_bench_full   # paper presets, on a GPU
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tyro
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from nero_nerfstudio.scripts.bench_train import TrainSpec, bench_train_stage, machine_description
from nero_nerfstudio.scripts.stages import (
    Stage,
    StageResult,
    eval_materials_stage,
    eval_nvs_stage,
    eval_relight_stage,
    eval_shape_stage,
    export_materials_stage,
    relight_views_stage,
    render_stage,
    run_measured_stage,
)

BENCHMARK_DIR = Path(__file__).resolve().parent
CONSOLE = Console()


@dataclass(frozen=True)
class SceneSpec:
    """One benchmark scene: mesh, material and environment of the render."""

    name: str
    description: str
    mesh: str
    environment: str
    metallic: float
    roughness: float
    """Blender's perceptual roughness."""
    albedo: Tuple[float, float, float]


SCENES: Tuple[SceneSpec, ...] = (
    SceneSpec("mirror-bunny", "mirror-like metal", "bunny", "courtyard", 1.0, 0.05, (0.9, 0.9, 0.9)),
    SceneSpec("rough-gold-suzanne", "rough metal", "suzanne", "forest", 1.0, 0.45, (1.0, 0.77, 0.34)),
    SceneSpec("glossy-red-torus", "glossy dielectric", "torus", "city", 0.0, 0.15, (0.7, 0.08, 0.06)),
)


@dataclass
class BenchPipelineConfig:
    """Full-pipeline benchmark settings (defaults: about an hour on 2 CPU cores)."""

    output_dir: Path = Path("/tmp/nero_bench_pipeline")
    """Scenes, runs, meshes, materials, relit images and logs; finished stages found here are reused."""
    results: Path = BENCHMARK_DIR / "RESULTS.md"
    """Markdown report (the plot and the relight comparison go next to it)."""
    scenes: Tuple[str, ...] = tuple(scene.name for scene in SCENES)
    """Which scenes of the suite to run."""
    num_views: int = 64
    resolution: int = 96
    """Image width and height of the rendered scenes."""
    render_samples: int = 32
    shape_steps: int = 600
    """Stage I steps of NeRO and of the baseline (the preset's schedule is rescaled to it)."""
    shape_rays: int = 512
    material_steps: int = 3000
    """Stage II steps (the small preset's own count; its schedule is rescaled to other counts)."""
    mesh_resolution: int = 192
    """Marching-cubes grid of the exported meshes."""
    curve_points: int = 5
    """Points of the Chamfer-vs-time curve after step 0."""
    curve_mesh_resolution: int = 96
    relight_environment: str = "sunset"
    relight_views: int = 6
    relight_samples: int = 64
    texture_size: int = 512
    workers: int = 2
    """Jobs run side by side (each training run uses ``threads`` torch threads)."""
    threads: int = 1
    seed: int = 0
    full: bool = False
    """Paper presets (nero-shape 300k steps, nero-material 100k) on CUDA, 128 views at 512 px; a GPU job."""


@dataclass
class JobResult:
    """Everything one job measured: its stages and the JSON reports of its evaluations and training runs."""

    scene: str
    kind: str
    stages: Dict[str, StageResult] = field(default_factory=dict)
    reports: Dict[str, Any] = field(default_factory=dict)


class Bench:
    """Runs the jobs of the benchmark and collects their results."""

    def __init__(self, config: BenchPipelineConfig) -> None:
        self.config = config
        self.root = config.output_dir
        self.progress = Progress(
            TextColumn("[bold]{task.description:<34}"),
            BarColumn(),
            TextColumn("{task.fields[stage]}"),
            TimeElapsedColumn(),
            console=CONSOLE,
        )
        self._lock = threading.Lock()
        self._tasks: Dict[str, int] = {}
        """Progress-bar task of each job."""

    # Paths ------------------------------------------------------------------------------------------------------
    def scene_dir(self, scene: SceneSpec) -> Path:
        return self.root / scene.name / "scene"

    def work_dir(self, scene: SceneSpec) -> Path:
        return self.root / scene.name

    # Stages -----------------------------------------------------------------------------------------------------
    def stage(self, job: JobResult, stage: Stage) -> None:
        """Run one stage as a measured child unless it is done; its timing is kept (and reused on a rerun)."""
        self.update(job, stage.name)
        log = self.root / job.scene / "logs" / f"{job.kind}_{stage.name}.log"
        job.stages[stage.name] = run_measured_stage(stage, log)

    def report(self, job: JobResult, key: str, stage: Stage) -> Dict[str, Any]:
        """Run a stage that ends with a JSON report (its last output) and keep the report as ``job.reports[key]``."""
        self.stage(job, stage)
        job.reports[key] = json.loads(stage.outputs[-1].read_text())
        return job.reports[key]

    def train(self, job: JobResult, key: str, name: str, spec: TrainSpec) -> Dict[str, Any]:
        """Run ``bench_train`` on ``spec`` unless its result exists; returns the result JSON."""
        spec.save()
        return self.report(job, key, bench_train_stage(spec, name))

    def render(self, scene: SceneSpec) -> Tuple[StageResult, StageResult]:
        """The scene (``nero-render-scene``) and its ground-truth relit images; reused when present."""
        config = self.config
        job = JobResult(scene=scene.name, kind="render")
        scene_dir = self.scene_dir(scene)
        render = render_stage(
            scene_dir, scene.mesh, scene.environment, config.num_views, config.resolution, scene.metallic,
            scene.roughness, scene.albedo, samples=config.render_samples, denoise=True, seed=config.seed,
        )  # fmt: skip
        self.stage(job, render)
        gt_materials = self.work_dir(scene) / "gt_materials"
        if not (gt_materials / "materials.json").exists():
            write_ground_truth_materials(scene_dir / "gt" / "mesh.ply", scene, gt_materials)
        self.stage(job, self.relight_stage(scene, gt_materials, "gt", stage_name="relight-gt"))
        self.update(job, "done")
        return job.stages["render"], job.stages["relight-gt"]

    def relit_dir(self, scene: SceneSpec, name: str) -> Path:
        return self.work_dir(scene) / f"relit_{name}"

    def relight_view_ids(self, scene: SceneSpec) -> List[str]:
        from nero_nerfstudio.core.splits import SYNTHETIC_TEST_IDS

        ids = [view for view in SYNTHETIC_TEST_IDS if int(view) < self.config.num_views]
        return ids[: self.config.relight_views]

    def relight_stage(self, scene: SceneSpec, materials: Path, name: str, stage_name: str = "relight") -> Stage:
        """``nero-relight`` of the materials in ``materials`` from the scene's test views, into ``relit_<name>``."""
        config = self.config
        return relight_views_stage(
            materials, config.relight_environment, self.relit_dir(scene, name), self.scene_dir(scene),
            self.relight_view_ids(scene), config.relight_samples, config.threads, name=stage_name,
        )  # fmt: skip

    def shape_job(self, scene: SceneSpec, kind: str) -> JobResult:
        """Stage I (``kind``: split-sum, neus-color or neus-facto), its mesh, shape and novel-view evaluations."""
        config = self.config
        job = JobResult(scene=scene.name, kind=kind)
        work, scene_dir = self.work_dir(scene), self.scene_dir(scene)
        mesh_path = work / f"mesh_{kind}.ply"
        spec = TrainSpec(
            kind="neus-facto" if kind == "neus-facto" else "shape",
            shading="neus-color" if kind == "neus-color" else "split-sum",
            scene=str(scene_dir),
            output_dir=str(work / "runs"),
            experiment=f"{scene.name}_{kind}",
            result_path=str(work / f"train_{kind}.json"),
            steps=config.shape_steps,
            num_rays=None if config.full else config.shape_rays,
            threads=config.threads,
            seed=config.seed,
            full=config.full,
            gt_mesh=str(scene_dir / "gt" / "mesh.ply"),
            curve_every=max(1, config.shape_steps // config.curve_points),
            curve_mesh_resolution=config.curve_mesh_resolution,
            mesh_resolution=config.mesh_resolution,
            mesh_path=str(mesh_path),
        )
        training = self.train(job, "train", "shape training", spec)
        shape_report = work / f"eval_shape_{kind}.json"
        self.report(job, "shape", eval_shape_stage(mesh_path, scene_dir, shape_report, name="eval shape"))
        nvs_report = work / f"eval_nvs_{kind}.json"
        self.report(job, "nvs", eval_nvs_stage(Path(training["config_path"]), nvs_report, name="eval nvs"))
        if kind == "split-sum":
            self.material_stages(job, scene, mesh_path, "pipeline")
        self.update(job, "done")
        return job

    def material_job(self, scene: SceneSpec) -> JobResult:
        """Stage II alone: materials on the ground-truth mesh."""
        job = JobResult(scene=scene.name, kind="material-gt-mesh")
        self.material_stages(job, scene, self.scene_dir(scene) / "gt" / "mesh.ply", "gt_mesh")
        self.update(job, "done")
        return job

    def material_stages(self, job: JobResult, scene: SceneSpec, mesh_path: Path, name: str) -> None:
        """Stage II on ``mesh_path``, material export and evaluation, relight and its evaluation."""
        config = self.config
        work, scene_dir = self.work_dir(scene), self.scene_dir(scene)
        spec = TrainSpec(
            kind="material",
            scene=str(scene_dir),
            output_dir=str(work / "runs"),
            experiment=f"{scene.name}_{name}",
            result_path=str(work / f"train_material_{name}.json"),
            steps=config.material_steps,
            threads=config.threads,
            seed=config.seed,
            full=config.full,
            mesh_path=str(mesh_path),
            panel_path=str(work / f"material_panel_{name}.png"),
        )
        training = self.train(job, "material_train", "material training", spec)
        materials = work / f"materials_{name}"
        load_config = Path(training["config_path"])
        self.stage(job, export_materials_stage(load_config, materials, config.texture_size, name="material export"))
        materials_report = work / f"eval_materials_{name}.json"
        evaluation = eval_materials_stage(materials, scene_dir, materials_report, name="eval materials")
        self.report(job, "materials", evaluation)
        self.stage(job, self.relight_stage(scene, materials, name))
        relight_report = work / f"eval_relight_{name}.json"
        relit, relit_gt = self.relit_dir(scene, name), self.relit_dir(scene, "gt")
        evaluation = eval_relight_stage(relit, relit_gt, config.relight_views, relight_report, name="eval relight")
        self.report(job, "relight", evaluation)

    # Progress ---------------------------------------------------------------------------------------------------
    def update(self, job: JobResult, stage: str) -> None:
        with self._lock:
            key = f"{job.scene} {job.kind}"
            if key not in self._tasks:
                self._tasks[key] = self.progress.add_task(key, total=1, stage=stage)
            self.progress.update(self._tasks[key], stage=stage, completed=1 if stage == "done" else 0)

    def run(self) -> Tuple[Dict[str, Tuple[StageResult, StageResult]], List[JobResult]]:
        scenes = [scene for scene in SCENES if scene.name in self.config.scenes]
        renders = {}
        for scene in scenes:
            CONSOLE.print(f"Rendering {scene.name} and its ground-truth relighting")
            renders[scene.name] = self.render(scene)
        baselines = ["neus-color"] + (["neus-facto"] if importlib.util.find_spec("tinycudann") else [])
        # Longest jobs first, so that the short ones fill the gaps at the end.
        jobs: List[Callable[[], JobResult]] = [lambda s=s: self.shape_job(s, "split-sum") for s in scenes]
        jobs += [lambda s=s, b=b: self.shape_job(s, b) for b in baselines for s in scenes]
        jobs += [lambda s=s: self.material_job(s) for s in scenes]
        with self.progress, ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            results = [future.result() for future in [pool.submit(job) for job in jobs]]
        return renders, results


def write_ground_truth_materials(mesh_path: Path, scene: SceneSpec, output_dir: Path) -> None:
    """NeRO's per-vertex material folder for the ground-truth mesh and the scene's constant material."""
    import torch

    from nero_nerfstudio.export.materials import export_vertex_materials
    from nero_nerfstudio.utils.mesh_io import load_triangle_mesh

    def constant_material(points: torch.Tensor) -> Dict[str, torch.Tensor]:
        ones = torch.ones(points.shape[0], 1)
        return {
            "metallic": ones * scene.metallic,
            "roughness": ones * scene.roughness,
            "albedo": ones * torch.tensor(scene.albedo, dtype=torch.float32),
        }

    export_vertex_materials(load_triangle_mesh(mesh_path), constant_material, output_dir)


# Report -------------------------------------------------------------------------------------------------------------
KIND_LABELS = {
    "split-sum": "NeRO",
    "neus-color": "NeuS colour MLP",
    "neus-facto": "neus-facto",
    "material-gt-mesh": "Stage II on GT mesh",
}


def _fmt(value: Optional[float], digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _mean(values: List[Optional[float]]) -> Optional[float]:
    finite = [value for value in values if value is not None and np.isfinite(value)]
    return float(np.mean(finite)) if len(finite) == len(values) and finite else None


Column = Tuple[str, Callable[["JobResult"], Optional[float]], int]
"""Header, how to read the value from a job's results, decimals."""


def markdown_table(first_headers: List[str], columns: List[Column], rows: List[Tuple[List[str], JobResult]]) -> List[str]:
    """A markdown table: the ``first_headers`` cells given per row, then one formatted cell per column."""
    lines = ["| " + " | ".join(first_headers + [name for name, _, _ in columns]) + " |"]
    lines.append("|" + " --- |" * (len(first_headers) + len(columns)))
    for first_cells, result in rows:
        lines.append("| " + " | ".join(first_cells + [_fmt(get(result), digits) for _, get, digits in columns]) + " |")
    return lines


SHAPE_COLUMNS: List[Column] = [
    ("Chamfer (NeRO protocol)", lambda r: r.reports["shape"]["chamfer"], 4),
    ("Chamfer to GT mesh", lambda r: r.reports["shape"]["chamfer_gt_mesh"], 4),
    ("normal error (deg)", lambda r: r.reports["shape"]["normal_error_deg"], 2),
    ("NVS PSNR (dB)", lambda r: r.reports["nvs"]["psnr"], 2),
    ("NVS SSIM", lambda r: r.reports["nvs"]["ssim"], 4),
    ("steps/s", lambda r: r.reports["train"]["steps_per_second"], 3),
    ("training (s)", lambda r: r.reports["train"]["train_seconds"], 0),
    ("peak RSS (MiB)", lambda r: r.stages["shape training"].peak_rss_mib, 0),
]

MATERIAL_COLUMNS: List[Column] = [
    ("metallic MAE", lambda r: r.reports["materials"]["metallic_mae"], 3),
    ("roughness MAE", lambda r: r.reports["materials"]["roughness_mae"], 3),
    ("albedo MAE", lambda r: r.reports["materials"]["albedo_mae"], 3),
    ("train-view PSNR (dB)", lambda r: r.reports["material_train"]["train_view_psnr"], 2),
    ("hit-pixel PSNR (dB)", lambda r: r.reports["material_train"]["train_view_psnr_hit"], 2),
    ("relight PSNR (dB)", lambda r: r.reports["relight"]["psnr"], 2),
    ("relight SSIM", lambda r: r.reports["relight"]["ssim"], 4),
    ("steps/s", lambda r: r.reports["material_train"]["steps_per_second"], 2),
    ("training (s)", lambda r: r.reports["material_train"]["train_seconds"], 0),
    ("peak RSS (MiB)", lambda r: r.stages["material training"].peak_rss_mib, 0),
]


def shape_rows(results: List[JobResult], kinds: List[str]) -> List[str]:
    """Shape and novel-view table: one row per scene and method, then the mean over scenes of each method."""
    rows = [
        ([result.scene, KIND_LABELS[kind]], result)
        for scene in dict.fromkeys(r.scene for r in results)
        for kind in kinds
        for result in results
        if result.scene == scene and result.kind == kind
    ]
    table = markdown_table(["scene", "method"], SHAPE_COLUMNS, rows)
    for kind in kinds:
        of_kind = [r for r in results if r.kind == kind]
        means = [_fmt(_mean([get(r) for r in of_kind]), digits) for _, get, digits in SHAPE_COLUMNS]
        table.append(f"| **mean** | {KIND_LABELS[kind]} | " + " | ".join(means) + " |")
    return table


def _mesh_label(result: JobResult) -> str:
    return "Stage I mesh" if result.kind == "split-sum" else "GT mesh"


def material_rows(results: List[JobResult]) -> List[str]:
    """Stage II table: material errors, re-rendered training views, relighting, speed and memory."""
    material_results = sorted((r for r in results if "material_train" in r.reports), key=lambda r: (r.scene, r.kind))
    return markdown_table(
        ["scene", "mesh"], MATERIAL_COLUMNS, [([r.scene, _mesh_label(r)], r) for r in material_results]
    )


def predicted_material_rows(results: List[JobResult]) -> List[str]:
    rows = ["| scene | mesh | metallic (GT) | roughness (GT) | albedo (GT) |", "| --- | --- | --- | --- | --- |"]
    for result in sorted((r for r in results if "materials" in r.reports), key=lambda r: (r.scene, r.kind)):
        report = result.reports["materials"]
        predicted, truth = report["predicted_mean"], report["ground_truth"]
        albedo = ", ".join(f"{v:.2f}" for v in predicted["albedo"])
        albedo_gt = ", ".join(f"{v:.2f}" for v in truth["albedo"])
        rows.append(
            f"| {result.scene} | {_mesh_label(result)} | {predicted['metallic']:.2f} ({truth['metallic']:.2f}) | "
            f"{predicted['roughness']:.2f} ({truth['roughness']:.2f}) | {albedo} ({albedo_gt}) |"
        )
    return rows


def stage_rows(renders: Dict[str, Tuple[StageResult, StageResult]], results: List[JobResult]) -> List[str]:
    """Per-stage wall time and peak memory of each scene's NeRO pipeline."""
    rows = ["| scene | stage | wall time (s) | peak RSS (MiB) |", "| --- | --- | --- | --- |"]
    for scene, (render, relight_gt) in renders.items():
        stages = [("render (Blender)", render), ("ground-truth relight (Blender)", relight_gt)]
        for result in results:
            if result.scene == scene and result.kind == "split-sum":
                stages += [(name, stage) for name, stage in result.stages.items()]
        for name, stage in stages:
            reused = " (reused)" if stage.reused else ""
            rows.append(f"| {scene} | {name}{reused} | {stage.seconds:.1f} | {stage.peak_rss_mib:.0f} |")
    return rows


def plot_curves(results: List[JobResult], path: Path) -> None:
    """Chamfer to the GT mesh against training time, one panel per scene, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in results if r.reports.get("train", {}).get("curve")]
    scenes = list(dict.fromkeys(r.scene for r in curves))
    figure, axes = plt.subplots(1, len(scenes), figsize=(4.5 * len(scenes), 3.6), squeeze=False)
    for axis, scene in zip(axes[0], scenes):
        for result in (r for r in curves if r.scene == scene):
            curve = np.asarray(result.reports["train"]["curve"], dtype=np.float64)
            finite = np.isfinite(curve[:, 2])
            axis.plot(curve[finite, 1] / 60.0, curve[finite, 2], marker="o", label=KIND_LABELS[result.kind])
        axis.set_title(scene)
        axis.set_xlabel("training time (min)")
        axis.set_ylabel("Chamfer to GT mesh")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    os.replace(temporary, path)


def relight_comparison(bench: Bench, scenes: List[SceneSpec], path: Path) -> None:
    """One relit view per scene: ground truth | pipeline | Stage II on the GT mesh (RGBA composited on white)."""
    from PIL import Image

    rows = []
    for scene in scenes:
        view = bench.relight_view_ids(scene)[0]
        tiles = []
        for name in ("gt", "pipeline", "gt_mesh"):
            image = Image.open(bench.relit_dir(scene, name) / f"{view}.png").convert("RGBA")
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            tiles.append(np.asarray(Image.alpha_composite(white, image).convert("RGB")))
        rows.append(np.concatenate(tiles, axis=1))
    temporary = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(np.concatenate(rows, axis=0)).save(temporary)
    os.replace(temporary, path)


def write_markdown(
    config: BenchPipelineConfig,
    renders: Dict[str, Tuple[StageResult, StageResult]],
    results: List[JobResult],
    total_seconds: float,
    command: str,
) -> None:
    scenes = [scene for scene in SCENES if scene.name in config.scenes]
    kinds = [kind for kind in ("split-sum", "neus-color", "neus-facto") if any(r.kind == kind for r in results)]
    preset_shape = "nero-shape (paper)" if config.full else "nero-shape-small"
    preset_material = "nero-material (paper)" if config.full else "nero-material-small"
    notes = sorted({note for r in results for note in r.reports.get("shape", {}).get("notes", [])})
    all_stages = [stage for pair in renders.values() for stage in pair] + [
        stage for result in results for stage in result.stages.values()
    ]
    num_stages, num_reused = len(all_stages), sum(stage.reused for stage in all_stages)
    stage_seconds = sum(stage.seconds for stage in all_stages)
    lines = [
        "# Benchmark: the NeRO pipeline on rendered glossy scenes, next to a NeuS-style baseline",
        "",
        f"Written by `benchmarks/bench_pipeline.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Numbers are "
        "as measured by that run; do not edit them by hand. The Stage I shader comparison at 1000 steps on one scene "
        "is in [RESULTS_shape.md](RESULTS_shape.md).",
        "",
        "## Command",
        "",
        "```bash",
        command,
        "```",
        "",
        "## Machine",
        "",
        *[f"* {key}: {value}" for key, value in machine_description().items()],
        "",
        "## Setup",
        "",
        "| scene | kind | mesh | training environment | metallic | roughness | albedo (linear) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *[
            f"| {s.name} | {s.description} | {s.mesh} | {s.environment} | {s.metallic} | {s.roughness} | "
            f"{', '.join(map(str, s.albedo))} |"
            for s in scenes
        ],
        "",
        f"* Scenes: `nero-render-scene` GlossySynthetic layout, {config.num_views} views of "
        f"{config.resolution}x{config.resolution}, {config.render_samples} spp, denoised; NeRO's test ids below "
        f"{config.num_views} held out (the 96/32 split restricted to these ids, `--split-mode test`).",
        f"* Stage I: `{preset_shape}`, schedule rescaled to {config.shape_steps} steps"
        + ("" if config.full else f", {config.shape_rays} rays per step")
        + ". Baseline: the same model with NeuS's colour MLP instead of the split-sum shader (no occlusion loss), "
        "everything else identical"
        + (", and nerfstudio's `neus-facto`" if "neus-facto" in kinds else "; nerfstudio's `neus-facto` needs "
           "tinycudann, which this machine lacks")
        + f". Meshes: marching cubes on a {config.mesh_resolution}^3 grid.",
        f"* Chamfer-vs-time curve: every {max(1, config.shape_steps // config.curve_points)} steps the training "
        f"clock stops and the SDF is meshed on a {config.curve_mesh_resolution}^3 grid and compared with the GT mesh.",
        f"* Stage II: `{preset_material}`, schedule rescaled to {config.material_steps} steps, on the Stage I mesh "
        "(the pipeline) and on the GT mesh (Stage II alone). Material errors: `nero-eval materials` (mean absolute "
        "error over the mesh vertices some camera sees; roughness is Blender's perceptual roughness; albedo linear). "
        "Train-view PSNR: 8 re-rendered training views, pixels that miss the mesh black in both images (NeRO's "
        "convention); hit-pixel PSNR over the pixels whose ray hits the mesh.",
        f"* Relight: `nero-relight` under `{config.relight_environment}` (not a training environment) from "
        f"{config.relight_views} test views, {config.relight_samples} spp; ground truth is the GT mesh with the GT "
        "material rendered the same way; `nero-eval relight` (per-channel least-squares scale, then PSNR/SSIM on a "
        "white background).",
        f"* {config.workers} jobs side by side, `torch.set_num_threads({config.threads})` each; each stage is its own "
        "process (wall time and peak RSS of that process).",
        f"* Wall time of this invocation: {total_seconds / 60:.1f} min"
        + (
            f"; {num_reused} of {num_stages} stages were reused from an earlier invocation of the same command "
            "(marked below), their times are those measured then"
            if num_reused
            else ""
        )
        + f". Sum of the wall times of all stages: {stage_seconds / 60:.1f} min (on {config.workers} workers).",
        "",
        "## Shape and novel views (Stage I)",
        "",
        *shape_rows(results, kinds),
        "",
        "![Chamfer to the GT mesh against training time](chamfer_vs_time.png)",
        "",
        "## Materials and relighting (Stage II)",
        "",
        *material_rows(results),
        "",
        "Mean predicted material over the visible vertices (ground truth in brackets):",
        "",
        *predicted_material_rows(results),
        "",
        "Relit test view, left to right: ground truth, the pipeline (Stage I mesh + Stage II materials), Stage II on "
        "the GT mesh; one row per scene.",
        "",
        "![Relighting](relight_comparison.png)",
        "",
        "## Wall time and peak memory of each stage (NeRO pipeline)",
        "",
        *stage_rows(renders, results),
        "",
    ]
    if notes:
        lines += ["Evaluation notes:", "", *[f"* {note}" for note in notes], ""]
    temporary = config.results.with_name(f".{config.results.name}.tmp")
    temporary.write_text("\n".join(lines))
    os.replace(temporary, config.results)


def check_settings(config: BenchPipelineConfig) -> None:
    """Finished stages are reused only under the settings that made them: refuse an output folder made otherwise."""
    settings_path = config.output_dir / "settings.json"
    ignored = {"output_dir", "results", "scenes", "workers"}
    settings = {k: v for k, v in json.loads(json.dumps(asdict(config), default=str)).items() if k not in ignored}
    if settings_path.is_file():
        previous = json.loads(settings_path.read_text())
        changed = sorted(k for k in settings if previous.get(k) != settings[k])
        if changed:
            raise SystemExit(
                f"bench_pipeline: {config.output_dir} holds results made with other settings ({', '.join(changed)}); "
                "remove it or pick another --output-dir"
            )
    settings_path.write_text(json.dumps(settings, indent=2))


def main(config: BenchPipelineConfig) -> None:
    given = {arg.split("=")[0] for arg in sys.argv[1:]}
    if config.full:
        from nero_nerfstudio.configs.material_configs import PAPER_STEPS as MATERIAL_PAPER_STEPS
        from nero_nerfstudio.configs.method_configs import PAPER_STEPS as SHAPE_PAPER_STEPS

        paper = {"--shape-steps": ("shape_steps", SHAPE_PAPER_STEPS),
                 "--material-steps": ("material_steps", MATERIAL_PAPER_STEPS),
                 "--num-views": ("num_views", 128), "--resolution": ("resolution", 512),
                 "--mesh-resolution": ("mesh_resolution", 512), "--curve-mesh-resolution": ("curve_mesh_resolution", 256),
                 "--relight-samples": ("relight_samples", 256), "--workers": ("workers", 1)}  # fmt: skip
        for option, (name, value) in paper.items():
            if option not in given:
                setattr(config, name, value)
    unknown = set(config.scenes) - {scene.name for scene in SCENES}
    if unknown:
        raise SystemExit(f"bench_pipeline: unknown scene(s) {sorted(unknown)}; choose from {[s.name for s in SCENES]}")
    config.output_dir = config.output_dir.resolve()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    check_settings(config)
    command = " ".join(["python", "benchmarks/bench_pipeline.py", *map(shlex.quote, sys.argv[1:])])
    if os.environ.get("OMP_NUM_THREADS"):
        command = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} {command}"
    start = time.perf_counter()
    bench = Bench(config)
    renders, results = bench.run()
    total_seconds = time.perf_counter() - start
    (config.output_dir / "results.json").write_text(
        json.dumps({"renders": {k: [asdict(s) for s in v] for k, v in renders.items()},
                    "jobs": [asdict(r) for r in results]}, indent=2)  # fmt: skip
    )
    scenes = [scene for scene in SCENES if scene.name in config.scenes]
    plot_curves(results, config.results.parent / "chamfer_vs_time.png")
    relight_comparison(bench, scenes, config.results.parent / "relight_comparison.png")
    write_markdown(config, renders, results, total_seconds, command)
    CONSOLE.print(f"Wrote {config.results}, chamfer_vs_time.png and relight_comparison.png")


if __name__ == "__main__":
    main(tyro.cli(BenchPipelineConfig))
