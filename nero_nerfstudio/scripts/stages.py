"""The NeRO pipeline as one table of stages: render -> Stage I -> mesh -> Stage II -> materials -> relight -> eval.

A ``Stage`` is the command a user would type, the files it reads and the files it writes. One constructor per step
builds it from paths and settings, so each command line is written once:

* ``nero-demo`` runs ``pipeline_stages`` (the sequence a user follows on a rendered scene) with ``run_stage``: the
  command is echoed and its output goes to the terminal;
* ``benchmarks/bench_pipeline.py`` builds its per-scene sequences from the same constructors (its training runs are
  ``scripts/bench_train.py`` stages) and runs them with ``run_measured_stage``: the output goes to a log, the wall
  time and peak memory of the child are measured and kept next to the stage's last output, so a rerun reuses both.

A stage whose outputs all exist is skipped (unless it is marked ``skip_if_done=False``), so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from rich.console import Console

CONSOLE = Console()
GLOB_CHARACTERS = frozenset("*?[")


class StageFailedError(RuntimeError):
    """A stage's command exited with an error, or a file it reads is missing."""


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: a command, the files it reads and the files it writes."""

    name: str
    """Short name: a ``nero-demo --stages`` choice, or a row of the benchmark's timing table."""
    argv: Tuple[str, ...]
    """The command as a user types it: a console script of this environment (or ``python``) and its arguments.
    Empty for a stage that runs ``function`` in this process instead."""
    inputs: Tuple[Path, ...] = ()
    """Files or folders the command reads (made by earlier stages); checked before it runs."""
    outputs: Tuple[Path, ...] = ()
    """Files the command writes, the one it writes last at the end. A name with ``*`` stands for any file matching it
    (a training run's ``step-*.ckpt``)."""
    skip_if_done: bool = True
    """Skip the stage when all its outputs exist. False: always run it (a step that must follow a retrained run)."""
    function: Optional[Callable[[], None]] = None
    """In-process stage (``argv`` empty): called instead of a command."""

    def done(self) -> bool:
        """Whether the stage can be skipped: it may be, and it has outputs, all of which exist."""
        return self.skip_if_done and bool(self.outputs) and all(_exists(path) for path in self.outputs)

    def command(self) -> List[str]:
        """``argv`` with its program resolved in this interpreter's environment (no activated virtualenv needed)."""
        program = sys.executable if self.argv[0] == "python" else str(Path(sys.executable).parent / self.argv[0])
        return [program, *self.argv[1:]]

    def check_inputs(self) -> None:
        """Fail with the names of the inputs that do not exist (yet)."""
        missing = [path for path in self.inputs if not _exists(path)]
        if missing:
            raise StageFailedError(
                f"stage {self.name} needs {', '.join(map(str, missing))}, made by an earlier stage; run that first"
            )


def _exists(path: Path) -> bool:
    if GLOB_CHARACTERS.isdisjoint(path.name):
        return path.exists()
    return any(path.parent.glob(path.name))


# Running stages ------------------------------------------------------------------------------------------------------
def run_stage(stage: Stage, console: Console = CONSOLE) -> bool:
    """Run ``stage`` with its output on the terminal (its command echoed first) unless it is done; True if it ran."""
    if stage.done():
        console.print(f"{', '.join(map(str, stage.outputs))}: done; skipping {stage.name} (delete to rerun)")
        return False
    stage.check_inputs()
    if stage.function is not None:
        stage.function()
        return True
    console.print(f"[bold cyan]$ {shlex.join(stage.argv)}", soft_wrap=True)
    completed = subprocess.run(stage.command(), check=False)
    if completed.returncode != 0:
        raise StageFailedError(
            f"`{stage.argv[0]}` failed with exit code {completed.returncode}; see its output above"
        )
    return True


@dataclass
class StageResult:
    """Wall time and peak resident memory of one child process."""

    seconds: float
    peak_rss_mib: float
    reused: bool = False
    """Measured by an earlier invocation whose outputs were reused."""


def _high_water_mib(pid: int) -> float:
    """``VmHWM`` of a live process (its own peak RSS, reset by exec), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree_rss_mib(process) -> float:
    """Resident memory of the ``psutil.Process`` and all its descendants right now."""
    import psutil

    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss / 2**20
        except psutil.Error:
            pass
    return total


def run_child(command: List[str], log_path: Path, poll_seconds: float = 0.2) -> StageResult:
    """Run ``command`` with its output in ``log_path``; its wall time and peak memory.

    Peak memory is the larger of the child's own high-water mark and the most its process tree (Blender children
    included) held at once, sampled every ``poll_seconds``. (``getrusage``/``wait4`` would report at least this
    process's size: Linux carries the high-water mark over fork and exec.)
    """
    import psutil

    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "COLUMNS": "120"}
    with open(log_path, "w") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        watched = psutil.Process(process.pid)
        peak_mib = 0.0
        while process.poll() is None:
            peak_mib = max(peak_mib, _tree_rss_mib(watched), _high_water_mib(process.pid))
            time.sleep(poll_seconds)
        seconds = time.perf_counter() - start
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-15:])
        raise StageFailedError(
            f"`{shlex.join(command[:3])} ...` failed (exit {process.returncode}); {log_path}:\n{tail}"
        )
    return StageResult(seconds=seconds, peak_rss_mib=peak_mib)


def timing_path(stage: Stage) -> Path:
    """Where ``run_measured_stage`` keeps the stage's measurement: a hidden file next to its last output that is one
    file, not a pattern (never among a run's checkpoints, which nerfstudio's loader expects alone in their folder)."""
    files = [path for path in stage.outputs if GLOB_CHARACTERS.isdisjoint(path.name)]
    if not files:
        raise ValueError(f"stage {stage.name}: a measured stage needs an output that is a file, not only patterns")
    return files[-1].with_name(f".{files[-1].name}.timing.json")


def run_measured_stage(stage: Stage, log_path: Path) -> StageResult:
    """Run ``stage`` as a measured child (``run_child``) unless it is done and was measured; the measurement is
    saved, and a reused stage reports the one taken when it ran."""
    timing = timing_path(stage)
    if stage.done() and timing.exists():
        return StageResult(**{**json.loads(timing.read_text()), "reused": True})
    stage.check_inputs()
    result = run_child(stage.command(), log_path)
    timing.write_text(json.dumps({"seconds": result.seconds, "peak_rss_mib": result.peak_rss_mib}))
    return result


# The stages ----------------------------------------------------------------------------------------------------------
def render_stage(
    scene_dir: Path,
    mesh: str,
    environment: str,
    num_views: int,
    resolution: int,
    metallic: float,
    roughness: float,
    albedo: Sequence[float],
    samples: Optional[int] = None,
    denoise: bool = False,
    seed: Optional[int] = None,
    name: str = "render",
    layout: str = "synthetic",
    tabletop: bool = False,
) -> Stage:
    """``nero-render-scene``: a scene of one of Blender's meshes (GlossySynthetic layout, or ``layout``; ``tabletop``:
    on a textured table among props, for structure from motion), with its ground truth in ``gt/``."""
    argv = ["nero-render-scene", "--output-dir", str(scene_dir), "--layout", layout, "--mesh", mesh]
    argv += ["--tabletop"] if tabletop else []
    argv += ["--environment", environment, "--num-views", str(num_views), "--resolution", str(resolution)]
    argv += [] if samples is None else ["--samples", str(samples)]
    argv += ["--denoise"] if denoise else []
    argv += ["--metallic", str(metallic), "--roughness", str(roughness), "--albedo", *map(str, albedo)]
    argv += [] if seed is None else ["--seed", str(seed)]
    return Stage(name, tuple(argv), outputs=(scene_dir / "gt" / "scene.json",))


def run_dir(output_dir: Path, experiment: str, method: str) -> Path:
    """Folder of an ``ns-train`` run started by ``train_stage`` (timestamp ``run``, so a rerun finds it)."""
    return output_dir / experiment / method / "run"


def train_stage(
    method: str,
    scene_dir: Path,
    output_dir: Path,
    experiment: str,
    steps: Optional[int] = None,
    mesh_path: Optional[Path] = None,
    name: str = "train",
    dataparser: Sequence[str] = ("nero-synthetic",),
) -> Stage:
    """``ns-train METHOD`` on CPU on a scene (Stage II: on the fixed mesh ``mesh_path``); ``steps`` None keeps the
    preset's step count. ``dataparser``: its name and its options before ``--data``. Done once the run has a
    checkpoint."""
    argv = ["ns-train", method] + ([] if mesh_path is None else ["--pipeline.model.mesh-path", str(mesh_path)])
    argv += ["--machine.device-type", "cpu", "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True"]
    argv += ["--output-dir", str(output_dir), "--experiment-name", experiment, "--timestamp", "run"]
    # A short run still logs eval images to TensorBoard (nerfstudio's default is every 500 steps).
    if steps is not None:
        argv += ["--max-num-iterations", str(steps), "--steps-per-eval-image", str(max(1, steps // 3))]
    argv += [*dataparser, "--data", str(scene_dir)]
    run = run_dir(output_dir, experiment, method)
    inputs = (scene_dir,) + (() if mesh_path is None else (mesh_path,))
    return Stage(name, tuple(argv), inputs, outputs=(run / "config.yml", run / "nerfstudio_models" / "step-*.ckpt"))


def export_mesh_stage(load_config: Path, output_path: Path, resolution: int, name: str = "mesh") -> Stage:
    """``nero-export mesh``: the Stage I surface by marching cubes, in the dataset frame."""
    argv = ("nero-export", "mesh", "--load-config", str(load_config), "--resolution", str(resolution))
    return Stage(name, argv + ("--output-path", str(output_path)), (load_config,), (output_path,))


def eval_shape_stage(
    mesh: Path, scene_dir: Path, output: Path, views: Optional[str] = None, name: str = "eval-shape"
) -> Stage:
    """``nero-eval shape``: Chamfer (NeRO's depth-map protocol and to ``gt/mesh.ply``) and normal error."""
    gt_mesh = scene_dir / "gt" / "mesh.ply"
    argv = ["nero-eval", "shape", "--mesh", str(mesh), "--data", str(scene_dir), "--gt-mesh", str(gt_mesh)]
    argv += [] if views is None else ["--views", views]
    return Stage(name, tuple(argv + ["--output", str(output)]), (mesh, gt_mesh), (output,))


def eval_nvs_stage(load_config: Path, output: Path, name: str = "eval-nvs") -> Stage:
    """``nero-eval nvs``: PSNR/SSIM of a Stage I run on the held-out views."""
    argv = ("nero-eval", "nvs", "--load-config", str(load_config), "--output", str(output))
    return Stage(name, argv, (load_config,), (output,))


def export_materials_stage(
    load_config: Path, output_dir: Path, texture_size: int, name: str = "materials"
) -> Stage:
    """``nero-export materials``: per-vertex materials on the Stage II mesh, and baked textures (``material.glb``)."""
    argv = ("nero-export", "materials", "--load-config", str(load_config), "--output-dir", str(output_dir))
    outputs = (output_dir / "mesh.ply", output_dir / "material.glb")
    return Stage(name, argv + ("--texture-size", str(texture_size)), (load_config,), outputs)


def eval_materials_stage(materials_dir: Path, scene_dir: Path, output: Path, name: str = "eval-materials") -> Stage:
    """``nero-eval materials``: errors of exported per-vertex materials against the scene's ground truth."""
    mesh = materials_dir / "mesh.ply"
    argv = ("nero-eval", "materials", "--mesh", str(mesh), "--mesh-materials", str(materials_dir))
    return Stage(name, argv + ("--data", str(scene_dir), "--output", str(output)), (mesh,), (output,))


def _relight_argv(materials_dir: Path, hdr: str) -> List[str]:
    mesh = materials_dir / "mesh.ply"
    return ["nero-relight", "--mesh", str(mesh), "--material", str(materials_dir), "--hdr", hdr]


def relight_turntable_stage(
    materials_dir: Path,
    hdr: str,
    output_dir: Path,
    run_config: Path,
    resolution: int,
    num_frames: int,
    samples: int,
    video: Path,
    name: str = "relight",
) -> Stage:
    """``nero-relight`` of exported materials on a turntable (up axis from the Stage II run), and its video."""
    argv = _relight_argv(materials_dir, hdr) + ["--output-dir", str(output_dir)]
    argv += ["--run-config", str(run_config), "--resolution", str(resolution), "--num-frames", str(num_frames)]
    argv += ["--samples", str(samples), "--video", str(video)]
    return Stage(name, tuple(argv), (materials_dir / "mesh.ply", run_config), (video,))


def relight_views_stage(
    materials_dir: Path,
    hdr: str,
    output_dir: Path,
    scene_dir: Path,
    view_ids: Sequence[str],
    samples: int,
    threads: int,
    name: str = "relight",
) -> Stage:
    """``nero-relight`` of exported materials from the cameras of a synthetic scene; frames ``<id>.png`` in order."""
    argv = _relight_argv(materials_dir, hdr)
    argv += ["--cameras-from", str(scene_dir), "--view-ids", *view_ids, "--samples", str(samples)]
    argv += ["--threads", str(threads), "--output-dir", str(output_dir)]
    outputs = tuple(output_dir / f"{view}.png" for view in view_ids)
    return Stage(name, tuple(argv), (materials_dir / "mesh.ply", scene_dir), outputs)


def eval_relight_stage(
    pred_dir: Path, gt_dir: Path, num_views: int, output: Path, name: str = "eval-relight"
) -> Stage:
    """``nero-eval relight``: PSNR/SSIM of relit frames against ground-truth ones."""
    argv = ("nero-eval", "relight", "--pred", str(pred_dir), "--gt", str(gt_dir), "--num-views", str(num_views))
    return Stage(name, argv + ("--output", str(output)), (pred_dir, gt_dir), (output,))


# The sequence a user follows -----------------------------------------------------------------------------------------
SHAPE_PRESET = "nero-shape-fast"
"""Stage I preset of the user's sequence: the one that gives a good mesh in minutes on a CPU."""


@dataclass
class PipelineSettings:
    """Settings of ``pipeline_stages``: a rendered glossy bunny through the whole pipeline with the CPU presets."""

    output_dir: Path
    """Everything goes here: the scene, the runs, the mesh, the materials and the relit frames."""
    num_views: int
    """Views to render."""
    resolution: int
    """Rendered image size."""
    shape_steps: Optional[int]
    """Stage I steps (None: the nero-shape-fast preset's own count)."""
    material_steps: Optional[int]
    """Stage II steps (None: the nero-material-small preset's own count)."""
    mesh_resolution: int
    """Marching-cubes grid of the mesh export."""
    environment: str
    """HDRI the scene is rendered under."""
    relight_environment: str
    """HDRI of the relit turntable."""
    relight_frames: int
    """Frames of the turntable."""
    relight_resolution: int
    """Image size of the turntable."""
    relight_samples: int
    """Cycles samples per pixel of the turntable."""
    texture_size: int = 512
    """Baked texture size of the material export."""

    @property
    def scene_dir(self) -> Path:
        return self.output_dir / "scene"

    @property
    def mesh_path(self) -> Path:
        return self.output_dir / "mesh.ply"

    @property
    def materials_dir(self) -> Path:
        return self.output_dir / "materials"

    def run_config(self, method: str) -> Path:
        return run_dir(self.output_dir / "outputs", "demo", method) / "config.yml"


def describe_scene(scene_dir: Path, console: Console = CONSOLE) -> None:
    """Parse a synthetic scene as ``ns-train`` will, and print what each split holds."""
    from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig

    for split in ("train", "val"):
        outputs = NeroSyntheticDataParserConfig(data=scene_dir).setup().get_dataparser_outputs(split)
        cameras = outputs.cameras
        console.print(
            f"nero-synthetic {split}: {len(cameras)} cameras, {int(cameras.width[0])}x{int(cameras.height[0])} px, "
            f"ids {outputs.metadata['image_ids'][:4]}{' ...' if len(cameras) > 4 else ''}, "
            f"up axis {outputs.metadata['up_axis']}"
        )


def pipeline_stages(settings: PipelineSettings) -> List[Stage]:
    """render -> parse -> shape -> mesh -> eval-shape -> material -> materials -> relight, on a glossy metal bunny.

    The render and the two training runs are skipped when done; the exports, the evaluation and the relighting run
    every time, so they follow a run that was deleted and retrained.
    """
    s = settings
    shape_config, material_config = s.run_config(SHAPE_PRESET), s.run_config("nero-material-small")
    runs = s.output_dir / "outputs"
    relit = s.output_dir / "relit"
    stages = [
        render_stage(s.scene_dir, "bunny", s.environment, s.num_views, s.resolution, 1.0, 0.2, (0.8, 0.8, 0.8)),
        Stage("parse", (), (s.scene_dir,), function=lambda: describe_scene(s.scene_dir)),
        train_stage(SHAPE_PRESET, s.scene_dir, runs, "demo", s.shape_steps, name="shape"),
        export_mesh_stage(shape_config, s.mesh_path, s.mesh_resolution),
        eval_shape_stage(s.mesh_path, s.scene_dir, s.output_dir / "shape_eval.json", views="all"),
        train_stage("nero-material-small", s.scene_dir, runs, "demo", s.material_steps, s.mesh_path, "material"),
        export_materials_stage(material_config, s.materials_dir, s.texture_size),
        relight_turntable_stage(
            s.materials_dir, s.relight_environment, relit, material_config,
            s.relight_resolution, s.relight_frames, s.relight_samples, relit / "turntable.gif",
        ),  # fmt: skip
    ]
    always_run = {"mesh", "eval-shape", "materials", "relight"}
    return [replace(stage, skip_if_done=False) if stage.name in always_run else stage for stage in stages]
