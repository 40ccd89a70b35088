"""The material sweep benchmark: its scene list, its targets table, the marked sections it shares RESULTS.md through,
and one tiny sweep end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from PIL import Image

from nero_nerfstudio.configs.material_configs import small_trainer_config
from nero_nerfstudio.scripts.bench_train import (
    TrainSpec,
    apply_overrides,
    marked_sections,
    material_trainer_config,
    replace_section,
)

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def test_paired_sweep_puts_each_mesh_under_its_environment(bench_materials):
    scenes = bench_materials.sweep_scenes(bench_materials.BenchMaterialsConfig())
    assert len(scenes) == 2 * 2 * 4 * 2  # (mesh, environment) pairs x resolutions x metallic x roughness
    assert len({scene.name for scene in scenes}) == len(scenes)
    assert {(scene.mesh, scene.environment) for scene in scenes} == {("bunny", "courtyard"), ("cow", "sunrise")}
    by_name = {scene.name: scene for scene in scenes}
    gold = by_name["bunny-courtyard-m1-r0.05-256"]
    assert (gold.metallic, gold.roughness, gold.resolution, gold.albedo) == (1.0, 0.05, 256, (0.9, 0.75, 0.45))
    red = by_name["cow-sunrise-m0-r0.5-128"]
    assert (red.metallic, red.roughness, red.resolution, red.albedo) == (0.0, 0.5, 128, (0.7, 0.08, 0.06))
    assert {scene.roughness for scene in scenes} == {0.05, 0.15, 0.3, 0.5}
    assert {scene.resolution for scene in scenes} == {128, 256}


def test_full_sweep_crosses_meshes_and_environments(bench_materials):
    config = bench_materials.BenchMaterialsConfig(
        pairing="full", meshes=("bunny", "cow", "sphere"), environments=("courtyard", "sunrise"), metallic=(1.0,),
        roughness=(0.3,), resolutions=(256,),
    )  # fmt: skip
    names = [scene.name for scene in bench_materials.sweep_scenes(config)]
    assert names == [f"{mesh}-{environment}-m1-r0.3-256" for mesh in ("bunny", "cow", "sphere")
                     for environment in ("courtyard", "sunrise")]  # fmt: skip
    assert len(bench_materials.sweep_scenes(bench_materials.BenchMaterialsConfig(pairing="full"))) == 64
    with pytest.raises(ValueError, match="as many meshes as environments"):
        bench_materials.sweep_scenes(bench_materials.BenchMaterialsConfig(meshes=("bunny", "cow", "sphere")))


def _fake_result(bench_materials, metallic_mae: float, roughness_mae: float, psnr: float, roughness: float):
    """A Stage II job's reports as ``Bench.material_job`` reads them."""
    return bench_materials.JobResult(
        scene="", kind="material-gt-mesh",
        reports={
            "materials": {"metallic_mae": metallic_mae, "roughness_mae": roughness_mae, "albedo_mae": 0.05,
                          "predicted_mean": {"metallic": 0.5, "roughness": roughness, "albedo": [0.5, 0.4, 0.3]}},
            "relight": {"psnr": psnr},
            "material_train": {"train_seconds": 100.0},
        },
    )  # fmt: skip


def _table(rows: List[str]) -> Dict[str, List[str]]:
    """Cells after the first of each body row of a markdown table, by its first cell."""
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
    return {row[0]: row[1:] for row in cells}


def test_targets_are_judged_on_256_px_with_128_px_beside(bench_materials):
    config = bench_materials.BenchMaterialsConfig(
        meshes=("bunny",), environments=("courtyard",), roughness=(0.05, 0.5), resolutions=(128, 256)
    )
    scenes = {scene.name: scene for scene in bench_materials.sweep_scenes(config)}
    # metallic MAE, roughness MAE, relight PSNR, mean predicted roughness
    values = {
        "bunny-courtyard-m0-r0.05-256": (0.02, 0.08, 31.0, 0.13),
        "bunny-courtyard-m0-r0.5-256": (0.05, 0.09, 32.0, 0.45),  # rough: its 0.45 is no glossy miss
        "bunny-courtyard-m1-r0.05-256": (0.03, 0.07, 30.5, 0.12),  # within 0.1, not within the metals' 0.05
        "bunny-courtyard-m1-r0.5-256": (0.04, 0.04, 33.0, 0.48),
        "bunny-courtyard-m0-r0.05-128": (0.15, 0.2, 28.0, 0.35),  # misses all four of its targets
        "bunny-courtyard-m0-r0.5-128": (0.05, 0.09, 31.0, 0.45),
        "bunny-courtyard-m1-r0.05-128": (0.03, 0.03, 31.0, 0.1),
        "bunny-courtyard-m1-r0.5-128": (0.04, 0.04, 31.0, 0.5),
    }
    results = [(scenes[name], _fake_result(bench_materials, *value)) for name, value in values.items()]
    rows = bench_materials.target_rows(results)
    assert rows[0].startswith(
        "| target | 256 px (target): worst (scene) | scenes within | met | 128 px (for comparison)"
    )
    table = _table(rows)
    assert table["metallic MAE <= 0.1"] == ["0.050 (bunny-courtyard-m0-r0.5-256)", "4/4", "met",
                                            "0.150 (bunny-courtyard-m0-r0.05-128)", "3/4", "not met"]  # fmt: skip
    assert table["roughness MAE <= 0.1 (dielectrics: metallic != 1)"][1:3] == ["2/2", "met"]
    assert table["roughness MAE <= 0.05 (metals: metallic = 1)"] == [
        "0.070 (bunny-courtyard-m1-r0.05-256)", "1/2", "not met", "0.040 (bunny-courtyard-m1-r0.5-128)", "2/2", "met"
    ]  # fmt: skip
    assert table["relight PSNR >= 30 dB"] == ["30.50 (bunny-courtyard-m1-r0.05-256)", "4/4", "met",
                                              "28.00 (bunny-courtyard-m0-r0.05-128)", "3/4", "not met"]  # fmt: skip
    glossy = table["glossy scenes (GT roughness <= 0.15): mean predicted roughness <= 0.3"]
    assert glossy == ["0.130 (bunny-courtyard-m0-r0.05-256)", "2/2", "met",
                      "0.350 (bunny-courtyard-m0-r0.05-128)", "1/2", "not met"]  # fmt: skip

    dielectrics = [(scene, result) for scene, result in results if scene.metallic == 0.0 and scene.resolution == 256]
    only_dielectrics = _table(bench_materials.target_rows(dielectrics))
    assert list(only_dielectrics["roughness MAE <= 0.05 (metals: metallic = 1)"]) == ["n/a", "0/0", "n/a"]
    nan = [(scenes["bunny-courtyard-m1-r0.5-256"], _fake_result(bench_materials, 0.0, 0.0, float("nan"), 0.5))]
    assert _table(bench_materials.target_rows(nan))["relight PSNR >= 30 dB"][1:] == ["0/1", "not met"]


def test_a_marked_section_is_replaced_or_appended():
    report = "# Pipeline\n\nNumbers.\n"
    appended = replace_section(report, "material-sweep", "## Sweep\n\nfirst\n")
    assert appended == report + "\n<!-- begin: material-sweep -->\n## Sweep\n\nfirst\n<!-- end: material-sweep -->\n"
    assert replace_section("", "other", "x") == "<!-- begin: other -->\nx\n<!-- end: other -->\n"
    both = replace_section(appended, "other", "kept") + "Tail.\n"
    replaced = replace_section(both, "material-sweep", "second")
    assert replaced == both.replace("## Sweep\n\nfirst", "second")  # the rest, the other section included, as it was
    assert marked_sections(replaced) == {"material-sweep": "second", "other": "kept"}
    assert marked_sections(report) == {}


def test_bench_pipeline_keeps_marked_sections_when_it_rewrites_its_report(bench_materials, tmp_path: Path):
    pipeline = sys.modules[bench_materials.BenchPipelineConfig.__module__]
    results = tmp_path / "RESULTS.md"
    results.write_text(replace_section("# An older pipeline report\n", "material-sweep", "sweep targets"))
    config = pipeline.BenchPipelineConfig(results=results, scenes=())
    pipeline.write_markdown(config, {}, [], 60.0, 30.0, "python benchmarks/bench_pipeline.py")
    text = results.read_text()
    assert "An older pipeline report" not in text and text.startswith("# Benchmark: the NeRO pipeline")
    assert marked_sections(text) == {"material-sweep": "sweep targets"}


def test_overrides_set_nested_trainer_fields_with_their_types():
    trainer = small_trainer_config()
    apply_overrides(trainer, [
        "pipeline.model.estimator=nero", "pipeline.model.background_light_mult=0",
        "pipeline.datamanager.pixel_footprint_samples=0", "pipeline.model.saturated_pixels_as_lower_bound=false",
    ])  # fmt: skip
    model = trainer.pipeline.model
    assert model.estimator == "nero" and model.saturated_pixels_as_lower_bound is False
    assert model.background_light_mult == 0.0 and isinstance(model.background_light_mult, float)
    assert trainer.pipeline.datamanager.pixel_footprint_samples == 0
    with pytest.raises(ValueError, match="no field 'pipeline.model.estimater'"):
        apply_overrides(trainer, ["pipeline.model.estimater=nero"])
    with pytest.raises(ValueError, match="dotted.field=value"):
        apply_overrides(trainer, ["pipeline.model.estimator"])
    with pytest.raises(ValueError, match="pipeline.model.shadowing must be one of schlick, smith"):
        apply_overrides(trainer, ["pipeline.model.shadowing=smiht"])
    apply_overrides(trainer, ["pipeline.model.shadowing=schlick"])
    assert model.shadowing == "schlick"


def test_a_machine_seed_override_seeds_stage_two_training(tmp_path: Path):
    """Training is seeded with the trainer's machine.seed: the benchmark's seed, unless an override sets another
    (so a second seed needs no new renders)."""
    spec = TrainSpec(
        kind="material", scene=str(tmp_path), output_dir=str(tmp_path), experiment="x",
        result_path=str(tmp_path / "r.json"), steps=10, mesh_path=str(tmp_path / "mesh.ply"), seed=5,
    )  # fmt: skip
    assert material_trainer_config(spec).machine.seed == 5
    spec.overrides = ["machine.seed=1"]
    assert material_trainer_config(spec).machine.seed == 1


def test_a_mistyped_override_stops_the_sweep_in_one_line_before_any_stage(bench_materials, tmp_path: Path):
    output = tmp_path / "sweep"
    config = bench_materials.BenchMaterialsConfig(output_dir=output, material_overrides=("pipeline.model.estimater=x",))
    with pytest.raises(SystemExit, match=r"^bench_materials: override .* the config has no field [^\n]*$"):
        bench_materials.main(config)
    assert not output.exists()


def test_a_folder_is_refused_under_other_settings_but_not_for_a_setting_it_predates(bench_materials, tmp_path: Path):
    check_settings = bench_materials.check_settings
    config = bench_materials.BenchMaterialsConfig(output_dir=tmp_path)
    check_settings(config, bench_materials.SWEEP_CHOICES, "bench_materials")
    settings = tmp_path / "settings.json"
    older = {k: v for k, v in json.loads(settings.read_text()).items() if k != "material_overrides"}
    settings.write_text(json.dumps(older))  # written before material_overrides existed: its default
    check_settings(config, bench_materials.SWEEP_CHOICES, "bench_materials")
    config.material_overrides = ("pipeline.model.estimator=nero",)
    with pytest.raises(SystemExit, match=r"other settings \(material_overrides\)"):
        check_settings(config, bench_materials.SWEEP_CHOICES, "bench_materials")


@pytest.mark.slow
def test_tiny_sweep_writes_a_report_a_picture_grid_and_its_results_section(tmp_path: Path):
    """One scene with a few steps of every stage; a rerun reuses every stage and rewrites the section in place."""
    results, summary = tmp_path / "RESULTS_materials.md", tmp_path / "RESULTS.md"
    summary.write_text("# The pipeline's report\n\nIts numbers.\n")
    command = [
        sys.executable, str(BENCHMARK_DIR / "bench_materials.py"), "--output-dir", str(tmp_path / "bench"),
        "--results", str(results), "--summary", str(summary), "--meshes", "sphere", "--environments", "sunrise",
        "--metallic", "1", "--roughness", "0.15", "--resolutions", "24", "--num-views", "12", "--render-samples", "4",
        "--material-steps", "20", "--relight-views", "1", "--relight-samples", "4", "--texture-size", "16",
        "--workers", "1", "--material-overrides", "pipeline.model.estimator=nero",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report = results.read_text()
    row = re.search(r"^\| sphere-sunrise-m1-r0\.15-24 \|(.*)\|$", report, re.MULTILINE)
    assert row is not None, report
    cells = [cell.strip() for cell in row.group(1).split("|")]
    assert cells[:5] == ["sphere", "sunrise", "24", "1", "0.15"]
    numbers = np.array([float(cell) for cell in cells[5:7] + cells[8:]])  # "n/a" would not parse; albedo is 3 numbers
    assert numbers.shape == (7,) and np.isfinite(numbers).all()
    assert (numbers[:5] >= 0).all() and (numbers[:5] <= 1).all()  # predicted metallic, roughness, the MAEs
    assert len([float(value) for value in cells[7].split(",")]) == 3  # predicted albedo
    # No 256 px scene: the targets are not measured; the 24 px scene's figures are next to them.
    targets = (
        r"^\| metallic MAE <= 0\.1 \| n/a \| 0/0 \| n/a \| \d\.\d{3} \(sphere-sunrise-m1-r0\.15-24\) \| [01]/1 \| "
    )
    assert re.search(targets, report, re.MULTILINE), report

    # The override reached the Stage II run, and the report says so.
    assert "`nero-material-small` with `pipeline.model.estimator=nero`" in report
    (run_config,) = (tmp_path / "bench").glob("**/config.yml")
    assert "estimator: nero" in run_config.read_text()

    grid = np.asarray(Image.open(tmp_path / "material_sweep.png").convert("RGB"))
    assert grid.shape[0] > 100 and grid.shape[1] > 200 and grid.std() > 10

    text = summary.read_text()
    assert text.startswith("# The pipeline's report\n\nIts numbers.\n\n<!-- begin: material-sweep -->")
    sections = marked_sections(text)
    assert "[RESULTS_materials.md](RESULTS_materials.md)" in sections["material-sweep"]
    assert "[material_sweep.png](material_sweep.png)" in sections["material-sweep"]

    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "stages were reused" in results.read_text()
    assert summary.read_text().count("<!-- begin: material-sweep -->") == 1
