"""The stage table: skip-if-done, the command lines it builds, and the measured runner of the benchmark."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from nero_nerfstudio.scripts.bench_train import TrainSpec, bench_train_stage, train
from nero_nerfstudio.scripts.demo import ALL_STAGES, DemoConfig
from nero_nerfstudio.scripts.stages import (
    PipelineSettings,
    Stage,
    StageFailedError,
    pipeline_stages,
    relight_views_stage,
    run_child,
    run_measured_stage,
    run_stage,
    timing_path,
)

QUIET = Console(quiet=True)


def appending_stage(output: Path, log: Path, **options) -> Stage:
    """A stage whose command appends a line to ``log`` (one line per run) and writes ``output``."""
    script = f"open({str(log)!r}, 'a').write('ran\\n'); open({str(output)!r}, 'w').write('done')"
    return Stage("append", ("python", "-c", script), outputs=(output,), **options)


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_stage_runs_until_its_outputs_exist(tmp_path: Path):
    stage = appending_stage(tmp_path / "out.txt", tmp_path / "log.txt")
    assert not stage.done()
    assert run_stage(stage, QUIET) is True
    assert runs(tmp_path / "log.txt") == 1 and stage.done()
    assert run_stage(stage, QUIET) is False  # skipped
    assert runs(tmp_path / "log.txt") == 1
    (tmp_path / "out.txt").unlink()
    assert run_stage(stage, QUIET) is True
    assert runs(tmp_path / "log.txt") == 2


def test_a_stage_marked_to_always_run_runs_with_its_outputs_present(tmp_path: Path):
    stage = appending_stage(tmp_path / "out.txt", tmp_path / "log.txt", skip_if_done=False)
    (tmp_path / "out.txt").write_text("old")
    assert not stage.done()
    run_stage(stage, QUIET)
    run_stage(stage, QUIET)
    assert runs(tmp_path / "log.txt") == 2


def test_a_glob_output_is_done_once_a_matching_file_exists(tmp_path: Path):
    checkpoints = tmp_path / "run" / "nerfstudio_models"
    stage = Stage("train", ("ns-train",), outputs=(tmp_path / "run" / "config.yml", checkpoints / "step-*.ckpt"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yml").write_text("")
    checkpoints.mkdir()
    (checkpoints / ".step-000000009.abc.tmp.ckpt").write_text("")  # a killed run's temporary file
    assert not stage.done()
    (checkpoints / "step-000000009.ckpt").write_text("")
    assert stage.done()


def test_missing_inputs_and_failing_commands_stop_the_stage(tmp_path: Path):
    needs = Stage("mesh", ("python", "-c", "pass"), inputs=(tmp_path / "config.yml",), outputs=(tmp_path / "m.ply",))
    with pytest.raises(StageFailedError, match=r"stage mesh needs .*config\.yml"):
        run_stage(needs, QUIET)
    failing = Stage("fails", ("python", "-c", "import sys; sys.exit(4)"), outputs=(tmp_path / "never",))
    with pytest.raises(StageFailedError, match="`python` failed with exit code 4"):
        run_stage(failing, QUIET)


def test_in_process_stage_calls_its_function(tmp_path: Path):
    calls = []
    stage = Stage("parse", (), inputs=(tmp_path,), function=lambda: calls.append(1))
    assert run_stage(stage, QUIET) and run_stage(stage, QUIET)  # no outputs: never done
    assert calls == [1, 1]


def test_command_resolves_the_program_in_this_environment():
    assert Stage("a", ("python", "-c", "pass")).command() == [sys.executable, "-c", "pass"]
    assert Stage("b", ("nero-eval", "shape")).command() == [str(Path(sys.executable).parent / "nero-eval"), "shape"]


def test_run_child_reports_the_child_peak_memory_and_fails_with_its_log(tmp_path: Path):
    # Memory is sampled every 0.2 s: the child holds its 300 MiB for a second.
    allocate = "import numpy, time; a = numpy.ones(300 * 2**20 // 8); print('allocated', a.sum() > 0); time.sleep(1)"
    result = run_child([sys.executable, "-c", allocate], tmp_path / "alloc.log")
    assert result.peak_rss_mib > 300.0
    assert result.seconds > 0.0
    assert "allocated True" in (tmp_path / "alloc.log").read_text()
    small = run_child([sys.executable, "-c", "pass"], tmp_path / "small.log")
    assert small.peak_rss_mib < result.peak_rss_mib - 200.0

    with pytest.raises(RuntimeError, match=r"exit 3.*failing\.log:\n.*boom"):
        run_child([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "failing.log")


def test_a_measured_stage_is_reused_with_the_timing_measured_when_it_ran(tmp_path: Path):
    stage = appending_stage(tmp_path / "report.json", tmp_path / "log.txt")
    first = run_measured_stage(stage, tmp_path / "logs" / "append.log")
    assert not first.reused and first.seconds > 0 and runs(tmp_path / "log.txt") == 1
    assert timing_path(stage) == tmp_path / ".report.json.timing.json"
    again = run_measured_stage(stage, tmp_path / "logs" / "append.log")
    assert again.reused and again.seconds == first.seconds and runs(tmp_path / "log.txt") == 1
    timing_path(stage).unlink()  # outputs without a measurement (an older layout): measured again
    assert not run_measured_stage(stage, tmp_path / "logs" / "append.log").reused
    assert runs(tmp_path / "log.txt") == 2


def demo_settings(output_dir: Path) -> PipelineSettings:
    return PipelineSettings(
        output_dir=output_dir, num_views=16, resolution=32, shape_steps=30, material_steps=None, mesh_resolution=64,
        environment="forest", relight_environment="sunset", relight_frames=2, relight_resolution=48, relight_samples=4,
    )  # fmt: skip


def test_pipeline_stages_are_the_demo_stages_in_order():
    stages = pipeline_stages(demo_settings(Path("out")))
    assert tuple(stage.name for stage in stages) == ALL_STAGES
    assert [stage.name for stage in stages if stage.skip_if_done and stage.outputs] == ["render", "shape", "material"]


def test_pipeline_stage_command_lines(tmp_path: Path):
    stages = {stage.name: stage for stage in pipeline_stages(demo_settings(Path("out")))}
    assert shlex.join(stages["render"].argv) == (
        "nero-render-scene --output-dir out/scene --layout synthetic --mesh bunny --environment forest "
        "--num-views 16 --resolution 32 --metallic 1.0 --roughness 0.2 --albedo 0.8 0.8 0.8"
    )
    assert shlex.join(stages["shape"].argv) == (
        "ns-train nero-shape-fast --machine.device-type cpu --vis tensorboard --viewer.quit-on-train-completion True "
        "--output-dir out/outputs --experiment-name demo --timestamp run --max-num-iterations 30 "
        "--steps-per-eval-image 10 nero-synthetic --data out/scene"
    )
    assert stages["shape"].outputs[-1] == Path("out/outputs/demo/nero-shape-fast/run/nerfstudio_models/step-*.ckpt")
    # No step count: the preset's own.
    assert "--max-num-iterations" not in stages["material"].argv
    assert stages["material"].argv[2:4] == ("--pipeline.model.mesh-path", "out/mesh.ply")
    assert stages["material"].inputs == (Path("out/scene"), Path("out/mesh.ply"))
    assert shlex.join(stages["mesh"].argv) == (
        "nero-export mesh --load-config out/outputs/demo/nero-shape-fast/run/config.yml --resolution 64 "
        "--output-path out/mesh.ply"
    )
    assert stages["mesh"].inputs == (Path("out/outputs/demo/nero-shape-fast/run/config.yml"),)
    assert shlex.join(stages["relight"].argv) == (
        "nero-relight --mesh out/materials/mesh.ply --material out/materials --hdr sunset --output-dir out/relit "
        "--run-config out/outputs/demo/nero-material-small/run/config.yml --resolution 48 --num-frames 2 "
        "--samples 4 --video out/relit/turntable.gif"
    )


def test_demo_quick_settings():
    quick = DemoConfig(quick=True, output_dir=Path("d")).settings()
    assert (quick.num_views, quick.resolution, quick.shape_steps, quick.material_steps) == (32, 64, 500, 200)
    assert (quick.relight_frames, quick.relight_resolution, quick.relight_samples) == (8, 64, 16)
    full = DemoConfig(output_dir=Path("d"), shape_steps=50).settings()
    assert (full.num_views, full.resolution, full.shape_steps, full.material_steps) == (64, 128, 50, 1500)
    assert (full.relight_frames, full.relight_resolution) == (24, 128)


def test_demo_skips_a_finished_render_and_runs_the_in_process_parse(tmp_path: Path, monkeypatch):
    (tmp_path / "scene" / "gt").mkdir(parents=True)
    (tmp_path / "scene" / "gt" / "scene.json").write_text("{}")
    parsed = []
    monkeypatch.setattr("nero_nerfstudio.scripts.stages.describe_scene", lambda scene_dir: parsed.append(scene_dir))
    DemoConfig(output_dir=tmp_path, stages=("render", "parse")).main()
    assert parsed == [tmp_path / "scene"]


def test_demo_reports_a_missing_input_of_a_later_stage(tmp_path: Path):
    with pytest.raises(SystemExit, match=r"nero-demo: stage mesh needs .*nero-shape-fast/run/config\.yml"):
        DemoConfig(output_dir=tmp_path, stages=("mesh",)).main()


def test_benchmark_training_stage(tmp_path: Path):
    spec = TrainSpec(
        kind="shape", scene=str(tmp_path / "scene"), output_dir=str(tmp_path / "runs"), experiment="e",
        result_path=str(tmp_path / "train_split-sum.json"), steps=8, mesh_path=str(tmp_path / "mesh.ply"),
    )  # fmt: skip
    stage = bench_train_stage(spec, "shape training")
    spec_path = tmp_path / "train_split-sum_spec.json"
    assert stage.argv == ("python", "-m", "nero_nerfstudio.scripts.bench_train", str(spec_path))
    assert stage.inputs == (spec_path, tmp_path / "scene")
    assert stage.outputs == (tmp_path / "mesh.ply", tmp_path / "train_split-sum.json")
    spec.save()
    assert TrainSpec(**json.loads(spec.spec_path.read_text())) == spec
    material = bench_train_stage(TrainSpec(**{**json.loads(spec.spec_path.read_text()), "kind": "material"}), "m")
    assert tmp_path / "mesh.ply" in material.inputs and material.outputs == (tmp_path / "train_split-sum.json",)


def test_benchmark_training_spec_presets_and_time_budget(tmp_path: Path):
    spec = TrainSpec(
        kind="shape", scene="s", output_dir="o", experiment="e", result_path=str(tmp_path / "r.json"), steps=8
    )  # fmt: skip
    # Without a preset: the small one, the paper one with ``full`` (what callers from before the presets get).
    assert spec.shape_preset == "small" and replace(spec, full=True).shape_preset == "paper"
    assert replace(spec, preset="fast", full=True).shape_preset == "fast"
    assert replace(spec, preset="small", full=True).shape_preset == "small"
    assert not spec.wants_curve and not replace(spec, gt_mesh="m.ply").wants_curve
    assert replace(spec, gt_mesh="m.ply", curve_every_s=30.0).wants_curve
    budgeted = replace(spec, preset="fast", time_budget_s=480.0, curve_every_s=30.0)
    budgeted.save()
    assert TrainSpec(**json.loads(budgeted.spec_path.read_text())) == budgeted


@pytest.mark.slow
def test_a_time_budget_stops_the_run_with_a_loadable_checkpoint(synthetic_scene: Path, tmp_path: Path):
    """nero-shape-fast planned for 2500 steps, stopped by a 1 s budget: a few steps, a checkpoint at the last one that
    eval_setup loads, a curve that ends there, and the inference speed of a held-out view."""
    from nerfstudio.utils.eval_utils import eval_setup

    spec = TrainSpec(
        kind="shape", preset="fast", scene=str(synthetic_scene), output_dir=str(tmp_path / "runs"), experiment="e",
        result_path=str(tmp_path / "train.json"), steps=2500, num_rays=128, time_budget_s=1.0, curve_every_s=0.5,
        gt_mesh=str(synthetic_scene / "gt" / "mesh.ply"), curve_mesh_resolution=24, mesh_resolution=32,
        mesh_path=str(tmp_path / "mesh.ply"),
    )  # fmt: skip
    result = train(spec)
    assert result.budget_reached and 1 <= result.steps < 2500
    assert result.train_seconds >= 1.0 and result.eval_rays_per_second > 0
    assert result.curve[0][:2] == [0, 0.0] and result.curve[-1][:2] == [result.steps, result.train_seconds]
    assert all(later[1] > earlier[1] for earlier, later in zip(result.curve, result.curve[1:]))
    assert Path(result.mesh_path).is_file() and result.num_vertices > 0
    _, pipeline, checkpoint_path, step = eval_setup(Path(result.config_path), test_mode="inference")
    assert checkpoint_path.name == f"step-{result.steps - 1:09d}.ckpt" and step == result.steps - 1
    assert pipeline.model.field is not None


def test_relight_views_stage_is_done_with_its_last_frame(tmp_path: Path):
    stage = relight_views_stage(tmp_path / "mat", "sunset", tmp_path / "relit", tmp_path / "scene", ["3", "7"], 4, 1)
    assert stage.argv[stage.argv.index("--view-ids") + 1 : stage.argv.index("--samples")] == ("3", "7")
    # The benchmark's measurement file of a relight stage (older output folders hold it under this name).
    assert timing_path(stage) == tmp_path / "relit" / ".7.png.timing.json"


def test_a_measured_training_stage_keeps_its_timing_beside_its_config_not_among_its_checkpoints(tmp_path: Path):
    """nerfstudio's loader parses the name of every file in nerfstudio_models/; a stray one breaks it."""
    trained = Stage("train", ("true",), outputs=(tmp_path / "config.yml", tmp_path / "models" / "step-*.ckpt"))
    assert timing_path(trained) == tmp_path / ".config.yml.timing.json"
    with pytest.raises(ValueError, match="needs an output that is a file, not only patterns"):
        timing_path(Stage("train", ("true",), outputs=(tmp_path / "models" / "step-*.ckpt",)))
