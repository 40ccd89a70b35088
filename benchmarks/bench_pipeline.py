"""The whole NeRO pipeline on a suite of rendered glossy scenes, next to a NeuS-style baseline, in one command, and a
comparison of the Stage I presets.

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

The Stage I preset comparison runs first, on the same scenes plus a thin-part one (a glossy cow: legs, horns, ears,
tail; Stage I only): ``nero-shape-fast`` for ``--fast-time-budget-s`` of training time, ``nero-shape-small`` for its
``--small-steps``, the NeuS colour-MLP baseline on the fast preset's settings for the same budget, and with ``--full``
the paper's ``nero-shape`` for the same budget. Each records a Chamfer-vs-training-time curve (every
``--stage-one-curve-every-s``), its final mesh's Chamfer to the GT mesh, inference rays/s, peak RSS and steps/s. These
runs go one at a time on 2 torch threads (``--stage-one-workers``, ``--stage-one-threads``): the speed targets are for
an idle 2-core machine. The report (``RESULTS_stage_one.md``, with ``stage_one_presets.png``) derives from the curves
the fast/small Chamfer ratio at equal training time and the share of small's training time fast needs to match it.

Every stage is a child process (a console script, or ``nero_nerfstudio.scripts.bench_train`` for training), built
from the pipeline's stage table (``nero_nerfstudio/scripts/stages.py``), so its wall time and peak memory (sampled
from ``/proc``) are its own; ``--workers`` jobs of the pipeline run side by side (2 on a 2-core machine, one thread
each). Stages whose result file exists are reused, so an interrupted benchmark resumes. Writes
``benchmarks/RESULTS.md``, ``benchmarks/chamfer_vs_time.png``, ``benchmarks/relight_comparison.png``,
``benchmarks/RESULTS_stage_one.md`` and ``benchmarks/stage_one_presets.png``; ``--stage-one-only`` renders the scenes
and runs the Stage I comparison alone (about 2 hours on 2 cores), writing only the last two; ``--pipeline-only`` skips
that comparison (about an hour), writing only the first three::

    OMP_NUM_THREADS=1 python benchmarks/bench_pipeline.py --output-dir /tmp/nero_bench_pipeline
    python benchmarks/bench_pipeline.py --stage-one-only --output-dir /tmp/nero_bench_stage_one
    OMP_NUM_THREADS=1 python benchmarks/bench_pipeline.py --pipeline-only --output-dir /tmp/nero_bench_pipeline
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
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import tyro
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from nero_nerfstudio.configs.method_configs import SMALL_STEPS
from nero_nerfstudio.scripts.bench_train import (
    StageOnePreset,
    TrainSpec,
    bench_train_stage,
    check_material_overrides,
    marked_sections,
    replace_section,
    report_header,
)
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
    resolution: Optional[int] = None
    """Image width and height of the render (None: the benchmark's ``resolution``)."""


SCENES: Tuple[SceneSpec, ...] = (
    SceneSpec("mirror-bunny", "mirror-like metal", "bunny", "courtyard", 1.0, 0.05, (0.9, 0.9, 0.9)),
    SceneSpec("rough-gold-suzanne", "rough metal", "suzanne", "forest", 1.0, 0.45, (1.0, 0.77, 0.34)),
    SceneSpec("glossy-red-torus", "glossy dielectric", "torus", "city", 0.0, 0.15, (0.7, 0.08, 0.06)),
)
THIN_PART_SCENES: Tuple[SceneSpec, ...] = (
    SceneSpec("glossy-cow", "thin parts (legs, horns, ears, tail), glossy metal", "cow", "city", 1.0, 0.1, (0.9,) * 3),
)
"""Scenes of the Stage I preset comparison only (no Stage II, no relight)."""
ALL_SCENES = SCENES + THIN_PART_SCENES


@dataclass(frozen=True)
class StageOneRun:
    """One run of the Stage I preset comparison."""

    kind: str
    """Names the run's files, logs and rows."""
    label: str
    preset: StageOnePreset
    shading: Literal["split-sum", "neus-color"]
    time_budget: bool
    """Trained for ``fast_time_budget_s`` of training time; otherwise for all its steps."""


FAST_RUN = StageOneRun("nero-shape-fast", "nero-shape-fast", "fast", "split-sum", True)
SMALL_RUN = StageOneRun("nero-shape-small", "nero-shape-small", "small", "split-sum", False)
NEUS_FAST_RUN = StageOneRun("neus-color-fast", "NeuS colour MLP (fast settings)", "fast", "neus-color", True)
PAPER_RUN = StageOneRun("nero-shape", "nero-shape (paper)", "paper", "split-sum", True)
STAGE_ONE_RUNS = (FAST_RUN, SMALL_RUN, NEUS_FAST_RUN, PAPER_RUN)


@dataclass
class BenchPipelineConfig:
    """Full-pipeline benchmark settings (defaults, on 2 CPU cores: about two hours for the Stage I comparison, then
    about an hour for the pipeline)."""

    output_dir: Path = Path("/tmp/nero_bench_pipeline")
    """Scenes, runs, meshes, materials, relit images and logs; finished stages found here are reused."""
    results: Path = BENCHMARK_DIR / "RESULTS.md"
    """Markdown report (the plot and the relight comparison go next to it)."""
    scenes: Tuple[str, ...] = tuple(scene.name for scene in ALL_SCENES)
    """Which scenes of the suite to run (the thin-part ones only go through the Stage I comparison)."""
    num_views: int = 64
    resolution: int = 96
    """Image width and height of the rendered scenes."""
    render_samples: int = 32
    shape_steps: int = 600
    """Stage I steps of NeRO and of the baseline (the preset's schedule is rescaled to it)."""
    shape_rays: int = 512
    material_steps: int = 3000
    """Stage II steps (the small preset's own count; its schedule is rescaled to other counts)."""
    material_overrides: Tuple[str, ...] = ()
    """Stage II trainer settings as ``dotted.field=value`` (e.g. ``pipeline.model.estimator=nero``), to compare a
    variant of the method on the same scenes."""
    mesh_resolution: int = 192
    """Marching-cubes grid of the exported meshes."""
    curve_points: int = 5
    """Points of the Chamfer-vs-time curve after step 0."""
    curve_mesh_resolution: int = 96
    stage_one_only: bool = False
    """Only the renders and the Stage I preset comparison (no Stage II, no relight): writes ``stage_one_results`` and
    leaves ``results`` alone."""
    pipeline_only: bool = False
    """Skip the Stage I preset comparison (about 2 hours on 2 cores): the pipeline's scenes and the pipeline alone,
    writing ``results`` and leaving ``stage_one_results`` alone (to re-measure a Stage II change)."""
    stage_one_results: Path = BENCHMARK_DIR / "RESULTS_stage_one.md"
    """Report of the Stage I preset comparison (its plot, ``stage_one_presets.png``, goes next to it)."""
    fast_time_budget_s: float = 480.0
    """Training time of nero-shape-fast, of the NeuS colour baseline on its settings and (``--full``) of nero-shape."""
    fast_steps: Optional[int] = None
    """Steps nero-shape-fast's schedule is fitted to (None: the preset's own); the budget may end the run first."""
    small_steps: int = SMALL_STEPS
    """Steps of nero-shape-small in the comparison (all of them, no time budget)."""
    small_on_thin_scene: bool = True
    """Run nero-shape-small on the thin-part scene too."""
    paper_steps: Optional[int] = None
    """``--full``: steps nero-shape's schedule is fitted to (None: the paper's own), cut by the time budget."""
    stage_one_curve_every_s: float = 30.0
    """Training seconds between two Chamfer-vs-time points of the comparison."""
    stage_one_curve_mesh_resolution: int = 128
    """Marching-cubes grid of the comparison's curve points."""
    stage_one_workers: int = 1
    """Comparison runs side by side (one at a time: the targets are for an idle 2-core machine)."""
    stage_one_threads: int = 2
    """Torch threads of each comparison run."""
    relight_environment: str = "sunset"
    relight_views: int = 6
    relight_samples: int = 64
    texture_size: int = 512
    workers: int = 2
    """Pipeline jobs run side by side (each training run uses ``threads`` torch threads)."""
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

    def render(self, scene: SceneSpec, relight: bool) -> Dict[str, StageResult]:
        """The scene (``nero-render-scene``) and, with ``relight``, its ground-truth relit images; reused when
        present. Their measurements by row name."""
        config = self.config
        job = JobResult(scene=scene.name, kind="render")
        scene_dir = self.scene_dir(scene)
        resolution = config.resolution if scene.resolution is None else scene.resolution
        render = render_stage(
            scene_dir, scene.mesh, scene.environment, config.num_views, resolution, scene.metallic, scene.roughness,
            scene.albedo, samples=config.render_samples, denoise=True, seed=config.seed,
        )  # fmt: skip
        self.stage(job, render)
        measured = {"render (Blender)": job.stages["render"]}
        if relight:
            gt_materials = self.work_dir(scene) / "gt_materials"
            if not (gt_materials / "materials.json").exists():
                write_ground_truth_materials(scene_dir / "gt" / "mesh.ply", scene, gt_materials)
            self.stage(job, self.relight_stage(scene, gt_materials, "gt", stage_name="relight-gt"))
            measured["ground-truth relight (Blender)"] = job.stages["relight-gt"]
        self.update(job, "done")
        return measured

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

    def stage_one_runs(self, scene: SceneSpec) -> List[StageOneRun]:
        """The comparison's runs on ``scene``."""
        runs = [FAST_RUN, NEUS_FAST_RUN] + ([PAPER_RUN] if self.config.full else [])
        if scene in SCENES or self.config.small_on_thin_scene:
            runs.insert(1, SMALL_RUN)
        return runs

    def stage_one_steps(self, run: StageOneRun) -> int:
        """Steps the run's schedule is fitted to: ``small_steps``, or the fast/paper step setting (None: the
        preset's own count)."""
        from nero_nerfstudio.configs.method_configs import fast_trainer_config, paper_trainer_config

        config = self.config
        if run.preset == "small":
            return config.small_steps
        steps, preset = {"fast": (config.fast_steps, fast_trainer_config),
                         "paper": (config.paper_steps, paper_trainer_config)}[run.preset]  # fmt: skip
        return preset().max_num_iterations if steps is None else steps

    def stage_one_job(self, scene: SceneSpec, run: StageOneRun) -> JobResult:
        """One run of the Stage I comparison (curve every ``stage_one_curve_every_s`` of training) and the Chamfer of
        its final mesh to the GT mesh (``nero-eval shape``)."""
        config = self.config
        job = JobResult(scene=scene.name, kind=run.kind)
        work, scene_dir = self.work_dir(scene) / "stage_one", self.scene_dir(scene)
        mesh_path = work / f"mesh_{run.kind}.ply"
        spec = TrainSpec(
            kind="shape",
            shading=run.shading,
            preset=run.preset,
            scene=str(scene_dir),
            output_dir=str(work / "runs"),
            experiment=f"{scene.name}_{run.kind}",
            result_path=str(work / f"train_{run.kind}.json"),
            steps=self.stage_one_steps(run),
            threads=config.stage_one_threads,
            seed=config.seed,
            full=config.full,
            time_budget_s=config.fast_time_budget_s if run.time_budget else None,
            gt_mesh=str(scene_dir / "gt" / "mesh.ply"),
            curve_every_s=config.stage_one_curve_every_s,
            curve_mesh_resolution=config.stage_one_curve_mesh_resolution,
            mesh_resolution=config.mesh_resolution,
            mesh_path=str(mesh_path),
        )
        self.train(job, "train", "shape training", spec)
        shape_report = work / f"eval_shape_{run.kind}.json"
        self.report(job, "shape", eval_shape_stage(mesh_path, scene_dir, shape_report, name="eval shape"))
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
            overrides=list(config.material_overrides),
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

    def pipeline_scenes(self) -> List[SceneSpec]:
        """Scenes that go through the whole pipeline (none with ``stage_one_only``)."""
        return [] if self.config.stage_one_only else [s for s in SCENES if s.name in self.config.scenes]

    def stage_one_scenes(self) -> List[SceneSpec]:
        """Scenes of the Stage I preset comparison (none with ``pipeline_only``)."""
        return [] if self.config.pipeline_only else [s for s in ALL_SCENES if s.name in self.config.scenes]

    def render_all(self) -> Dict[str, Dict[str, StageResult]]:
        """Every selected scene, and the ground-truth relighting of the pipeline's scenes."""
        pipeline_scenes, stage_one_scenes = self.pipeline_scenes(), self.stage_one_scenes()
        renders = {}
        for scene in [s for s in ALL_SCENES if s in pipeline_scenes or s in stage_one_scenes]:
            relight = scene in pipeline_scenes
            CONSOLE.print(f"Rendering {scene.name}" + (" and its ground-truth relighting" if relight else ""))
            renders[scene.name] = self.render(scene, relight)
        return renders

    def run_jobs(self, jobs: List[Callable[[], JobResult]], workers: int) -> List[JobResult]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return [future.result() for future in [pool.submit(job) for job in jobs]]

    def run_stage_one(self) -> List[JobResult]:
        """The Stage I preset comparison, ``stage_one_workers`` runs at a time."""
        scenes = self.stage_one_scenes()
        jobs = [lambda s=s, r=r: self.stage_one_job(s, r) for s in scenes for r in self.stage_one_runs(s)]
        return self.run_jobs(jobs, self.config.stage_one_workers)

    def run_pipeline(self) -> List[JobResult]:
        """Stage I with the NeuS baselines, Stage II, relighting and their evaluations, ``workers`` jobs at a time."""
        scenes = self.pipeline_scenes()
        baselines = ["neus-color"] + (["neus-facto"] if importlib.util.find_spec("tinycudann") else [])
        # Longest jobs first, so that the short ones fill the gaps at the end.
        jobs: List[Callable[[], JobResult]] = [lambda s=s: self.shape_job(s, "split-sum") for s in scenes]
        jobs += [lambda s=s, b=b: self.shape_job(s, b) for b in baselines for s in scenes]
        jobs += [lambda s=s: self.material_job(s) for s in scenes]
        return self.run_jobs(jobs, self.config.workers)


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


def stage_rows(renders: Dict[str, Dict[str, StageResult]], results: List[JobResult]) -> List[str]:
    """Per-stage wall time and peak memory of each scene's NeRO pipeline."""
    rows = ["| scene | stage | wall time (s) | peak RSS (MiB) |", "| --- | --- | --- | --- |"]
    for scene in dict.fromkeys(result.scene for result in results):
        stages = list(renders[scene].items())
        for result in results:
            if result.scene == scene and result.kind == "split-sum":
                stages += [(name, stage) for name, stage in result.stages.items()]
        for name, stage in stages:
            reused = " (reused)" if stage.reused else ""
            rows.append(f"| {scene} | {name}{reused} | {stage.seconds:.1f} | {stage.peak_rss_mib:.0f} |")
    return rows


def plot_curves(results: List[JobResult], path: Path, labels: Dict[str, str]) -> None:
    """Chamfer to the GT mesh against training time, one panel per scene, one line per method (``labels`` by job
    kind)."""
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
            axis.plot(curve[finite, 1] / 60.0, curve[finite, 2], marker="o", markersize=3, label=labels[result.kind])
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


def relit_view(bench: Bench, scene: SceneSpec, name: str) -> np.ndarray:
    """The first relit test view in ``relit_<name>`` of the scene, RGBA composited on white: ``[H, W, 3]`` uint8."""
    from PIL import Image

    image = Image.open(bench.relit_dir(scene, name) / f"{bench.relight_view_ids(scene)[0]}.png").convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, image).convert("RGB"))


def relight_comparison(bench: Bench, scenes: List[SceneSpec], path: Path) -> None:
    """One relit view per scene: ground truth | pipeline | Stage II on the GT mesh."""
    from PIL import Image

    names = ("gt", "pipeline", "gt_mesh")
    rows = [np.concatenate([relit_view(bench, scene, name) for name in names], axis=1) for scene in scenes]
    temporary = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(np.concatenate(rows, axis=0)).save(temporary)
    os.replace(temporary, path)


def scene_table(scenes: List[SceneSpec]) -> List[str]:
    """The "Setup" heading and the table of the scenes' meshes, environments and materials."""
    return [
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
    ]


def write_markdown(
    config: BenchPipelineConfig,
    renders: Dict[str, Dict[str, StageResult]],
    results: List[JobResult],
    total_seconds: float,
    stage_one_seconds: float,
    command: str,
) -> None:
    scenes = [scene for scene in SCENES if scene.name in config.scenes]
    kinds = [kind for kind in ("split-sum", "neus-color", "neus-facto") if any(r.kind == kind for r in results)]
    preset_shape = "nero-shape (paper)" if config.full else "nero-shape-small"
    preset_material = "nero-material (paper)" if config.full else "nero-material-small"
    notes = sorted({note for r in results for note in r.reports.get("shape", {}).get("notes", [])})
    all_stages = [stage for scene in scenes for stage in renders[scene.name].values()] + [
        stage for result in results for stage in result.stages.values()
    ]
    num_stages, num_reused = len(all_stages), sum(stage.reused for stage in all_stages)
    stage_seconds = sum(stage.seconds for stage in all_stages)
    remark = (
        "The Stage I shader comparison at 1000 steps on one scene is in [RESULTS_shape.md](RESULTS_shape.md); the "
        "comparison of the Stage I presets "
        + ("(not run by this invocation, `--pipeline-only`)" if config.pipeline_only else "made by this run")
        + f" is in [{config.stage_one_results.name}]"
        f"({os.path.relpath(config.stage_one_results, config.results.parent)})."
    )
    lines = [
        *report_header(
            "Benchmark: the NeRO pipeline on rendered glossy scenes, next to a NeuS-style baseline",
            "benchmarks/bench_pipeline.py", command, remark=remark,
        ),  # fmt: skip
        *scene_table(scenes),
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
            ""
            if config.pipeline_only
            else f", of which {stage_one_seconds / 60:.1f} min for the Stage I preset comparison (run first, alone)"
        )
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
    text = "\n".join(lines)
    if config.results.is_file():
        # Sections that other benchmarks write into this report (bench_materials.py's sweep) outlive the rewrite.
        for name, content in marked_sections(config.results.read_text()).items():
            text = replace_section(text, name, content)
    temporary = config.results.with_name(f".{config.results.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, config.results)


# Stage I preset comparison report -----------------------------------------------------------------------------------
TARGET_CHAMFER_RATIO = 0.5
"""nero-shape-fast's Chamfer at its budget over nero-shape-small's at the same training time (issue #9)."""
TARGET_TIME_FRACTION = 1 / 3
"""Training time nero-shape-fast needs to reach nero-shape-small's final Chamfer, over small's training time."""
TARGET_FAST_MEAN_CHAMFER = 0.009
"""Mean over the benchmark scenes of nero-shape-fast's final-mesh Chamfer to the GT mesh."""
TARGET_FAST_SCENE_CHAMFER = 0.012
"""nero-shape-fast's final-mesh Chamfer on each benchmark scene."""
TARGET_PEAK_RSS_MIB = 4 * 1024
"""Peak resident memory of every comparison run."""

STAGE_ONE_LABELS = {run.kind: run.label for run in STAGE_ONE_RUNS}


def chamfer_at_time(curve: Sequence[Sequence[float]], seconds: float) -> float:
    """Chamfer of a ``[steps, training seconds, Chamfer]`` curve at ``seconds`` of training: linear between the
    points around it, the last point's after it (training has ended); ``inf`` between points of which one has no
    surface yet."""
    points = np.asarray(curve, dtype=np.float64)
    times, chamfers = points[:, 1], points[:, 2]
    if seconds >= times[-1]:
        return float(chamfers[-1])
    after = max(1, int(np.searchsorted(times, seconds, side="right")))
    weight = (seconds - times[after - 1]) / (times[after] - times[after - 1])
    if weight <= 0.0:
        return float(chamfers[after - 1])
    if not np.isfinite(chamfers[after - 1 : after + 1]).all():
        return float("inf")
    return float(chamfers[after - 1] + weight * (chamfers[after] - chamfers[after - 1]))


def time_to_chamfer(curve: Sequence[Sequence[float]], chamfer: float) -> Optional[float]:
    """Training seconds at which a ``[steps, training seconds, Chamfer]`` curve first gets to ``chamfer`` or below:
    linear between the first point at or below it and the one before (that point's time if the one before has no
    surface); None if it never does."""
    points = np.asarray(curve, dtype=np.float64)
    times, chamfers = points[:, 1], points[:, 2]
    reached = np.flatnonzero(chamfers <= chamfer)
    if len(reached) == 0:
        return None
    first = int(reached[0])
    if first == 0 or not np.isfinite(chamfers[first - 1]):
        return float(times[first])
    before = first - 1
    fraction = (chamfers[before] - chamfer) / (chamfers[before] - chamfers[first])
    return float(times[before] + fraction * (times[first] - times[before]))


@dataclass
class StageOneFigures:
    """What one scene's curves say about nero-shape-fast against nero-shape-small (None without a small run, or
    where fast never reached small's Chamfer)."""

    fast_seconds: float
    """Training time of fast at its end (its budget, or all its steps)."""
    fast_chamfer: float
    """Fast's curve at its end."""
    small_chamfer_same_time: Optional[float] = None
    """Small's curve at ``fast_seconds``."""
    chamfer_ratio: Optional[float] = None
    """``fast_chamfer / small_chamfer_same_time``."""
    small_seconds: Optional[float] = None
    """Training time of small's whole run."""
    small_chamfer: Optional[float] = None
    """Small's curve at its end."""
    fast_seconds_to_small: Optional[float] = None
    """Training time fast needed to get to ``small_chamfer``."""
    time_fraction: Optional[float] = None
    """``fast_seconds_to_small / small_seconds``."""
    time_fraction_above: Optional[float] = None
    """Where fast never got to ``small_chamfer``: ``fast_seconds / small_seconds``, which the fraction exceeds."""


def stage_one_figures(
    fast_curve: Sequence[Sequence[float]], small_curve: Optional[Sequence[Sequence[float]]]
) -> StageOneFigures:
    """The comparison's derived figures of one scene from its ``[steps, training seconds, Chamfer]`` curves."""
    figures = StageOneFigures(fast_seconds=float(fast_curve[-1][1]), fast_chamfer=float(fast_curve[-1][2]))
    if small_curve is None:
        return figures
    figures.small_chamfer_same_time = chamfer_at_time(small_curve, figures.fast_seconds)
    if np.isfinite(figures.small_chamfer_same_time) and figures.small_chamfer_same_time > 0:
        figures.chamfer_ratio = figures.fast_chamfer / figures.small_chamfer_same_time
    figures.small_seconds, figures.small_chamfer = float(small_curve[-1][1]), float(small_curve[-1][2])
    figures.fast_seconds_to_small = time_to_chamfer(fast_curve, figures.small_chamfer)
    if figures.fast_seconds_to_small is not None:
        figures.time_fraction = figures.fast_seconds_to_small / figures.small_seconds
    else:
        figures.time_fraction_above = figures.fast_seconds / figures.small_seconds
    return figures


def _met(value: Optional[float], target: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else ("yes" if value <= target else "**no**")


def _time_fraction(figures: StageOneFigures) -> Tuple[Optional[float], bool]:
    """The time fraction, or the bound it exceeds (then True) where fast never got to small's Chamfer."""
    if figures.time_fraction_above is not None:
        return figures.time_fraction_above, True
    return figures.time_fraction, False


def _job(jobs: List[JobResult], scene: str, kind: str) -> Optional[JobResult]:
    return next((job for job in jobs if job.scene == scene and job.kind == kind), None)


def _final_chamfer(job: Optional[JobResult]) -> Optional[float]:
    return None if job is None else job.reports["shape"]["chamfer_gt_mesh"]


def scene_figures(jobs: List[JobResult]) -> Dict[str, StageOneFigures]:
    """The derived figures of every scene with a fast run."""
    figures = {}
    for scene in dict.fromkeys(job.scene for job in jobs):
        fast, small = _job(jobs, scene, FAST_RUN.kind), _job(jobs, scene, SMALL_RUN.kind)
        if fast is not None:
            small_curve = None if small is None else small.reports["train"]["curve"]
            figures[scene] = stage_one_figures(fast.reports["train"]["curve"], small_curve)
    return figures


def target_rows(config: BenchPipelineConfig, jobs: List[JobResult]) -> List[str]:
    """Each target of issue #9 per benchmark scene and on their mean, with the measured value and whether it is
    met."""
    figures = scene_figures(jobs)
    benchmark = [scene.name for scene in SCENES if scene.name in figures]
    rows = ["| target | scene | measured | met |", "| --- | --- | --- | --- |"]

    def add(target: str, scene: str, value: Optional[float], limit: float, digits: int, above: bool = False) -> None:
        if above and value is not None:
            # Only a bound the measurement exceeds: missed once the bound is past the limit, unknown before.
            rows.append(f"| {target} | {scene} | > {_fmt(value, digits)} | {'**no**' if value >= limit else 'n/a'} |")
        else:
            rows.append(f"| {target} | {scene} | {_fmt(value, digits)} | {_met(value, limit)} |")

    def add_with_mean(target: str, values: Dict[str, Tuple[Optional[float], bool]], limit: float, digits: int) -> None:
        for scene, (value, above) in values.items():
            add(target, scene, value, limit, digits, above)
        mean = _mean([value for value, _ in values.values()])
        add(target, "**mean**", mean, limit, digits, any(above for _, above in values.values()))

    ratio = f"fast / small Chamfer at equal training time <= {TARGET_CHAMFER_RATIO:g}"
    ratios = {scene: (figures[scene].chamfer_ratio, False) for scene in benchmark}
    add_with_mean(ratio, ratios, TARGET_CHAMFER_RATIO, 3)
    fraction = (
        f"fast's time to small's {config.small_steps}-step Chamfer / small's time <= 1/{1 / TARGET_TIME_FRACTION:.0f}"
    )
    fractions = {scene: _time_fraction(figures[scene]) for scene in benchmark}
    add_with_mean(fraction, fractions, TARGET_TIME_FRACTION, 3)
    fast_chamfers = {scene: _final_chamfer(_job(jobs, scene, FAST_RUN.kind)) for scene in benchmark}
    for scene, value in fast_chamfers.items():
        add(f"fast final-mesh Chamfer <= {TARGET_FAST_SCENE_CHAMFER:g}", scene, value, TARGET_FAST_SCENE_CHAMFER, 4)
    mean_chamfer = _mean(list(fast_chamfers.values()))
    add(f"fast final-mesh Chamfer, mean <= {TARGET_FAST_MEAN_CHAMFER:g}", "**mean**", mean_chamfer,
        TARGET_FAST_MEAN_CHAMFER, 4)  # fmt: skip
    peak = max((job.stages["shape training"].peak_rss_mib for job in jobs), default=None)
    add(f"peak RSS of every run <= {TARGET_PEAK_RSS_MIB / 1024:g} GiB (MiB)", "all", peak, TARGET_PEAK_RSS_MIB, 0)
    return rows


def thin_part_lines(jobs: List[JobResult]) -> List[str]:
    """The final-mesh Chamfer of every run on each thin-part scene (no target), then a blank line; none without."""
    lines = []
    for scene in THIN_PART_SCENES:
        runs = [job for job in jobs if job.scene == scene.name]
        if runs:
            chamfers = ", ".join(f"{STAGE_ONE_LABELS[job.kind]} {_fmt(_final_chamfer(job))}" for job in runs)
            lines.append(f"* Thin-part scene {scene.name} (no target), final-mesh Chamfer to the GT mesh: {chamfers}.")
    return lines + [""] if lines else []


def comparison_rows(jobs: List[JobResult]) -> List[str]:
    """Per scene: fast at its end against small at the same time, and the time fast needed to reach small's end."""
    rows = [
        "| scene | fast training (s) | fast Chamfer (curve) | small Chamfer at that time | fast / small | "
        "small training (s) | small Chamfer (curve) | fast's time to it (s) | share of small's time |",
        "| --- |" + " --- |" * 8,
    ]
    for scene, f in scene_figures(jobs).items():
        thin = " (thin parts)" if scene in [s.name for s in THIN_PART_SCENES] else ""
        fraction, above = _time_fraction(f)
        reach = f"not in {_fmt(f.fast_seconds, 0)}" if above else _fmt(f.fast_seconds_to_small, 0)
        cells = [_fmt(f.fast_seconds, 0), _fmt(f.fast_chamfer), _fmt(f.small_chamfer_same_time),
                 _fmt(f.chamfer_ratio, 3), _fmt(f.small_seconds, 0), _fmt(f.small_chamfer), reach,
                 ("> " if above else "") + _fmt(fraction, 3)]  # fmt: skip
        rows.append(f"| {scene}{thin} | " + " | ".join(cells) + " |")
    return rows


STAGE_ONE_COLUMNS: List[Column] = [
    ("steps", lambda r: r.reports["train"]["steps"], 0),
    ("training (s)", lambda r: r.reports["train"]["train_seconds"], 0),
    ("steps/s", lambda r: r.reports["train"]["steps_per_second"], 2),
    ("Chamfer at the end (curve)", lambda r: r.reports["train"]["curve"][-1][2], 4),
    ("final-mesh Chamfer to GT mesh", _final_chamfer, 4),
    ("eval rays/s", lambda r: r.reports["train"]["eval_rays_per_second"], 0),
    ("peak RSS (MiB)", lambda r: r.stages["shape training"].peak_rss_mib, 0),
]


def stage_one_run_rows(jobs: List[JobResult]) -> List[str]:
    """Every comparison run, then per run kind the mean over the benchmark scenes and the thin-part scene's row."""
    kinds = [run.kind for run in STAGE_ONE_RUNS if any(job.kind == run.kind for job in jobs)]
    rows = [([job.scene, STAGE_ONE_LABELS[job.kind]], job) for job in jobs]
    table = markdown_table(["scene", "run"], STAGE_ONE_COLUMNS, rows)
    benchmark = {scene.name for scene in SCENES}
    for kind in kinds:
        of_kind = [job for job in jobs if job.kind == kind and job.scene in benchmark]
        if of_kind:
            means = [_fmt(_mean([get(job) for job in of_kind]), digits) for _, get, digits in STAGE_ONE_COLUMNS]
            table.append(f"| **mean (benchmark scenes)** | {STAGE_ONE_LABELS[kind]} | " + " | ".join(means) + " |")
    return table


def write_stage_one_markdown(
    config: BenchPipelineConfig, jobs: List[JobResult], planned_steps: Dict[str, int], seconds: float, command: str
) -> None:
    """``RESULTS_stage_one.md``: setup, targets, per-scene comparison, every run, and the plot. ``planned_steps``:
    the step count each run kind's schedule was fitted to."""
    scenes = [scene for scene in ALL_SCENES if scene.name in config.scenes]
    kinds = [run for run in STAGE_ONE_RUNS if any(job.kind == run.kind for job in jobs)]
    device = "CUDA" if config.full else "CPU"
    reused = sum(stage.reused for job in jobs for stage in job.stages.values())
    runs_text = {
        FAST_RUN.kind: "`nero-shape-fast` (split-sum shader)",
        SMALL_RUN.kind: "`nero-shape-small` (split-sum shader)"
        + ("" if config.small_on_thin_scene else ", not on the thin-part scene"),
        NEUS_FAST_RUN.kind: "the NeuS colour-MLP baseline on `nero-shape-fast`'s settings (NeuS's colour MLP instead "
        "of the split-sum shader, no occlusion loss)",
        PAPER_RUN.kind: "`nero-shape` (NeRO's published settings)",
    }
    budget = f", stopped after {config.fast_time_budget_s:g} s of training"
    lines = [
        *report_header(
            "Benchmark: Stage I presets (Chamfer against training time)", "benchmarks/bench_pipeline.py", command
        ),
        *scene_table(scenes),
        f"* Scenes: `nero-render-scene` GlossySynthetic layout, {config.num_views} views of "
        f"{config.resolution}x{config.resolution}, {config.render_samples} spp, denoised; NeRO's test ids below "
        f"{config.num_views} held out (`--split-mode test`).",
        "* Runs, each with its preset's own rays per step: "
        + "; ".join(
            f"{runs_text[run.kind]}, schedule fitted to {planned_steps[run.kind]} steps"
            + (budget if run.time_budget else "")
            for run in kinds
        )
        + ".",
        f"* {config.stage_one_workers} run(s) at a time, `torch.set_num_threads({config.stage_one_threads})` each, on "
        f"{device}; each run is its own process (peak RSS of that process). Training time is the sum of the step "
        "times (set-up, curve points and evaluation excluded).",
        f"* Chamfer-vs-time curve: every {config.stage_one_curve_every_s:g} s of training time and at the end, the "
        f"training clock stops and the SDF is meshed on a {config.stage_one_curve_mesh_resolution}^3 grid and compared "
        f"with the GT mesh. Final mesh: marching cubes on a {config.mesh_resolution}^3 grid, Chamfer to the GT mesh "
        "by `nero-eval shape`.",
        "* Derived figures (from the curves, linear between their points; a curve keeps its last value after its "
        "end): small's Chamfer at fast's end time, and the training time at which fast's curve first gets to small's "
        "final Chamfer. The absolute Chamfer targets use the final meshes. Eval rays/s: one held-out view rendered "
        "with `get_outputs_for_camera`, timed on the second of two renders.",
        f"* Wall time of the comparison (renders included): {seconds / 60:.1f} min"
        + (f"; {reused} of its stages were reused from an earlier invocation (their times are those measured then)"
           if reused else "")  # fmt: skip
        + ".",
        "",
        "## Targets (issue #9; for an idle 2-core machine)",
        "",
        *target_rows(config, jobs),
        "",
        *thin_part_lines(jobs),
        "## nero-shape-fast against nero-shape-small",
        "",
        *comparison_rows(jobs),
        "",
        "## Every run",
        "",
        *stage_one_run_rows(jobs),
        "",
        "![Chamfer to the GT mesh against training time, Stage I presets](stage_one_presets.png)",
        "",
    ]
    path = config.stage_one_results
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("\n".join(lines))
    os.replace(temporary, path)


RUN_CHOICES = frozenset(
    {"output_dir", "results", "scenes", "workers", "stage_one_only", "pipeline_only", "stage_one_results",
     "small_on_thin_scene"}
)
"""Settings of this benchmark that choose what runs or where reports go, not what a finished stage holds."""


def check_settings(config: Any, ignored: Collection[str] = RUN_CHOICES, writer: str = "bench_pipeline") -> None:
    """Finished stages are reused only under the settings that made them: refuse an output folder
    (``config.output_dir``) made otherwise. ``ignored``: the settings that do not change a finished stage."""
    settings_path = config.output_dir / "settings.json"

    def comparable(values: Any) -> Dict[str, Any]:
        return {k: v for k, v in json.loads(json.dumps(asdict(values), default=str)).items() if k not in ignored}

    settings = comparable(config)
    if settings_path.is_file():
        # A setting newer than the folder's settings file held its default there.
        previous = {**comparable(type(config)()), **json.loads(settings_path.read_text())}
        changed = sorted(k for k in settings if previous.get(k) != settings[k])
        if changed:
            raise SystemExit(
                f"{writer}: {config.output_dir} holds results made with other settings ({', '.join(changed)}); "
                "remove it or pick another --output-dir"
            )
    settings_path.write_text(json.dumps(settings, indent=2))


def set_unless_given(config: Any, values: Dict[str, Any]) -> None:
    """Set each field of ``values`` on ``config`` unless the command line gave its option (``--field-name``)."""
    given = {arg.split("=")[0] for arg in sys.argv[1:]}
    for name, value in values.items():
        if "--" + name.replace("_", "-") not in given:
            setattr(config, name, value)


def command_line(script: str) -> str:
    """The command that runs this benchmark as invoked (``script``: its path from the repository root)."""
    command = " ".join(["python", script, *map(shlex.quote, sys.argv[1:])])
    threads = os.environ.get("OMP_NUM_THREADS")
    return f"OMP_NUM_THREADS={threads} {command}" if threads else command


def main(config: BenchPipelineConfig) -> None:
    if config.full:
        from nero_nerfstudio.configs.material_configs import PAPER_STEPS as MATERIAL_PAPER_STEPS
        from nero_nerfstudio.configs.method_configs import PAPER_STEPS as SHAPE_PAPER_STEPS

        set_unless_given(config, {
            "shape_steps": SHAPE_PAPER_STEPS, "material_steps": MATERIAL_PAPER_STEPS, "num_views": 128,
            "resolution": 512, "mesh_resolution": 512, "curve_mesh_resolution": 256,
            "stage_one_curve_mesh_resolution": 256, "relight_samples": 256, "workers": 1,
        })  # fmt: skip
    unknown = set(config.scenes) - {scene.name for scene in ALL_SCENES}
    if unknown:
        names = [scene.name for scene in ALL_SCENES]
        raise SystemExit(f"bench_pipeline: unknown scene(s) {sorted(unknown)}; choose from {names}")
    if not config.stage_one_only and not set(config.scenes) & {scene.name for scene in SCENES}:
        raise SystemExit(
            f"bench_pipeline: the pipeline needs one of {[s.name for s in SCENES]} (thin-part scenes only go through "
            "the Stage I comparison: add --stage-one-only)"
        )
    if config.stage_one_only and config.pipeline_only:
        raise SystemExit("bench_pipeline: --stage-one-only and --pipeline-only exclude each other")
    try:
        check_material_overrides(config.material_overrides, config.full)
    except ValueError as error:
        raise SystemExit(f"bench_pipeline: {error}") from None
    config.output_dir = config.output_dir.resolve()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    check_settings(config)
    command = command_line("benchmarks/bench_pipeline.py")
    start = time.perf_counter()
    bench = Bench(config)
    renders = bench.render_all()
    with bench.progress:
        stage_one = bench.run_stage_one()
        stage_one_seconds = time.perf_counter() - start
        results = [] if config.stage_one_only else bench.run_pipeline()
    total_seconds = time.perf_counter() - start
    (config.output_dir / "results.json").write_text(
        json.dumps({"renders": {k: {name: asdict(s) for name, s in v.items()} for k, v in renders.items()},
                    "stage_one_jobs": [asdict(r) for r in stage_one], "jobs": [asdict(r) for r in results]},
                   indent=2)  # fmt: skip
    )
    if not config.pipeline_only:
        planned_steps = {run.kind: bench.stage_one_steps(run) for run in STAGE_ONE_RUNS}
        plot_curves(stage_one, config.stage_one_results.parent / "stage_one_presets.png", STAGE_ONE_LABELS)
        write_stage_one_markdown(config, stage_one, planned_steps, stage_one_seconds, command)
        CONSOLE.print(f"Wrote {config.stage_one_results} and stage_one_presets.png")
    if config.stage_one_only:
        return
    plot_curves(results, config.results.parent / "chamfer_vs_time.png", KIND_LABELS)
    relight_comparison(bench, bench.pipeline_scenes(), config.results.parent / "relight_comparison.png")
    write_markdown(config, renders, results, total_seconds, stage_one_seconds, command)
    CONSOLE.print(f"Wrote {config.results}, chamfer_vs_time.png and relight_comparison.png")


if __name__ == "__main__":
    main(tyro.cli(BenchPipelineConfig))
