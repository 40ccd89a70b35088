"""Stage I from photos alone against Stage I from the true cameras, on one rendered tabletop capture, in one command.

What a user's capture goes through (README, "Your own photos"), measured against the same scene with everything
known:

1. ``nero-render-scene --layout custom --tabletop``: a glossy object on a textured table among props, cameras on a
   handheld-like ring; its ``images/`` are the photos, the rest (``colmap/`` with the true cameras, ``gt/``) is the
   ground truth;
2. **from photos**: ``nero-process-data`` (pycolmap structure-from-motion, undistortion, the estimated object frame),
   then ``ns-train nero-shape-fast nero-custom`` on its output and ``nero-export mesh`` (cut at the estimated table);
3. **true cameras**: the same training and export on the rendered scene with the true cameras, sphere, up and table
   (a ``nero_frame.json`` passed with ``--frame-file``);
4. the SfM mesh is taken into the true frame by the similarity that maps the SfM camera centres onto the true ones;
   both meshes get their Chamfer distance to the ground-truth mesh.

Every stage is a measured child process (``nero_nerfstudio/scripts/stages.py``), one at a time, reused when its
output exists (an interrupted run resumes). Writes ``benchmarks/RESULTS_own_photos.md``, ``benchmarks/own_photos.png``
(a photo and the normals of the three meshes from a few views) and the ``own-photos`` section of
``benchmarks/RESULTS.md`` (``bench_pipeline.py`` keeps the section when it rewrites that report). About 35 minutes on
2 CPU cores (6 to render, 15 for each Stage I run)::

    python benchmarks/bench_own_photos.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import tyro
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

BENCHMARK_DIR = Path(__file__).resolve().parent
if str(BENCHMARK_DIR) not in sys.path:  # benchmarks/ is not a package: bench_pipeline is found next to this file
    sys.path.insert(0, str(BENCHMARK_DIR))

from bench_pipeline import CONSOLE, _fmt, check_settings, command_line  # noqa: E402

from nero_nerfstudio.process_data.colmap_sfm import SfmTool  # noqa: E402
from nero_nerfstudio.scripts.bench_train import replace_section, report_header  # noqa: E402
from nero_nerfstudio.scripts.stages import (  # noqa: E402
    Stage,
    StageResult,
    export_mesh_stage,
    render_stage,
    run_dir,
    run_measured_stage,
    train_stage,
)
from nero_nerfstudio.utils.io import atomic_write_bytes  # noqa: E402

SECTION = "own-photos"
MODEL = Path("colmap") / "sparse" / "0"
RUNS: Dict[str, Tuple[str, str]] = {
    "photos": ("from photos", "from photos (SfM poses, estimated frame)"),
    "true-cameras": ("true cameras", "true cameras, sphere, up and table"),
}
"""Run key: its short label (figure) and its row label (report)."""


@dataclass
class BenchOwnPhotosConfig:
    """Tabletop capture, Stage I settings, and where the results go."""

    output_dir: Path = Path("/tmp/nero_bench_own_photos")
    """Scene, SfM output, runs, meshes and logs; finished stages found here are reused."""
    results: Path = BENCHMARK_DIR / "RESULTS_own_photos.md"
    """Markdown report (the figure, ``own_photos.png``, goes next to it)."""
    summary: Path = BENCHMARK_DIR / "RESULTS.md"
    """Report whose ``own-photos`` section receives the Chamfer and time table."""
    mesh: str = "bunny"
    environment: str = "courtyard"
    metallic: float = 1.0
    roughness: float = 0.2
    """Blender's perceptual roughness."""
    albedo: Tuple[float, float, float] = (0.9, 0.9, 0.9)
    num_views: int = 48
    resolution: int = 400
    """Width and height of the photos; structure from motion wants them larger than Stage I does."""
    render_samples: int = 16
    sfm_tool: SfmTool = "pycolmap"
    """``nero-process-data --sfm-tool``: pycolmap (what every install has), colmap (the executable) or auto."""
    method: str = "nero-shape-fast"
    steps: Optional[int] = None
    """Stage I steps (None: the preset's own)."""
    train_resolution: int = 200
    """nero-custom's ``--max-resolution``: Stage I trains on the photos downscaled to this long side."""
    mesh_resolution: int = 192
    """Marching-cubes grid of the exported meshes."""
    figure_views: int = 3
    seed: int = 0


def work_paths(config: BenchOwnPhotosConfig) -> Dict[str, Path]:
    root = config.output_dir
    return {
        "scene": root / "scene",
        "photos": root / "processed",
        "true_frame": root / "true_nero_frame.json",
        "runs": root / "runs",
        "logs": root / "logs",
    }


def write_true_frame(scene_dir: Path, path: Path) -> None:
    """The true object frame as a ``nero_frame.json``: NeRO's sphere of the object point cloud, the true up and
    forward (``meta_info.txt``) and the true table plane (``gt/scene.json``), all in the true COLMAP frame."""
    from nero_nerfstudio.data.object_frame import ObjectFrame, point_cloud_sphere
    from nero_nerfstudio.utils.colmap_io import read_meta_info, read_point_cloud

    cloud = scene_dir / "object_point_cloud.ply"
    center, radius = point_cloud_sphere(read_point_cloud(cloud), cloud)
    up, forward = read_meta_info(scene_dir / "meta_info.txt")
    table_plane = np.asarray(json.loads((scene_dir / "gt" / "scene.json").read_text())["table_plane"])
    how = {key: "ground truth of the render" for key in ("center", "radius", "up", "forward", "table_plane")}
    ObjectFrame(center, radius, up, forward, table_plane, how).write(path)


def stages(config: BenchOwnPhotosConfig) -> List[Tuple[str, Stage]]:
    """``(run key or "", stage)`` in the order they run."""
    paths = work_paths(config)
    scene, photos = paths["scene"], paths["photos"]
    render = render_stage(
        scene, config.mesh, config.environment, config.num_views, config.resolution, config.metallic,
        config.roughness, config.albedo, samples=config.render_samples, denoise=True, seed=config.seed,
        layout="custom", tabletop=True,
    )  # fmt: skip
    sfm_argv = ("nero-process-data", "--images", str(scene / "images"), "--output-dir", str(photos), "--sfm-tool",
                config.sfm_tool)  # fmt: skip
    listed = [("", render), ("photos", Stage("sfm", sfm_argv, (scene / "images",), (photos / "nero_frame.json",)))]
    for key, data, extra in (("photos", photos, ()), ("true-cameras", scene, ("--frame-file", str(paths["true_frame"])))):
        parser = ("nero-custom", "--max-resolution", str(config.train_resolution), *extra)
        train = train_stage(config.method, data, paths["runs"], key, config.steps, name="train", dataparser=parser)
        mesh = export_mesh_stage(run_dir(paths["runs"], key, config.method) / "config.yml",
                                 config.output_dir / f"mesh_{key}.ply", config.mesh_resolution)  # fmt: skip
        listed += [(key, train), (key, mesh)]
    return listed


def run_stages(config: BenchOwnPhotosConfig) -> Dict[str, Dict[str, StageResult]]:
    """Run (or reuse) every stage; the measurements by run key ("" for the shared render) and stage name."""
    paths = work_paths(config)
    measured: Dict[str, Dict[str, StageResult]] = {}
    listed = stages(config)
    progress = Progress(TextColumn("[bold]{task.description:<34}"), BarColumn(), TextColumn("{task.fields[stage]}"),
                        TimeElapsedColumn(), console=CONSOLE)  # fmt: skip
    with progress:
        task = progress.add_task("own photos vs true cameras", total=len(listed), stage="")
        for key, stage in listed:
            progress.update(task, stage=f"{key or 'scene'}: {stage.name}")
            if key == "true-cameras" and not paths["true_frame"].is_file():
                write_true_frame(paths["scene"], paths["true_frame"])
            log = paths["logs"] / f"{key or 'scene'}_{stage.name}.log"
            measured.setdefault(key, {})[stage.name] = run_measured_stage(stage, log)
            progress.advance(task)
    return measured


# Evaluation ----------------------------------------------------------------------------------------------------------
@dataclass
class MeshScore:
    chamfer: float
    pred_to_gt: float
    gt_to_pred: float
    below_table: float
    """Deepest vertex under the true table plane, in object radii (0 when none is under it)."""


class TrueFrameMeshes(NamedTuple):
    """Everything in the true frame, loaded once for the scores and the figure."""

    alignment: Any
    """The SfM model's ``CameraAlignment`` to the true cameras."""
    gt_mesh: Any
    """The ground-truth ``trimesh.Trimesh``."""
    meshes: Dict[str, Any]
    """Each run's mesh by its key in ``RUNS`` (the photo run's moved by the alignment)."""


def meshes_in_true_frame(config: BenchOwnPhotosConfig) -> TrueFrameMeshes:
    """The SfM model's alignment to the true cameras, the GT mesh, and each run's mesh in the true frame."""
    import trimesh

    from nero_nerfstudio.eval.sfm_alignment import align_to_true_cameras

    paths = work_paths(config)
    scene = paths["scene"]
    alignment = align_to_true_cameras(paths["photos"] / MODEL, scene / MODEL)
    gt_mesh = trimesh.load(scene / "gt" / "mesh.ply", process=False)
    meshes = {}
    for key in RUNS:
        mesh = trimesh.load(config.output_dir / f"mesh_{key}.ply", process=False)
        if key == "photos":
            mesh.vertices = alignment(np.asarray(mesh.vertices))
        meshes[key] = mesh
    return TrueFrameMeshes(alignment, gt_mesh, meshes)


def evaluate(config: BenchOwnPhotosConfig, loaded: TrueFrameMeshes) -> Dict[str, object]:
    """Camera and frame errors of the SfM run, and both meshes' scores, in the true frame."""
    from nero_nerfstudio.data.object_frame import ObjectFrame, point_cloud_sphere
    from nero_nerfstudio.eval.chamfer import mesh_chamfer_distance
    from nero_nerfstudio.eval.view_geometry import normal_angular_error_deg

    paths = work_paths(config)
    scene = paths["scene"]
    info = json.loads((scene / "gt" / "scene.json").read_text())
    alignment, gt_mesh, meshes = loaded
    object_center, object_radius = point_cloud_sphere(np.asarray(gt_mesh.vertices), scene / "gt" / "mesh.ply")
    table = np.asarray(info["table_plane"], dtype=np.float64)
    frame = ObjectFrame.read(paths["photos"] / "nero_frame.json")
    frame_center = alignment(frame.center[None])[0]
    up_error = normal_angular_error_deg((alignment.rotation @ frame.up)[None], np.asarray(info["up"])[None])[0]
    scores: Dict[str, MeshScore] = {}
    for key, mesh in meshes.items():
        distance = mesh_chamfer_distance(mesh, gt_mesh)
        depth = max(0.0, -float((np.asarray(mesh.vertices) @ table[:3] + table[3]).min()))
        scores[key] = MeshScore(distance.chamfer, distance.pred_to_gt, distance.gt_to_pred, depth / object_radius)
    return {
        "object_radius": object_radius,
        "registered": len(alignment.image_names),
        "camera_error_max": float(alignment.center_errors().max()),
        "camera_error_mean": float(alignment.center_errors().mean()),
        "sfm_tool": sfm_tool_used(work_paths(config)["logs"] / "photos_sfm.log"),
        "up_error_deg": float(up_error),
        "radius_ratio": alignment.scale * frame.radius / object_radius,
        "sphere_holds_object": bool(
            np.linalg.norm(np.asarray(gt_mesh.vertices) - frame_center, axis=1).max() <= alignment.scale * frame.radius
        ),
        "center_offset": float(np.linalg.norm(frame_center - object_center) / object_radius),
        "scores": {key: asdict(score) for key, score in scores.items()},
    }


def sfm_tool_used(sfm_log: Path) -> str:
    """Which SfM tool nero-process-data ran, from its summary line ("... sparse points (pycolmap, 28 s)")."""
    match = re.search(r"sparse points \((pycolmap|colmap), ", sfm_log.read_text()) if sfm_log.is_file() else None
    return match.group(1) if match else "an unrecorded tool"


def normals_figure(config: BenchOwnPhotosConfig, loaded: TrueFrameMeshes, path: Path) -> None:
    """Rows: a few true views; columns: the photo, then the normals of the GT mesh, the true-camera run's mesh and
    the photo run's mesh (aligned), each seen through the true camera."""
    import matplotlib

    matplotlib.use("Agg")
    import imageio.v3 as iio
    import matplotlib.pyplot as plt

    from nero_nerfstudio.eval.view_geometry import cast_view
    from nero_nerfstudio.raycasting.factory import make_ray_caster
    from nero_nerfstudio.utils.colmap_io import read_colmap_cameras

    paths = work_paths(config)
    scene = paths["scene"]
    cameras = read_colmap_cameras(scene / MODEL)
    meshes = {"ground truth": loaded.gt_mesh, **{RUNS[key][0]: mesh for key, mesh in loaded.meshes.items()}}
    casters = {name: make_ray_caster(mesh.vertices, mesh.faces, backend="open3d") for name, mesh in meshes.items()}
    views = np.linspace(0, len(cameras.image_names) - 1, config.figure_views).round().astype(int)
    figure, axes = plt.subplots(len(views), 1 + len(meshes), figsize=(2.4 * (1 + len(meshes)), 2.4 * len(views)),
                                squeeze=False)  # fmt: skip
    for row, index in enumerate(views):
        width, height = cameras.sizes[index]
        photo = iio.imread(scene / "images" / cameras.image_names[index])
        columns = [("photo", photo)]
        for name, caster in casters.items():
            depth, normals = cast_view(caster, cameras.w2c[index], cameras.intrinsics[index], width, height)
            picture = np.where(np.isfinite(depth)[..., None], 0.5 + 0.5 * normals, 1.0)
            columns.append((name, picture))
        for column, (name, picture) in enumerate(columns):
            axis = axes[row, column]
            axis.imshow(picture)
            axis.set_axis_off()
            if row == 0:
                axis.set_title(name, fontsize=9)
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)


# Report --------------------------------------------------------------------------------------------------------------
def _seconds(result: Optional[StageResult], unit: str = "") -> str:
    if result is None:
        return "n/a"
    return f"{result.seconds:.0f}{unit}" + (" (reused)" if result.reused else "")


def comparison_rows(measured: Dict[str, Dict[str, StageResult]], evaluation: Dict[str, object]) -> List[str]:
    """One row per run: Chamfer to the GT mesh (absolute and in object radii) and the time from photos to mesh."""
    radius = float(evaluation["object_radius"])  # type: ignore[arg-type]
    scores: Dict[str, Dict[str, float]] = evaluation["scores"]  # type: ignore[assignment]
    lines = [
        "| run | Chamfer to GT mesh | Chamfer / object radius | pred to GT | GT to pred | deepest vertex under the "
        "table (object radii) | SfM (s) | Stage I training (s) | mesh export (s) | total (s) | peak RSS of training "
        "(MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, (_, label) in RUNS.items():
        stages_of_run, score = measured[key], scores[key]
        total = sum(result.seconds for result in stages_of_run.values())
        lines.append(
            f"| {label} | {_fmt(score['chamfer'])} | {_fmt(score['chamfer'] / radius, 3)} | "
            f"{_fmt(score['pred_to_gt'])} | {_fmt(score['gt_to_pred'])} | {_fmt(score['below_table'], 3)} | "
            f"{_seconds(stages_of_run.get('sfm'))} | {_seconds(stages_of_run['train'])} | "
            f"{_seconds(stages_of_run['mesh'])} | {total:.0f} | {stages_of_run['train'].peak_rss_mib:.0f} |"
        )
    photos, truth = scores["photos"]["chamfer"], scores["true-cameras"]["chamfer"]
    photo_time = sum(result.seconds for result in measured["photos"].values())
    true_time = sum(result.seconds for result in measured["true-cameras"].values())
    lines += ["", f"* From photos / true cameras: Chamfer {photos / truth:.2f}x, time {photo_time / true_time:.2f}x."]
    return lines


def write_reports(
    config: BenchOwnPhotosConfig, measured: Dict[str, Dict[str, StageResult]], evaluation: Dict[str, object],
    seconds: float, command: str,
) -> None:  # fmt: skip
    rows = comparison_rows(measured, evaluation)
    steps = "its own step count" if config.steps is None else f"a schedule fitted to {config.steps} steps"
    lines = report_header("Benchmark: Stage I from your own photos against the true cameras", "benchmarks/bench_own_photos.py", command)
    lines += [
        "## Setup",
        "",
        f"* Capture: `nero-render-scene --layout custom --tabletop`, the {config.mesh} (metallic {config.metallic:g}, "
        f"roughness {config.roughness:g}) on a textured table among props under `{config.environment}`, "
        f"{config.num_views} photos of {config.resolution}x{config.resolution} px, {config.render_samples} spp, "
        f"denoised; render {_seconds(measured[''].get('render'), ' s')} (shared by both runs, not in the totals).",
        f"* From photos: `nero-process-data --images scene/images --sfm-tool {config.sfm_tool}` (SfM with "
        f"{evaluation['sfm_tool']}, undistortion, the estimated object frame), then the run below on its output.",
        "* True cameras: the rendered scene's own COLMAP model, with a `nero_frame.json` holding the true sphere "
        "(NeRO's, of `object_point_cloud.ply`), up, forward and table plane, passed with `--frame-file`.",
        f"* Both: `ns-train {config.method} nero-custom --max-resolution {config.train_resolution}` ({steps}, "
        f"on the CPU), then `nero-export mesh --resolution {config.mesh_resolution}` (cut at the frame's table). "
        "Each stage is its own process, one at a time; times are wall times of those processes.",
        "* The SfM mesh is taken into the true frame by the similarity that maps the SfM camera centres onto the "
        "true ones (least squares over the registered photos). Chamfer: mean of the two mean point-to-surface "
        f"distances of 100k surface samples, in the true COLMAP frame (object radius {evaluation['object_radius']:.3f}).",
        f"* Wall time of this invocation: {seconds / 60:.1f} min. A stage marked (reused) was measured by an earlier "
        "invocation of the same command (its outputs were kept), so a total may mix invocations.",
        "",
        "## Chamfer and time",
        "",
        *rows,
        "",
        "## Structure from motion and the estimated frame",
        "",
        f"* Registered {evaluation['registered']} of {config.num_views} photos; aligned camera centres off by "
        f"{100 * evaluation['camera_error_mean']:.2f} % of the camera distance on average, "  # type: ignore[operator]
        f"{100 * evaluation['camera_error_max']:.2f} % at most.",  # type: ignore[operator]
        f"* Estimated up {evaluation['up_error_deg']:.2f} deg from the truth; sphere radius "
        f"{evaluation['radius_ratio']:.2f}x the object's, its centre {evaluation['center_offset']:.2f} object radii "
        f"from the object's; the sphere {'holds' if evaluation['sphere_holds_object'] else 'does NOT hold'} the object.",
        "",
        "## Normals",
        "",
        "A photo, then the normals of the ground-truth mesh and of the two runs' meshes, seen through true cameras.",
        "",
        "![Photo and mesh normals](own_photos.png)",
        "",
    ]
    atomic_write_bytes(config.results, "\n".join(lines).encode())
    from datetime import datetime, timezone

    report = os.path.relpath(config.results, config.summary.parent)
    content = "\n".join([
        "## Stage I from your own photos (a rendered tabletop capture)",
        "",
        f"Written by `benchmarks/bench_own_photos.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"`{config.method}` on {config.num_views} photos, from SfM poses and from the true cameras. Setup, SfM and "
        f"frame errors, pictures: [{Path(report).name}]({report}).",
        "",
        *rows,
    ])  # fmt: skip
    previous = config.summary.read_text() if config.summary.is_file() else ""
    atomic_write_bytes(config.summary, replace_section(previous, SECTION, content).encode())


def main(config: BenchOwnPhotosConfig) -> None:
    config.output_dir = config.output_dir.resolve()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    check_settings(config, frozenset({"output_dir", "results", "summary", "figure_views"}), "bench_own_photos")
    command = command_line("benchmarks/bench_own_photos.py")
    start = time.perf_counter()
    measured = run_stages(config)
    CONSOLE.print("Evaluating the meshes")
    loaded = meshes_in_true_frame(config)
    evaluation = evaluate(config, loaded)
    seconds = time.perf_counter() - start
    (config.output_dir / "results.json").write_text(json.dumps(
        {"stages": {k: {n: asdict(s) for n, s in v.items()} for k, v in measured.items()}, "evaluation": evaluation},
        indent=2,
    ))  # fmt: skip
    config.results.parent.mkdir(parents=True, exist_ok=True)
    normals_figure(config, loaded, config.results.parent / "own_photos.png")
    write_reports(config, measured, evaluation, seconds, command)
    CONSOLE.print(f"Wrote {config.results}, own_photos.png and the {SECTION} section of {config.summary}")


if __name__ == "__main__":
    main(tyro.cli(BenchOwnPhotosConfig))
