"""Stage I benchmark: NeRO's split-sum shading against a NeuS-style colour MLP on a glossy metal bunny.

One command renders the scene (Blender), trains ``nero-shape-small`` twice with identical settings (seed, rays,
steps, threads) except the shader, extracts each mesh by marching cubes and measures speed, memory and shape error.
Each training run is a child process, so its peak RSS is its own. Results go to the console and to
``benchmarks/RESULTS_shape.md`` (or ``--results``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_shape.py --steps 1000 --num-rays 512 --output-dir /tmp/bench_shape
    python benchmarks/bench_shape.py --full --output-dir /tmp/bench_shape_full   # paper preset, on a GPU
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import resource
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import torch
import tyro
from rich.console import Console
from rich.table import Table

from nero_nerfstudio.engine.step_timer import StepTimer
from nero_nerfstudio.scripts.bench_train import (
    report_header,
    quiet_trainer_config,
    start_trainer,
    training_progress,
)

Shading = Literal["split-sum", "neus-color"]
RUN_LABELS: Dict[str, str] = {"split-sum": "NeRO (split-sum)", "neus-color": "NeuS colour MLP"}
CONSOLE = Console()


@dataclass
class BenchShapeConfig:
    """Stage I benchmark settings."""

    output_dir: Path = Path("/tmp/nero_bench_shape")
    """Scene, training runs and meshes go here (a scene rendered with the same settings is reused)."""
    results: Path = Path(__file__).resolve().parent / "RESULTS_shape.md"
    """Markdown report to write."""
    steps: int = 1000
    """Training steps of each run (the preset's schedule is rescaled to it)."""
    num_rays: int = 512
    """Rays per training step."""
    num_views: int = 64
    resolution: int = 128
    """Image width and height."""
    environment: str = "courtyard"
    """HDRI of the scene (a strongly structured one makes reflections hard for a plain colour MLP)."""
    roughness: float = 0.15
    """Blender roughness of the metal (metallic 1)."""
    render_samples: int = 32
    """Cycles samples per pixel."""
    mesh_resolution: int = 256
    """Marching-cubes grid per axis."""
    seed: int = 0
    threads: int = 1
    """torch intra-op threads of each run (same for both)."""
    parallel: bool = False
    """Train both runs at the same time (each with ``threads`` threads); timings are then taken side by side."""
    full: bool = False
    """Paper preset ``nero-shape`` (300k steps unless --steps is given) on CUDA when available."""


@dataclass
class RunResult:
    """Measurements of one training run."""

    shading: str
    steps: int
    train_seconds: float
    """Wall time of the training loop (setup excluded)."""
    steps_per_second: float
    peak_rss_mib: float
    """Peak resident memory of the run's process (setup, training, mesh extraction)."""
    cuda_peak_mib: Optional[float]
    final_loss: float
    """Mean total loss of the last 20 steps."""
    mesh_path: str
    mesh_seconds: float
    num_vertices: int
    chamfer_gt_mesh: Optional[float] = None
    chamfer_depth_maps: Optional[float] = None
    normal_error_deg: Optional[float] = None
    eval_notes: List[str] = field(default_factory=list)


def trainer_config(config: BenchShapeConfig, shading: Shading, run_root: Path, scene: Path):
    """The preset's TrainerConfig for one run: quiet, no viewer, no periodic evaluation, one checkpoint at the end."""
    from nero_nerfstudio.configs.method_configs import (
        neus_color_baseline,
        paper_trainer_config,
        small_trainer_config,
    )

    trainer = paper_trainer_config(config.steps) if config.full else small_trainer_config(config.steps)
    if shading == "neus-color":
        trainer.pipeline.model = neus_color_baseline(trainer.pipeline.model)
    trainer.pipeline.datamanager.data = scene
    trainer.pipeline.datamanager.train_num_rays_per_batch = config.num_rays
    trainer.pipeline.datamanager.eval_num_rays_per_batch = config.num_rays
    device = "cuda" if config.full and torch.cuda.is_available() else "cpu"
    trainer = quiet_trainer_config(trainer, run_root, shading, device)
    trainer.set_timestamp()
    return trainer


def train_and_export(config: BenchShapeConfig, shading: Shading, scene: Path) -> RunResult:
    """Train one run, extract its mesh and return the measurements (runs in a child process)."""
    from nero_nerfstudio.export.mesh import extract_mesh, save_mesh

    trainer_cfg = trainer_config(config, shading, config.output_dir / "runs", scene)
    trainer = start_trainer(trainer_cfg, config.threads, config.seed)
    cuda = trainer_cfg.machine.device_type == "cuda"
    progress, task = training_progress(f"{RUN_LABELS[shading]:<18}", trainer_cfg.max_num_iterations)
    timer = StepTimer(
        synchronize_cuda=cuda, on_step=lambda step: progress.update(task, advance=1, loss=timer.losses[-1])
    ).attach(trainer)
    with progress:
        trainer.train()
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None

    model = trainer.pipeline.model
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        mesh = extract_mesh(model.field.get_sdf, resolution=config.mesh_resolution, device=model.device)
    mesh_seconds = time.perf_counter() - start
    # The synthetic parser's normalised frame is the dataset frame (docs/architecture.md), so no transform.
    mesh_path = save_mesh(mesh, config.output_dir / f"mesh_{shading}.ply")
    return RunResult(
        shading=shading,
        steps=len(timer.seconds),
        train_seconds=timer.total_seconds,
        steps_per_second=len(timer.seconds) / timer.total_seconds,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        cuda_peak_mib=cuda_peak,
        final_loss=float(sum(timer.losses[-20:]) / len(timer.losses[-20:])),
        mesh_path=str(mesh_path),
        mesh_seconds=mesh_seconds,
        num_vertices=len(mesh.vertices),
    )


def _child(config: BenchShapeConfig, shading: Shading, scene: Path, results: "multiprocessing.Queue") -> None:
    try:
        results.put((shading, asdict(train_and_export(config, shading, scene)), None))
    except BaseException as error:  # reported by the parent, which then fails
        results.put((shading, None, f"{type(error).__name__}: {error}"))
        raise


def run_in_children(config: BenchShapeConfig, scene: Path, shadings: Tuple[Shading, ...]) -> Dict[str, RunResult]:
    """Each run in a fresh process (own peak RSS); one after the other unless ``--parallel``."""
    context = multiprocessing.get_context("spawn")
    results_queue = context.Queue()
    results: Dict[str, RunResult] = {}

    def collect(processes: List) -> None:
        for _ in processes:
            while True:
                try:
                    shading, result, error = results_queue.get(timeout=5)
                    break
                except queue.Empty:
                    dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                    if dead:
                        raise SystemExit(f"bench_shape: a training process died (exit code {dead[0]})") from None
            if error is not None:
                raise SystemExit(f"bench_shape: the {shading} run failed: {error}")
            results[shading] = RunResult(**result)
        for process in processes:
            process.join()

    if config.parallel:
        processes = [context.Process(target=_child, args=(config, s, scene, results_queue)) for s in shadings]
        for process in processes:
            process.start()
        collect(processes)
    else:
        for shading in shadings:
            process = context.Process(target=_child, args=(config, shading, scene, results_queue))
            process.start()
            collect([process])
    return results


def render_benchmark_scene(config: BenchShapeConfig) -> Tuple[Path, float]:
    """Render the glossy bunny once; a scene in ``output_dir`` rendered with the same settings is reused."""
    from nero_nerfstudio.scenes.render_scene import RenderSceneConfig, render_scene

    scene = config.output_dir / "scene"
    settings = RenderSceneConfig(
        output_dir=scene,
        layout="synthetic",
        mesh="bunny",
        environment=config.environment,
        num_views=config.num_views,
        resolution=config.resolution,
        samples=config.render_samples,
        metallic=1.0,
        roughness=config.roughness,
        seed=config.seed,
    )
    stamp = config.output_dir / "scene_settings.json"
    wanted = json.dumps({k: str(v) for k, v in asdict(settings).items() if k != "threads"}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == wanted and (scene / "gt" / "scene.json").is_file():
        CONSOLE.print(f"Reusing the scene in {scene}")
        return scene, 0.0
    if scene.exists() and any(scene.iterdir()):
        raise SystemExit(f"bench_shape: {scene} holds a scene with other settings; remove it or pick --output-dir")
    start = time.perf_counter()
    render_scene(settings)
    stamp.write_text(wanted)
    return scene, time.perf_counter() - start


def evaluate(result: RunResult, scene: Path) -> None:
    """NeRO's depth-map Chamfer and normal error, and the mesh-to-mesh Chamfer to gt/mesh.ply (normalised units)."""
    from nero_nerfstudio.eval.shape_metrics import evaluate_shape

    evaluation = evaluate_shape(Path(result.mesh_path), scene, gt_mesh_path=scene / "gt" / "mesh.ply")
    result.chamfer_gt_mesh = evaluation.chamfer_gt_mesh.chamfer if evaluation.chamfer_gt_mesh else None
    result.chamfer_depth_maps = evaluation.chamfer.chamfer if evaluation.chamfer else None
    result.normal_error_deg = evaluation.normal_error_deg
    result.eval_notes = list(evaluation.notes)


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(nero: Optional[float], baseline: Optional[float]) -> str:
    if nero is None or baseline is None or baseline == 0:
        return "n/a"
    return f"{nero / baseline:.3f}"


METRICS: List[Tuple[str, str, int]] = [
    ("steps/second", "steps_per_second", 3),
    ("training wall time (s)", "train_seconds", 1),
    ("peak RSS (MiB)", "peak_rss_mib", 0),
    ("peak CUDA memory (MiB)", "cuda_peak_mib", 0),
    ("final loss (mean of last 20 steps)", "final_loss", 4),
    ("Chamfer to gt/mesh.ply (mesh to mesh)", "chamfer_gt_mesh", 4),
    ("Chamfer, NeRO depth-map protocol", "chamfer_depth_maps", 4),
    ("normal error (deg)", "normal_error_deg", 2),
    ("marching cubes (s)", "mesh_seconds", 1),
    ("mesh vertices", "num_vertices", 0),
]


def results_rows(results: Dict[str, RunResult]) -> List[Tuple[str, str, str, str]]:
    nero, baseline = results["split-sum"], results["neus-color"]
    rows = []
    for label, name, digits in METRICS:
        a, b = getattr(nero, name), getattr(baseline, name)
        rows.append((label, _fmt(a, digits), _fmt(b, digits), _ratio(a, b)))
    return rows


def write_markdown(
    config: BenchShapeConfig, results: Dict[str, RunResult], render_seconds: float, total_seconds: float, command: str
) -> None:

    preset = "nero-shape (paper)" if config.full else "nero-shape-small"
    device = "cuda" if config.full and torch.cuda.is_available() else "cpu"
    render_note = f"render: {render_seconds:.0f} s" if render_seconds > 0 else "reused from an earlier identical render"
    lines = [
        *report_header(
            "Stage I benchmark: NeRO split-sum shading vs. a NeuS colour MLP", "benchmarks/bench_shape.py", command
        ),
        "## Setup",
        "",
        f"* Scene: `nero-render-scene` synthetic layout, Stanford bunny, metallic 1, roughness {config.roughness}, "
        f"`{config.environment}` HDRI, {config.num_views} views of {config.resolution}x{config.resolution}, "
        f"{config.render_samples} spp ({render_note}).",
        f"* Preset `{preset}` on {device}, schedule rescaled to {config.steps} steps, {config.num_rays} rays per step, "
        f"seed {config.seed}, `torch.set_num_threads({config.threads})`, "
        f"{'both runs at the same time' if config.parallel else 'one run after the other'}, each in its own process.",
        "* Baseline: the same model with `shading_model=\"neus-color\"` (NeuS's colour MLP on position, encoded ray "
        "direction, normal and SDF feature; no occlusion loss), everything else identical.",
        f"* Meshes: marching cubes of the SDF on a {config.mesh_resolution}^3 grid over [-1, 1]^3. Chamfer in "
        "normalised units (object inside the unit sphere): mesh to mesh is `mesh_chamfer_distance` against "
        "`gt/mesh.ply`; the depth-map protocol is `evaluate_shape` (NeRO: points back-projected from the depth "
        "maps of the evaluation views, voxel-downsampled at 0.01), which also gives the normal error.",
        f"* Total benchmark wall time: {total_seconds / 60:.1f} min.",
        "",
        "## Results",
        "",
        "| metric | NeRO (split-sum) | NeuS colour MLP | NeRO / NeuS |",
        "| --- | --- | --- | --- |",
        *[f"| {label} | {a} | {b} | {ratio} |" for label, a, b, ratio in results_rows(results)],
        "",
    ]
    notes = sorted({note for result in results.values() for note in result.eval_notes})
    if notes:
        lines += ["Evaluation notes:", "", *[f"* {note}" for note in notes], ""]
    config.results.parent.mkdir(parents=True, exist_ok=True)
    temporary = config.results.with_name(f".{config.results.name}.tmp")
    temporary.write_text("\n".join(lines))
    os.replace(temporary, config.results)


def print_table(results: Dict[str, RunResult]) -> None:
    table = Table(title="Stage I: NeRO split-sum vs. NeuS colour MLP")
    for column in ("metric", RUN_LABELS["split-sum"], RUN_LABELS["neus-color"], "NeRO / NeuS"):
        table.add_column(column)
    for row in results_rows(results):
        table.add_row(*row)
    CONSOLE.print(table)


def main(config: BenchShapeConfig) -> None:
    if config.full and not any(arg.split("=")[0] == "--steps" for arg in sys.argv[1:]):
        from nero_nerfstudio.configs.method_configs import PAPER_STEPS

        config = replace(config, steps=PAPER_STEPS)
    config = replace(config, output_dir=config.output_dir.resolve())
    command = " ".join(["python", "benchmarks/bench_shape.py", *map(shlex.quote, sys.argv[1:])])
    if os.environ.get("OMP_NUM_THREADS"):
        command = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} {command}"
    start = time.perf_counter()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    scene, render_seconds = render_benchmark_scene(config)
    results = run_in_children(config, scene, ("split-sum", "neus-color"))
    for result in results.values():
        CONSOLE.print(f"Evaluating {RUN_LABELS[result.shading]} ({result.mesh_path})")
        evaluate(result, scene)
    total_seconds = time.perf_counter() - start
    print_table(results)
    (config.output_dir / "results.json").write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2))
    write_markdown(config, results, render_seconds, total_seconds, command)
    CONSOLE.print(f"Wrote {config.results}")


if __name__ == "__main__":
    main(tyro.cli(BenchShapeConfig))
