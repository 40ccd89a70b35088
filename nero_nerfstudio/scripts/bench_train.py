"""One measured training run of a benchmark, in its own process:
``python -m nero_nerfstudio.scripts.bench_train SPEC.json``.

``benchmarks/bench_pipeline.py`` writes the spec (a ``TrainSpec`` as JSON), runs this module as a stage of its table
(``scripts/stages.py``; a child process, so the run's peak memory is its own, sampled by the parent from ``/proc``)
and reads back the ``TrainResult`` JSON it writes. Step times and losses come from a ``StepTimer``
(``engine/step_timer.py``), a pair of nerfstudio training callbacks. ``benchmarks/bench_shape.py`` shares
``quiet_trainer_config``, ``start_trainer``, ``training_progress`` and ``machine_description``; every benchmark's report
starts with ``report_header``, and ``replace_section`` lets two benchmarks write parts of one report.

Kinds of run:

* ``shape``: Stage I (``preset``: ``nero-shape-small``, ``nero-shape-fast`` or the paper's ``nero-shape``; by default
  small, paper with ``full``) with the split-sum shader or the NeuS colour-MLP baseline. Every ``curve_every`` steps
  (or ``curve_every_s`` seconds of training) the training clock is paused, the SDF is meshed on a coarse grid and its
  Chamfer distance to the ground-truth mesh is recorded (the Chamfer-vs-time curve), and once more at the end. With
  ``time_budget_s`` the run stops when its training time reaches the budget and saves a checkpoint at that step.
  After training, the mesh is extracted on the export grid and saved, and one held-out view is rendered twice to
  measure the rays per second of inference (the second render is timed).
* ``neus-facto``: nerfstudio's own ``neus-facto`` on the same data (only where tinycudann is installed), measured the
  same way (its mesh and inference speed too).
* ``material``: Stage II (``nero-material-small``, or the paper preset) on a fixed mesh; afterwards the hit-pixel
  PSNR of re-rendered training views, and one panel of material maps saved as PNG.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, get_args, get_origin, get_type_hints

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from nero_nerfstudio.engine.step_timer import StepTimer
from nero_nerfstudio.scripts.stages import Stage

CONSOLE = Console(width=120)
RunKind = Literal["shape", "neus-facto", "material"]
StageOnePreset = Literal["small", "fast", "paper"]


@dataclass
class TrainSpec:
    """What to train, on which data, and where the results go."""

    kind: RunKind
    scene: str
    """Scene folder (nero-render-scene synthetic layout)."""
    output_dir: str
    """nerfstudio's ``--output-dir``; the run lands in ``output_dir/<experiment>/<preset name>/run``."""
    experiment: str
    result_path: str
    """Where this script writes its ``TrainResult`` JSON."""
    steps: int
    """Step count the preset's schedule is fitted to (the run ends there, or earlier at ``time_budget_s``)."""
    shading: Literal["split-sum", "neus-color"] = "split-sum"
    num_rays: Optional[int] = None
    """Rays per step (None: the preset's)."""
    threads: int = 1
    seed: int = 0
    """Seed of training (the trainer's ``machine.seed``, which a Stage II run's ``overrides`` may set instead)."""
    full: bool = False
    """CUDA (when available) instead of the CPU, and the paper presets instead of the small ones (a shape run with
    ``preset`` set trains that preset)."""
    time_budget_s: Optional[float] = None
    """Stop once the training time (sum of the step times) reaches this many seconds (None: run all steps)."""
    # shape / neus-facto
    preset: Optional[StageOnePreset] = None
    """Stage I preset of a shape run (None: small, or paper with ``full``)."""
    gt_mesh: Optional[str] = None
    curve_every: int = 0
    """Steps between two Chamfer-vs-time points (0: no curve, unless ``curve_every_s`` is set)."""
    curve_every_s: float = 0.0
    """Training seconds between two Chamfer-vs-time points, instead of ``curve_every`` steps (0: by steps)."""
    curve_mesh_resolution: int = 128
    mesh_resolution: int = 192
    mesh_path: Optional[str] = None
    """shape: where to save the final mesh; material: the fixed mesh to train on (dataset frame)."""
    # material
    num_psnr_views: int = 8
    """Training views re-rendered for the PSNR after training."""
    panel_path: Optional[str] = None
    """PNG of the material maps of the first re-rendered view."""
    overrides: List[str] = field(default_factory=list)
    """``dotted.field=value`` settings of the Stage II trainer config (:func:`apply_overrides`)."""

    @property
    def shape_preset(self) -> StageOnePreset:
        """The Stage I preset a shape run trains."""
        if self.preset is not None:
            return self.preset
        return "paper" if self.full else "small"

    @property
    def wants_curve(self) -> bool:
        """Whether a shape run records a Chamfer-vs-time curve."""
        return self.gt_mesh is not None and (self.curve_every > 0 or self.curve_every_s > 0)

    @property
    def spec_path(self) -> Path:
        """Where ``save`` writes the spec for the child: ``<result>_spec.json`` next to the result."""
        result_path = Path(self.result_path)
        return result_path.with_name(result_path.stem + "_spec.json")

    def save(self) -> None:
        self.spec_path.parent.mkdir(parents=True, exist_ok=True)
        self.spec_path.write_text(json.dumps(asdict(self), indent=2))


@dataclass
class TrainResult:
    """Measurements of one run (the parent adds peak memory and wall time of the whole process)."""

    config_path: str
    steps: int
    """Steps done (fewer than planned when the time budget ended the run)."""
    train_seconds: float
    """Training iterations only: setup, curve points and evaluation excluded."""
    steps_per_second: float
    final_loss: float
    """Mean total loss of the last 20 steps."""
    cuda_peak_mib: Optional[float] = None
    budget_reached: bool = False
    """The time budget ended the run before its planned steps."""
    curve: List[List[float]] = field(default_factory=list)
    """``[steps done, training seconds, Chamfer to the GT mesh]`` rows; the last one at the end of training."""
    mesh_path: Optional[str] = None
    mesh_seconds: Optional[float] = None
    num_vertices: Optional[int] = None
    eval_rays_per_second: Optional[float] = None
    """Rays per second of rendering one held-out view (``get_outputs_for_camera``, after a warm-up render)."""
    train_view_psnr: Optional[float] = None
    """Mean PSNR over re-rendered training views, pixels that miss the mesh black in both (NeRO's convention)."""
    train_view_psnr_hit: Optional[float] = None
    """Mean PSNR over the pixels whose ray hits the mesh."""


def bench_train_stage(spec: TrainSpec, name: str) -> Stage:
    """The stage that runs ``spec`` (saved with ``spec.save()``) in a child process; done once its result exists.
    A shape run also writes its mesh (before the result); a material run reads its fixed mesh."""
    command = ("python", "-m", "nero_nerfstudio.scripts.bench_train", str(spec.spec_path))
    inputs: Tuple[Path, ...] = (spec.spec_path, Path(spec.scene))
    outputs: Tuple[Path, ...] = (Path(spec.result_path),)
    if spec.mesh_path is not None and spec.kind == "material":
        inputs += (Path(spec.mesh_path),)
    elif spec.mesh_path is not None:
        outputs = (Path(spec.mesh_path),) + outputs
    return Stage(name, command, inputs, outputs)


def quiet_trainer_config(trainer_config, output_dir: Path, experiment: str, device: str):
    """No viewer, no periodic evaluation or logging; only the final checkpoint is written. The method name stays
    the preset's (nerfstudio's ``eval_setup`` looks it up); runs are told apart by their experiment name."""
    trainer_config.machine.device_type = device
    trainer_config.vis = "tensorboard"
    trainer_config.viewer.quit_on_train_completion = True
    trainer_config.output_dir = output_dir
    trainer_config.experiment_name = experiment
    never = trainer_config.max_num_iterations + 1
    trainer_config.steps_per_eval_batch = trainer_config.steps_per_eval_image = never
    trainer_config.steps_per_eval_all_images = never
    trainer_config.steps_per_save = never
    trainer_config.save_only_latest_checkpoint = True
    trainer_config.logging.steps_per_log = never
    trainer_config.logging.local_writer.enable = False
    return trainer_config


def _quiet(trainer_config, spec: TrainSpec):
    """``quiet_trainer_config`` for ``spec``, the run folder named ``run`` (so a rerun finds it)."""
    device = "cuda" if spec.full and torch.cuda.is_available() else "cpu"
    trainer_config = quiet_trainer_config(trainer_config, Path(spec.output_dir), spec.experiment, device)
    trainer_config.timestamp = "run"
    trainer_config.machine.seed = spec.seed
    return trainer_config


def start_trainer(trainer_config, threads: int, seed: int):
    """The set-up trainer of ``trainer_config`` (its config.yml saved first, as ``ns-train`` does), seeded and on
    ``threads`` torch threads; CUDA peak memory is counted from here."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    trainer_config.save_config()
    trainer = trainer_config.setup(local_rank=0, world_size=1)
    trainer.setup()
    if trainer_config.machine.device_type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return trainer


def training_progress(label: str, total_steps: int) -> Tuple[Progress, TaskID]:
    """A progress bar of training steps with the latest loss (advance it with ``loss=``)."""
    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=CONSOLE,
    )
    return progress, progress.add_task("train", total=total_steps, loss=float("nan"))


def budget_progress(label: str, budget_seconds: float) -> Tuple[Progress, TaskID]:
    """A progress bar of training seconds against a time budget, with the steps done and the latest loss (set them
    with ``completed=``, ``steps=`` and ``loss=``)."""
    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s of training, {task.fields[steps]} steps"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        console=CONSOLE,
    )
    return progress, progress.add_task("train", total=budget_seconds, steps=0, loss=float("nan"))


def report_header(
    title: str, writer: str, command: Optional[str] = None, note: str = "", remark: str = ""
) -> List[str]:
    """The opening lines every benchmark report shares: title, who wrote it and when (``note`` right after the time,
    ``remark`` after that sentence), the command (when given) and the machine."""
    from datetime import datetime, timezone

    written = f"Written by `{writer}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC{note}."
    written += " Numbers are as measured by that run; do not edit them by hand." + (f" {remark}" if remark else "")
    lines = [f"# {title}", "", written, ""]
    if command is not None:
        lines += ["## Command", "", "```bash", command, "```", ""]
    return lines + ["## Machine", "", *[f"* {key}: {value}" for key, value in machine_description().items()], ""]


def replace_section(text: str, name: str, content: str) -> str:
    """``text`` (markdown) with its section ``name``, the lines from ``<!-- begin: NAME -->`` to ``<!-- end: NAME -->``,
    holding ``content`` instead; appended at the end (after a blank line) where ``text`` has no such section.

    Lets two benchmarks write one report: each rewrites its own section and keeps the rest of the text."""
    begin, end = f"<!-- begin: {name} -->", f"<!-- end: {name} -->"
    body = content.strip("\n")
    block = f"{begin}\n{body}\n{end}"
    pattern = re.compile(rf"^{re.escape(begin)}$.*?^{re.escape(end)}$", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"


def marked_sections(text: str) -> Dict[str, str]:
    """The content of each marked section of ``text`` (see ``replace_section``), by name, in order."""
    pattern = re.compile(r"^<!-- begin: (\S+) -->\n(.*?)^<!-- end: \1 -->$", re.DOTALL | re.MULTILINE)
    return {match.group(1): match.group(2).rstrip("\n") for match in pattern.finditer(text)}


def machine_description() -> Dict[str, str]:
    """This machine's hardware, software versions and load, for a benchmark report."""
    import nerfstudio
    from importlib.metadata import version

    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total_kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{total_kib / 2**20:.1f} GiB"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model,
        "ram": memory,
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nerfstudio": getattr(nerfstudio, "__version__", None) or version("nerfstudio"),
        "load average at the end (1/5/15 min)": load,
    }


def shape_trainer_config(spec: TrainSpec):
    """Stage I: the preset of ``spec.shape_preset`` fitted to ``spec.steps``, on the 96/32-style test split."""
    from nero_nerfstudio.configs.method_configs import (
        fast_trainer_config,
        neus_color_baseline,
        paper_trainer_config,
        small_trainer_config,
    )

    presets = {"small": small_trainer_config, "fast": fast_trainer_config, "paper": paper_trainer_config}
    trainer = presets[spec.shape_preset](spec.steps)
    if spec.shading == "neus-color":
        trainer.pipeline.model = neus_color_baseline(trainer.pipeline.model)
    datamanager = trainer.pipeline.datamanager
    datamanager.data = Path(spec.scene)
    datamanager.dataparser.split_mode = "test"
    if spec.num_rays is not None:
        datamanager.train_num_rays_per_batch = datamanager.eval_num_rays_per_batch = spec.num_rays
    return _quiet(trainer, spec)


def neus_facto_trainer_config(spec: TrainSpec):
    """nerfstudio's ``neus-facto`` (needs tinycudann) with our GlossySynthetic parser on the same split."""
    from nerfstudio.configs.method_configs import all_methods

    from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig
    from nero_nerfstudio.engine.trainer import NeroTrainerConfig

    preset = copy.deepcopy(all_methods["neus-facto"])
    # Same settings on NeroTrainer, whose per-step loss the StepTimer reads (nerfstudio's trainer keeps none).
    trainer = NeroTrainerConfig(
        **{option.name: getattr(preset, option.name) for option in fields(preset) if option.name != "_target"}
    )
    trainer.max_num_iterations = spec.steps
    trainer.pipeline.datamanager.dataparser = NeroSyntheticDataParserConfig(split_mode="test")
    trainer.pipeline.datamanager.data = Path(spec.scene)
    return _quiet(trainer, spec)


def material_trainer_config(spec: TrainSpec):
    """Stage II: the small preset fitted to ``spec.steps`` (or the paper preset) on the fixed mesh ``spec.mesh_path``."""
    from nero_nerfstudio.configs.material_configs import paper_trainer_config, small_trainer_config

    trainer = paper_trainer_config(spec.steps) if spec.full else small_trainer_config(spec.steps)
    trainer.pipeline.model.mesh_path = Path(spec.mesh_path).absolute()
    trainer.pipeline.datamanager.data = Path(spec.scene)
    if spec.num_rays is not None:
        trainer.pipeline.datamanager.train_num_rays_per_batch = spec.num_rays
    trainer = _quiet(trainer, spec)
    apply_overrides(trainer, spec.overrides)  # last, so that an override (machine.seed=1) wins
    return trainer


def apply_overrides(config: Any, overrides: Sequence[str]) -> None:
    """Set fields of a nested config from ``dotted.field=value`` strings (``pipeline.model.estimator=nero``).

    Values are read as YAML scalars (numbers, ``true``/``false``, ``null``, text) and converted to the type of the
    value they replace when that is a number.

    Raises:
        ValueError: an override without ``=``, a field the config does not have, or a value its ``Literal`` type
            does not list.
    """
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator:
            raise ValueError(f"override {override!r} is not of the form dotted.field=value")
        *parents, name = key.split(".")
        target = config
        for part in parents:
            target = getattr(target, part, None)
        if target is None or not hasattr(target, name):
            raise ValueError(f"override {override!r}: the config has no field {key!r}")
        value = yaml.safe_load(text)
        choices = _literal_choices(type(target), name)
        if choices is not None and value not in choices:
            raise ValueError(f"override {override!r}: {key} must be one of {', '.join(map(str, choices))}")
        current = getattr(target, name)
        if isinstance(current, (int, float)) and not isinstance(current, bool) and isinstance(value, (int, float)):
            value = type(current)(value)
        setattr(target, name, value)


def _literal_choices(owner: type, name: str) -> Optional[Tuple[Any, ...]]:
    """The values a ``Literal`` field of a config class allows (None: not a Literal, or its hints do not resolve)."""
    try:
        hint = get_type_hints(owner).get(name)
    except Exception:  # noqa: BLE001 - a hint that does not resolve only means no choice check
        return None
    return get_args(hint) if get_origin(hint) is Literal else None


def check_material_overrides(overrides: Sequence[str], full: bool = False) -> None:
    """Apply ``overrides`` to a throw-away Stage II config, so that a mistyped one stops a benchmark before any stage.

    Raises:
        ValueError: as :func:`apply_overrides`.
    """
    from nero_nerfstudio.configs.material_configs import paper_trainer_config, small_trainer_config

    apply_overrides(paper_trainer_config() if full else small_trainer_config(), overrides)


def sdf_function(model) -> Callable[[Tensor], Tensor]:
    """Signed distance ``[num_points, 1]`` of points ``[num_points, 3]`` for a trained Stage I model: ours, or
    nerfstudio's ``SDFField`` (whose own ``get_sdf`` takes ray samples, so its geometry network is called)."""
    from nerfstudio.fields.sdf_field import SDFField

    if isinstance(model.field, SDFField):
        return lambda points: model.field.forward_geonetwork(points)[:, :1]
    return model.field.get_sdf


@torch.no_grad()
def chamfer_to_gt(model, gt_mesh, resolution: int) -> float:
    """Mesh-to-mesh Chamfer of the SDF's zero level set (``inf`` when there is no surface yet)."""
    from nero_nerfstudio.eval.chamfer import mesh_chamfer_distance
    from nero_nerfstudio.export.mesh import NoSurfaceError, extract_mesh

    was_training = model.training
    model.eval()
    try:
        mesh = extract_mesh(sdf_function(model), resolution=resolution, device=model.device)
        return float(mesh_chamfer_distance(mesh, gt_mesh, num_samples=30_000).chamfer)
    except NoSurfaceError:
        return float("inf")
    finally:
        model.train(was_training)


@torch.no_grad()
def eval_rays_per_second(model, cameras, synchronize_cuda: bool) -> float:
    """Rays per second of ``model.get_outputs_for_camera`` on the first of ``cameras``: rendered once to warm up
    (allocations, kernels, caches), then timed on a second render."""
    camera = cameras[0:1].to(model.device)
    model.eval()
    model.get_outputs_for_camera(camera)
    if synchronize_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.get_outputs_for_camera(camera)
    if synchronize_cuda:
        torch.cuda.synchronize()
    return int(camera.width[0, 0]) * int(camera.height[0, 0]) / (time.perf_counter() - start)


@torch.no_grad()
def training_view_psnr(pipeline, num_views: int, panel_path: Optional[Path]) -> tuple:
    """Mean ``(psnr, psnr_hit)`` over ``num_views`` evenly spaced training views re-rendered by a Stage II model."""
    from PIL import Image

    dataset = pipeline.datamanager.train_dataset
    model = pipeline.model
    model.eval()
    indices = np.linspace(0, len(dataset) - 1, min(num_views, len(dataset))).round().astype(int)
    psnr, psnr_hit = [], []
    for order, index in enumerate(indices):
        camera = dataset.cameras[int(index) : int(index) + 1].to(model.device)
        outputs = model.get_outputs_for_camera(camera)
        metrics, images = model.get_image_metrics_and_images(outputs, dataset[int(index)])
        psnr.append(metrics["psnr"])
        if "psnr_hit" in metrics:
            psnr_hit.append(metrics["psnr_hit"])
        if order == 0 and panel_path is not None:
            panel = torch.cat([images["img"], images["materials"]], dim=1).clamp(0, 1)
            Image.fromarray((panel.cpu().numpy() * 255).round().astype(np.uint8)).save(panel_path)
    return float(np.mean(psnr)), (float(np.mean(psnr_hit)) if psnr_hit else None)


class TimeBudgetSpent(Exception):
    """Raised after the step whose training time reaches the spec's budget; ``train`` ends the run there."""


def train(spec: TrainSpec) -> TrainResult:
    import trimesh

    from nero_nerfstudio.export.mesh import extract_mesh, save_mesh

    make_config = {"shape": shape_trainer_config, "neus-facto": neus_facto_trainer_config}.get(
        spec.kind, material_trainer_config
    )
    trainer_config = make_config(spec)
    planned_steps = trainer_config.max_num_iterations
    trainer = start_trainer(trainer_config, spec.threads, trainer_config.machine.seed)
    cuda = trainer_config.machine.device_type == "cuda"
    model = trainer.pipeline.model
    gt_mesh = trimesh.load(spec.gt_mesh, force="mesh") if spec.wants_curve else None
    budget = spec.time_budget_s

    curve: List[List[float]] = []
    if gt_mesh is not None:
        curve.append([0, 0.0, chamfer_to_gt(model, gt_mesh, spec.curve_mesh_resolution)])
    next_curve_seconds = spec.curve_every_s

    def add_curve_point() -> None:
        chamfer = chamfer_to_gt(model, gt_mesh, spec.curve_mesh_resolution)
        curve.append([len(timer.seconds), timer.total_seconds, chamfer])

    def curve_point_due() -> bool:
        nonlocal next_curve_seconds
        if spec.curve_every_s <= 0:
            return len(timer.seconds) % spec.curve_every == 0
        if timer.total_seconds < next_curve_seconds:
            return False
        # The next multiple of the interval after now: one point, also after a step longer than the interval.
        next_curve_seconds = (timer.total_seconds // spec.curve_every_s + 1) * spec.curve_every_s
        return True

    label = f"{spec.experiment} {spec.kind}"
    if budget is None:
        progress, task = training_progress(label, planned_steps)
    else:
        progress, task = budget_progress(label, budget)

    def after_step(step: int) -> None:
        if budget is None:
            progress.update(task, advance=1, loss=timer.losses[-1])
        else:
            progress.update(
                task, completed=min(timer.total_seconds, budget), steps=len(timer.seconds), loss=timer.losses[-1]
            )
        if gt_mesh is not None and curve_point_due():
            add_curve_point()
        if budget is not None and timer.total_seconds >= budget and len(timer.seconds) < planned_steps:
            raise TimeBudgetSpent

    timer = StepTimer(synchronize_cuda=cuda, on_step=after_step).attach(trainer)
    budget_reached = False
    with progress:
        try:
            trainer.train()
        except TimeBudgetSpent:
            budget_reached = True
            # nerfstudio writes its final checkpoint only when its loop runs out: save the last step done, so the
            # run loads (nero-eval, nero-export) like a finished one.
            trainer.save_checkpoint(trainer.step)
    if gt_mesh is not None and curve[-1][0] != len(timer.seconds):
        add_curve_point()
    result = TrainResult(
        config_path=str(trainer_config.get_base_dir() / "config.yml"),
        steps=len(timer.seconds),
        train_seconds=timer.total_seconds,
        steps_per_second=len(timer.seconds) / timer.total_seconds,
        final_loss=float(np.mean(timer.losses[-20:])),
        cuda_peak_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        budget_reached=budget_reached,
        curve=curve,
    )
    model.eval()
    if spec.kind in ("shape", "neus-facto"):
        start = time.perf_counter()
        mesh = extract_mesh(sdf_function(model), resolution=spec.mesh_resolution, device=model.device)
        result.mesh_seconds = time.perf_counter() - start
        # The synthetic parser's normalised frame is the dataset frame (docs/architecture.md): no transform needed.
        result.mesh_path = str(save_mesh(mesh, Path(spec.mesh_path)))
        result.num_vertices = len(mesh.vertices)
        cameras = trainer.pipeline.datamanager.eval_dataset.cameras
        result.eval_rays_per_second = eval_rays_per_second(model, cameras, cuda)
    else:
        panel = Path(spec.panel_path) if spec.panel_path else None
        result.train_view_psnr, result.train_view_psnr_hit = training_view_psnr(
            trainer.pipeline, spec.num_psnr_views, panel
        )
    return result


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m nero_nerfstudio.scripts.bench_train SPEC.json")
    spec = TrainSpec(**json.loads(Path(sys.argv[1]).read_text()))
    result = train(spec)
    result_path = Path(spec.result_path)
    temporary = result_path.with_name(f".{result_path.name}.tmp")
    temporary.write_text(json.dumps(asdict(result), indent=2))
    temporary.replace(result_path)


if __name__ == "__main__":
    main()
