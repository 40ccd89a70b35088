"""Stage II alone, on the ground-truth meshes, across a sweep of rendered materials: how well NeRO's material stage
recovers metallic, roughness and albedo, and how well the result relights, in one command.

The sweep crosses metallic {0, 1} x roughness {0.05, 0.15, 0.3, 0.5} x (mesh, environment) pairs (the bunny under
``courtyard``, which has no sun, and the cow under ``sunrise``, which has a strong one; ``--pairing full`` crosses
every mesh with every environment) x resolution {128, 256} px. The same scene at two resolutions separates what the
pixels hide (sub-pixel geometry, clipped highlights, both worse at 128 px) from what the method gets wrong (at 256 px).
For each scene, ``benchmarks/bench_pipeline.py``'s ``Bench`` does the work, every stage a measured child process
whose finished results are reused (an interrupted sweep resumes):

1. ``nero-render-scene`` (GlossySynthetic layout, exact ground truth) and the ground-truth relit images: the GT mesh
   and material under ``--relight-environment`` (``forest``, not a training environment);
2. ``nero-material-small`` on the GT mesh, ``nero-export materials``, ``nero-eval materials`` (mean absolute errors
   and mean predicted material over the visible vertices);
3. ``nero-relight`` of the predicted materials and ``nero-eval relight`` (NeRO's per-channel rescale, then PSNR).

The renders run one at a time (Blender takes every core), then ``--workers`` Stage II jobs side by side. Writes
``benchmarks/RESULTS_materials.md`` (every scene, and the targets on the 256 px scenes with the 128 px figures next to
them), ``benchmarks/material_sweep.png`` (ground truth | predicted, relit) and the targets table into the
``material-sweep`` section of ``benchmarks/RESULTS.md`` (the rest of that report is ``bench_pipeline.py``'s, which
keeps the section when it rewrites the file). A report covers the scenes of its command only.

Cost on 2 CPU cores (estimated from ``bench_pipeline.py``'s measured stage times; the report gives the measured wall
time): about 7 min of Stage II, export, relight and evaluation per scene on each worker, plus about 4 min of
rendering per 256 px scene and 1 min per 128 px scene. The default sweep has 32 scenes, about 3.5 hours; one mesh and
environment at 256 px (8 scenes) is about 1 hour::

    OMP_NUM_THREADS=1 python benchmarks/bench_materials.py
    OMP_NUM_THREADS=1 python benchmarks/bench_materials.py --resolutions 256 --meshes bunny --environments courtyard
    python benchmarks/bench_materials.py --full --output-dir /tmp/nero_bench_materials_full   # paper preset, a GPU
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import tyro

BENCHMARK_DIR = Path(__file__).resolve().parent
if str(BENCHMARK_DIR) not in sys.path:  # benchmarks/ is not a package: bench_pipeline is found next to this file
    sys.path.insert(0, str(BENCHMARK_DIR))

from bench_pipeline import (  # noqa: E402
    CONSOLE,
    Bench,
    BenchPipelineConfig,
    JobResult,
    SceneSpec,
    StageResult,
    _fmt,
    check_settings,
    command_line,
    relit_view,
    set_unless_given,
)

from nero_nerfstudio.scripts.bench_train import (  # noqa: E402
    check_material_overrides,
    replace_section,
    report_header,
)


@dataclass
class BenchMaterialsConfig:
    """Material sweep settings (the defaults: 32 scenes, about 3.5 hours on 2 CPU cores)."""

    output_dir: Path = Path("/tmp/nero_bench_materials")
    """Scenes, runs, materials, relit images and logs; finished stages found here are reused."""
    results: Path = BENCHMARK_DIR / "RESULTS_materials.md"
    """Markdown report of the sweep (the picture grid, ``material_sweep.png``, goes next to it)."""
    summary: Path = BENCHMARK_DIR / "RESULTS.md"
    """Report whose ``material-sweep`` section gets the targets table and links to ``results`` (the rest of the
    report is left as it is)."""
    meshes: Tuple[str, ...] = ("bunny", "cow")
    """Meshes of ``nero-render-scene`` (its GT mesh is the one Stage II trains on)."""
    environments: Tuple[str, ...] = ("courtyard", "sunrise")
    """Training environments: sunrise has a strong sun (56 % of its energy in 0.1 % of its pixels), courtyard none."""
    pairing: Literal["paired", "full"] = "paired"
    """paired: the i-th mesh under the i-th environment (as many of each); full: every mesh under every environment."""
    metallic: Tuple[float, ...] = (0.0, 1.0)
    """Metallic values of the sweep (a dielectric and a metal)."""
    roughness: Tuple[float, ...] = (0.05, 0.15, 0.3, 0.5)
    """Blender's perceptual roughness."""
    resolutions: Tuple[int, ...] = (128, 256)
    """Image width and height of the renders; every scene is rendered at each."""
    dielectric_albedo: Tuple[float, float, float] = (0.7, 0.08, 0.06)
    """Albedo (linear) of the scenes with metallic below 0.5: a saturated colour, unlike a white highlight."""
    metal_albedo: Tuple[float, float, float] = (0.9, 0.75, 0.45)
    """Albedo (linear) of the scenes with metallic 0.5 and above: gold-like."""
    num_views: int = 48
    """Rendered views per scene (NeRO's test ids among them are held out)."""
    render_samples: int = 32
    """Cycles samples per pixel of the renders (denoised)."""
    material_steps: int = 3000
    """Stage II steps (the small preset's own count; its schedule is rescaled to other counts)."""
    material_overrides: Tuple[str, ...] = ()
    """Stage II trainer settings as ``dotted.field=value`` (e.g. ``pipeline.model.estimator=nero``): sweep a variant
    of the method (in its own ``--output-dir``); ``machine.seed=1`` trains with another seed on the same renders
    (training is otherwise seeded with ``--seed``)."""
    relight_environment: str = "forest"
    """Environment of the relit images (not a training environment)."""
    relight_views: int = 4
    """Test views relit and compared with the ground truth."""
    relight_samples: int = 64
    """Cycles samples per pixel of the relit images (ground truth and predicted alike)."""
    texture_size: int = 256
    """Baked texture size of the material export (a by-product: evaluation and relight use the per-vertex
    materials)."""
    workers: int = 2
    """Stage II jobs run side by side (each training run uses ``threads`` torch threads)."""
    threads: int = 1
    """Torch threads of each Stage II run, Cycles threads of each relight."""
    seed: int = 0
    """Seed of the camera placement and of training."""
    full: bool = False
    """Paper preset (nero-material, 100k steps) on CUDA, 128 views; a GPU job."""


SWEEP_CHOICES = frozenset({
    "output_dir", "results", "summary", "meshes", "environments", "pairing", "metallic", "roughness", "resolutions",
    "workers",
})  # fmt: skip
"""Settings that choose which scenes run (their names hold their values) or where reports go, not what a finished
stage holds."""
TARGET_RESOLUTION = 256
"""The targets are for the scenes of this resolution; the others' figures go next to them."""
SECTION = "material-sweep"
"""Marked section of ``summary`` this benchmark writes."""
ENVIRONMENT_NOTES = {"courtyard": "no sun", "sunrise": "strong sun: 56 % of its energy in 0.1 % of its pixels"}


def scene_name(mesh: str, environment: str, metallic: float, roughness: float, resolution: int) -> str:
    return f"{mesh}-{environment}-m{metallic:g}-r{roughness:g}-{resolution}"


def sweep_scenes(config: BenchMaterialsConfig) -> List[SceneSpec]:
    """The sweep's scenes, grouped by (mesh, environment, resolution), then by metallic and roughness."""
    if config.pairing == "paired":
        if len(config.meshes) != len(config.environments):
            raise ValueError(
                f"--pairing paired needs as many meshes as environments (got {len(config.meshes)} and "
                f"{len(config.environments)}); use --pairing full to cross them"
            )
        pairs = list(zip(config.meshes, config.environments))
    else:
        pairs = [(mesh, environment) for mesh in config.meshes for environment in config.environments]
    scenes = []
    for mesh, environment in pairs:
        for resolution in config.resolutions:
            for metallic in config.metallic:
                metal = metallic >= 0.5
                albedo = config.metal_albedo if metal else config.dielectric_albedo
                for roughness in config.roughness:
                    name = scene_name(mesh, environment, metallic, roughness, resolution)
                    description = "metal" if metal else "dielectric"
                    scenes.append(
                        SceneSpec(name, description, mesh, environment, metallic, roughness, albedo, resolution)
                    )
    return scenes


def pipeline_config(config: BenchMaterialsConfig) -> BenchPipelineConfig:
    """The settings ``Bench`` runs the sweep's scenes with (each scene has its own resolution)."""
    return BenchPipelineConfig(
        output_dir=config.output_dir,
        num_views=config.num_views,
        render_samples=config.render_samples,
        material_steps=config.material_steps,
        material_overrides=config.material_overrides,
        relight_environment=config.relight_environment,
        relight_views=config.relight_views,
        relight_samples=config.relight_samples,
        texture_size=config.texture_size,
        workers=config.workers,
        threads=config.threads,
        seed=config.seed,
        full=config.full,
    )


SceneResult = Tuple[SceneSpec, JobResult]
"""A scene and its Stage II job on the GT mesh (reports ``material_train``, ``materials``, ``relight``)."""


# Targets --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One target of the sweep: a bound on a value of each scene it applies to."""

    text: str
    value: Callable[[JobResult], Optional[float]]
    limit: float
    applies: Callable[[SceneSpec], bool] = lambda scene: True
    at_least: bool = False
    """The value must be at least ``limit`` (otherwise at most)."""

    def met_by(self, value: Optional[float]) -> bool:
        """Whether ``value`` meets the target (a missing or NaN value does not)."""
        if value is None or np.isnan(value):
            return False
        return value >= self.limit if self.at_least else value <= self.limit

    def badness(self, value: Optional[float]) -> float:
        """Orders values from best to worst (a missing or NaN value is the worst)."""
        if value is None or np.isnan(value):
            return float("inf")
        return -value if self.at_least else value


TARGETS: Tuple[Target, ...] = (
    Target("metallic MAE <= 0.1", lambda r: r.reports["materials"]["metallic_mae"], 0.1),
    Target("roughness MAE <= 0.1 (dielectrics: metallic != 1)", lambda r: r.reports["materials"]["roughness_mae"],
           0.1, applies=lambda scene: scene.metallic != 1.0),
    Target("roughness MAE <= 0.05 (metals: metallic = 1)", lambda r: r.reports["materials"]["roughness_mae"], 0.05,
           applies=lambda scene: scene.metallic == 1.0),
    Target("relight PSNR >= 30 dB", lambda r: r.reports["relight"]["psnr"], 30.0, at_least=True),
    Target("glossy scenes (GT roughness <= 0.15): mean predicted roughness <= 0.3",
           lambda r: r.reports["materials"]["predicted_mean"]["roughness"], 0.3,
           applies=lambda scene: scene.roughness <= 0.15),
)  # fmt: skip


def target_cells(target: Target, results: Sequence[SceneResult]) -> List[str]:
    """The worst value (and its scene), the share of scenes that meet the target, and whether all do ("n/a" where
    the target applies to none of ``results``)."""
    values = [(scene.name, target.value(result)) for scene, result in results if target.applies(scene)]
    if not values:
        return ["n/a", "0/0", "n/a"]
    worst_scene, worst = max(values, key=lambda item: target.badness(item[1]))
    within = sum(target.met_by(value) for _, value in values)
    digits = 2 if target.at_least else 3
    return [f"{_fmt(worst, digits)} ({worst_scene})", f"{within}/{len(values)}",
            "met" if within == len(values) else "not met"]  # fmt: skip


def target_rows(results: Sequence[SceneResult]) -> List[str]:
    """The targets table: per target, the worst value, the scenes within and met/not met on the 256 px scenes (n/a
    without any), then the same on each other resolution of ``results`` (largest first)."""
    present = {scene.resolution for scene, _ in results}
    resolutions = sorted(present | {TARGET_RESOLUTION}, key=lambda r: (r != TARGET_RESOLUTION, -r))
    headers = ["target"]
    for resolution in resolutions:
        kind = "target" if resolution == TARGET_RESOLUTION else "for comparison"
        headers += [f"{resolution} px ({kind}): worst (scene)", "scenes within", "met"]
    rows = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for target in TARGETS:
        cells = [target.text]
        for resolution in resolutions:
            cells += target_cells(target, [(s, r) for s, r in results if s.resolution == resolution])
        rows.append("| " + " | ".join(cells) + " |")
    return rows


# Report ---------------------------------------------------------------------------------------------------------------
def _values(values: Sequence[float]) -> str:
    return ", ".join(f"{value:g}" for value in values)


def scene_rows(results: Sequence[SceneResult]) -> List[str]:
    """One row per scene: what it is, the mean predicted material, the errors, the relight PSNR, the training time."""
    rows = [
        "| scene | mesh | environment | px | GT metallic | GT roughness | metallic | roughness | albedo | "
        "metallic MAE | roughness MAE | albedo MAE | relight PSNR (dB) | training (s) |",
        "|" + " --- |" * 14,
    ]
    for scene, result in results:
        errors, predicted = result.reports["materials"], result.reports["materials"]["predicted_mean"]
        cells = [scene.name, scene.mesh, scene.environment, str(scene.resolution), f"{scene.metallic:g}",
                 f"{scene.roughness:g}", _fmt(predicted["metallic"], 2), _fmt(predicted["roughness"], 2),
                 ", ".join(f"{value:.2f}" for value in predicted["albedo"]), _fmt(errors["metallic_mae"], 3),
                 _fmt(errors["roughness_mae"], 3), _fmt(errors["albedo_mae"], 3),
                 _fmt(result.reports["relight"]["psnr"], 2),
                 _fmt(result.reports["material_train"]["train_seconds"], 0)]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def coverage(config: BenchMaterialsConfig, scenes: Sequence[SceneSpec]) -> str:
    """Which scenes a report covers, next to the default sweep's count."""
    pairs = ", ".join(dict.fromkeys(f"{scene.mesh} x {scene.environment}" for scene in scenes))
    return (
        f"{len(scenes)} scene(s) (the default sweep has {len(sweep_scenes(BenchMaterialsConfig()))}): {pairs}; "
        f"metallic {_values(config.metallic)}; roughness {_values(config.roughness)}; "
        f"{_values(config.resolutions)} px"
    )


def setup_lines(config: BenchMaterialsConfig, scenes: Sequence[SceneSpec]) -> List[str]:
    environments = dict.fromkeys(scene.environment for scene in scenes)
    notes = ", ".join(f"{e} ({ENVIRONMENT_NOTES[e]})" for e in environments if e in ENVIRONMENT_NOTES)
    preset = "nero-material (paper)" if config.full else "nero-material-small"
    overrides = ", ".join(f"`{override}`" for override in config.material_overrides)
    overridden = f" with {overrides}" if overrides else ""
    return [
        "## Setup",
        "",
        f"* Scenes: {coverage(config, scenes)}. Pairing: {config.pairing}. Albedo (linear): "
        f"({_values(config.dielectric_albedo)}) below metallic 0.5, ({_values(config.metal_albedo)}) from 0.5 up."
        + (f" Environments: {notes}." if notes else ""),
        f"* Renders: `nero-render-scene` GlossySynthetic layout, {config.num_views} views, {config.render_samples} "
        f"spp, denoised; NeRO's test ids below {config.num_views} held out (`--split-mode test`).",
        f"* Stage II: `{preset}`{overridden}, schedule rescaled to {config.material_steps} steps, on the scene's "
        "ground-truth mesh "
        "(so the errors are the material stage's own). `nero-eval materials`: mean absolute errors over the mesh "
        "vertices some camera sees (roughness is Blender's perceptual roughness; albedo linear); the predicted "
        "metallic, roughness and albedo are means over the same vertices.",
        f"* Relight: `nero-relight` under `{config.relight_environment}` (not a training environment) from "
        f"{config.relight_views} test views, {config.relight_samples} spp; ground truth is the GT mesh with the GT "
        "material rendered the same way; `nero-eval relight` (NeRO's per-channel least-squares scale, then PSNR on a "
        "white background).",
        f"* Renders one at a time, then {config.workers} Stage II jobs side by side, "
        f"`torch.set_num_threads({config.threads})` each; every stage is its own process.",
        "",
    ]


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file next to it, then a rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_markdown(
    config: BenchMaterialsConfig,
    renders: Dict[str, Dict[str, StageResult]],
    results: Sequence[SceneResult],
    seconds: float,
    command: str,
) -> None:
    """``RESULTS_materials.md``: setup, targets, every scene, the picture grid."""
    scenes = [scene for scene, _ in results]
    stages = [stage for measured in renders.values() for stage in measured.values()]
    stages += [stage for _, result in results for stage in result.stages.values()]
    reused = sum(stage.reused for stage in stages)
    lines = [
        *report_header(
            "Benchmark: material sweep (Stage II on the ground-truth meshes)", "benchmarks/bench_materials.py", command
        ),
        *setup_lines(config, scenes),
        f"Wall time of this invocation: {seconds / 60:.1f} min"
        + (
            f"; {reused} of its {len(stages)} stages were reused from an earlier invocation (their times are as "
            "measured then)"
            if reused
            else ""
        )
        + f". Sum of the wall times of all stages: {sum(stage.seconds for stage in stages) / 60:.1f} min.",
        "",
        f"## Targets (on the {TARGET_RESOLUTION} px scenes; other resolutions for comparison)",
        "",
        *target_rows(results),
        "",
        "## Every scene",
        "",
        "Mean predicted material over the visible vertices, its errors, and the relit views' PSNR.",
        "",
        *scene_rows(results),
        "",
        "## Relit test view",
        "",
        f"Rows: metallic and roughness; columns: mesh, environment and resolution, each a pair ground truth | "
        f"predicted (Stage II on the GT mesh), relit under `{config.relight_environment}`, first test view.",
        "",
        "![Relit test view of every scene, ground truth and predicted](material_sweep.png)",
        "",
    ]
    write_text(config.results, "\n".join(lines))


def write_summary(config: BenchMaterialsConfig, results: Sequence[SceneResult]) -> None:
    """The ``material-sweep`` section of ``summary``: the targets table and links to the sweep's report and grid."""
    from datetime import datetime, timezone

    folder = config.summary.parent
    report = os.path.relpath(config.results, folder)
    grid = os.path.relpath(config.results.parent / "material_sweep.png", folder)
    content = "\n".join([
        "## Material sweep (Stage II on the ground-truth meshes)",
        "",
        f"Written by `benchmarks/bench_materials.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{coverage(config, [scene for scene, _ in results])}. Every scene: [{Path(report).name}]({report}); "
        f"relit pictures: [{Path(grid).name}]({grid}).",
        "",
        *target_rows(results),
    ])  # fmt: skip
    previous = config.summary.read_text() if config.summary.is_file() else ""
    write_text(config.summary, replace_section(previous, SECTION, content))


def picture_grid(bench: Bench, scenes: Sequence[SceneSpec], path: Path) -> None:
    """Rows (metallic, roughness), columns (mesh, environment, resolution), each a tile pair ground truth | predicted
    of the first relit test view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys((scene.metallic, scene.roughness) for scene in scenes))
    groups = list(dict.fromkeys((scene.mesh, scene.environment, scene.resolution) for scene in scenes))
    by_cell = {((s.metallic, s.roughness), (s.mesh, s.environment, s.resolution)): s for s in scenes}
    tile, left, top = 1.6, 1.0, 0.8  # inches: a tile's side, the row labels' margin, the column labels' margin
    width, height = left + 2 * len(groups) * tile, top + len(rows) * tile
    figure, axes = plt.subplots(len(rows), 2 * len(groups), figsize=(width, height), squeeze=False)
    figure.subplots_adjust(left=left / width, right=1.0, top=1.0 - top / height, bottom=0.0, wspace=0.04, hspace=0.04)
    for i, row in enumerate(rows):
        for j, group in enumerate(groups):
            scene = by_cell[row, group]
            for k, name in enumerate(("gt", "gt_mesh")):
                axis = axes[i, 2 * j + k]
                axis.set_xticks([])
                axis.set_yticks([])
                for spine in axis.spines.values():
                    spine.set_visible(False)
                axis.imshow(relit_view(bench, scene, name))
                if i == 0:
                    axis.set_title("ground truth" if k == 0 else "predicted", fontsize=8)
        axes[i, 0].set_ylabel(f"metallic {row[0]:g}\nroughness {row[1]:g}", fontsize=9)
    for j, (mesh, environment, resolution) in enumerate(groups):
        first, second = axes[0, 2 * j].get_position(), axes[0, 2 * j + 1].get_position()
        figure.text((first.x0 + second.x1) / 2, 1.0 - 0.3 / height, f"{mesh}, {environment}, {resolution} px",
                    ha="center", va="center", fontsize=10)  # fmt: skip
    temporary = path.with_name(f".{path.name}.tmp.png")
    # About one image pixel per rendered pixel at the largest resolution.
    figure.savefig(temporary, dpi=max(100.0, max(group[2] for group in groups) / tile))
    plt.close(figure)
    os.replace(temporary, path)


def main(config: BenchMaterialsConfig) -> None:
    if config.full:
        from nero_nerfstudio.configs.material_configs import PAPER_STEPS

        paper = {"material_steps": PAPER_STEPS, "num_views": 128, "relight_samples": 256, "workers": 1}
        set_unless_given(config, paper)
    try:
        scenes = sweep_scenes(config)
        check_material_overrides(config.material_overrides, config.full)
    except ValueError as error:
        raise SystemExit(f"bench_materials: {error}") from None
    config.output_dir = config.output_dir.resolve()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    check_settings(config, SWEEP_CHOICES, "bench_materials")
    command = command_line("benchmarks/bench_materials.py")
    start = time.perf_counter()
    bench = Bench(pipeline_config(config))
    with bench.progress:
        renders = {scene.name: bench.render(scene, relight=True) for scene in scenes}
        jobs = bench.run_jobs([lambda s=s: bench.material_job(s) for s in scenes], config.workers)
    seconds = time.perf_counter() - start
    (config.output_dir / "results.json").write_text(
        json.dumps(
            {
                "renders": {k: {n: asdict(s) for n, s in v.items()} for k, v in renders.items()},
                "jobs": [asdict(job) for job in jobs],
            },
            indent=2,
        )
    )
    results = list(zip(scenes, jobs))
    config.results.parent.mkdir(parents=True, exist_ok=True)
    picture_grid(bench, scenes, config.results.parent / "material_sweep.png")
    write_markdown(config, renders, results, seconds, command)
    write_summary(config, results)
    CONSOLE.print(f"Wrote {config.results}, material_sweep.png and the {SECTION} section of {config.summary}")


if __name__ == "__main__":
    main(tyro.cli(BenchMaterialsConfig))
