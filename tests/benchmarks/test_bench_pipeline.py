"""The pipeline benchmark's command runs end to end (tiny settings), and the Stage I comparison's report derives its
figures from the measured curves; its measured runner is tested in tests/scripts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


# [steps, training seconds, Chamfer]: no surface at the start, then falling.
FAST_CURVE = [[0, 0.0, float("inf")], [40, 30.0, 0.04], [80, 60.0, 0.02], [100, 75.0, 0.012]]
SMALL_CURVE = [[0, 0.0, 0.2], [100, 30.0, 0.1], [200, 60.0, 0.05], [300, 90.0, 0.03], [400, 120.0, 0.02]]
SMALL_CURVE_BETTER = SMALL_CURVE[:-1] + [[400, 150.0, 0.005]]
"""Ends below anything FAST_CURVE reaches."""


def test_a_curve_is_read_at_a_time_between_its_points(bench_pipeline):
    chamfer_at_time = bench_pipeline.chamfer_at_time
    assert chamfer_at_time(SMALL_CURVE, 0.0) == 0.2
    assert chamfer_at_time(SMALL_CURVE, 75.0) == pytest.approx(0.04)
    assert chamfer_at_time(SMALL_CURVE, 90.0) == pytest.approx(0.03)
    assert chamfer_at_time(SMALL_CURVE, 500.0) == 0.02  # after the end: the run's last value
    assert chamfer_at_time(FAST_CURVE, 15.0) == float("inf")  # half-way from no surface
    assert chamfer_at_time(FAST_CURVE, 30.0) == 0.04


def test_the_time_a_curve_reaches_a_chamfer(bench_pipeline):
    time_to_chamfer = bench_pipeline.time_to_chamfer
    assert time_to_chamfer(SMALL_CURVE, 0.04) == pytest.approx(75.0)
    assert time_to_chamfer(SMALL_CURVE, 0.05) == pytest.approx(60.0)  # first point at or below
    assert time_to_chamfer(SMALL_CURVE, 0.3) == 0.0
    assert time_to_chamfer(SMALL_CURVE, 0.01) is None  # never
    assert time_to_chamfer(FAST_CURVE, 0.05) == 30.0  # the point before has no surface: no interpolation
    assert time_to_chamfer(FAST_CURVE, 0.03) == pytest.approx(45.0)


def test_stage_one_figures_compare_fast_with_small(bench_pipeline):
    figures = bench_pipeline.stage_one_figures(FAST_CURVE, SMALL_CURVE)
    assert (figures.fast_seconds, figures.fast_chamfer) == (75.0, 0.012)
    assert figures.small_chamfer_same_time == pytest.approx(0.04)
    assert figures.chamfer_ratio == pytest.approx(0.3)
    assert (figures.small_seconds, figures.small_chamfer) == (120.0, 0.02)
    assert figures.fast_seconds_to_small == pytest.approx(60.0)
    assert figures.time_fraction == pytest.approx(0.5)
    assert figures.time_fraction_above is None
    unreached = bench_pipeline.stage_one_figures(FAST_CURVE, SMALL_CURVE_BETTER)
    assert unreached.fast_seconds_to_small is None and unreached.time_fraction is None
    assert unreached.time_fraction_above == pytest.approx(0.5)  # fast's 75 s of small's 150 s, and more
    alone = bench_pipeline.stage_one_figures(FAST_CURVE, None)
    assert alone.chamfer_ratio is None and alone.time_fraction is None and alone.time_fraction_above is None


def test_stage_one_targets_are_computed_and_judged(bench_pipeline):
    """Targets from the measured curves, final meshes and memory: met, missed, or n/a for a missing small run."""
    StageResult, JobResult = bench_pipeline.StageResult, bench_pipeline.JobResult

    def job(scene: str, kind: str, curve, final_chamfer: float, peak_mib: float = 1500.0):
        return JobResult(
            scene=scene, kind=kind, stages={"shape training": StageResult(seconds=1.0, peak_rss_mib=peak_mib)},
            reports={"train": {"curve": curve}, "shape": {"chamfer_gt_mesh": final_chamfer}},
        )  # fmt: skip

    jobs = [
        job("mirror-bunny", "nero-shape-fast", FAST_CURVE, 0.008),
        job("mirror-bunny", "nero-shape-small", SMALL_CURVE, 0.019),
        job("rough-gold-suzanne", "nero-shape-fast", FAST_CURVE, 0.0105),
        job("rough-gold-suzanne", "nero-shape-small", SMALL_CURVE_BETTER, 0.004),
        job("glossy-red-torus", "nero-shape-fast", FAST_CURVE, 0.013, peak_mib=5000.0),
        job("glossy-cow", "nero-shape-fast", FAST_CURVE, 0.03),
    ]
    config = bench_pipeline.BenchPipelineConfig(small_steps=400)
    rows = {tuple(cell.strip() for cell in row.split("|")[1:4]): row.split("|")[4].strip()
            for row in bench_pipeline.target_rows(config, jobs)[2:]}  # fmt: skip
    ratio = "fast / small Chamfer at equal training time <= 0.5"
    assert rows[(ratio, "mirror-bunny", "0.300")] == "yes"
    assert rows[(ratio, "glossy-red-torus", "n/a")] == "n/a"  # no small run there
    fraction = "fast's time to small's 400-step Chamfer / small's time <= 1/3"
    assert rows[(fraction, "mirror-bunny", "0.500")] == "**no**"
    assert rows[(fraction, "rough-gold-suzanne", "> 0.500")] == "**no**"  # never got there in 75 s of small's 150 s
    assert rows[(fraction, "**mean**", "n/a")] == "n/a"  # no small run on the torus
    assert rows[("fast final-mesh Chamfer <= 0.012", "mirror-bunny", "0.0080")] == "yes"
    assert rows[("fast final-mesh Chamfer <= 0.012", "glossy-red-torus", "0.0130")] == "**no**"
    assert rows[("fast final-mesh Chamfer, mean <= 0.009", "**mean**", "0.0105")] == "**no**"  # the cow is not in it
    assert rows[(ratio, "rough-gold-suzanne", f"{0.012 / 0.04:.3f}")] == "yes"
    assert rows[("peak RSS of every run <= 4 GiB (MiB)", "all", "5000")] == "**no**"
    assert "glossy-cow" not in {scene for _, scene, _ in rows}
    assert bench_pipeline.thin_part_lines(jobs)[0].endswith("final-mesh Chamfer to the GT mesh: nero-shape-fast 0.0300.")


@pytest.mark.slow
def test_tiny_benchmark_writes_a_report_a_plot_and_a_relight_comparison(tmp_path: Path):
    """One scene, a few steps of every stage: the report holds numbers for NeRO and the baseline, and the Stage I
    comparison's report numbers for each preset; ``--stage-one-only`` rewrites only the latter, ``--pipeline-only`` only
    the former."""
    results, stage_one_results = tmp_path / "RESULTS.md", tmp_path / "RESULTS_stage_one.md"
    command = [
        sys.executable, str(BENCHMARK_DIR / "bench_pipeline.py"), "--output-dir", str(tmp_path / "bench"),
        "--results", str(results), "--scenes", "glossy-red-torus", "--num-views", "16", "--resolution", "32",
        "--render-samples", "4", "--shape-steps", "8", "--shape-rays", "64", "--material-steps", "6",
        "--mesh-resolution", "40", "--curve-points", "2", "--curve-mesh-resolution", "32", "--relight-views", "2",
        "--relight-samples", "4", "--texture-size", "32", "--stage-one-results", str(stage_one_results),
        "--fast-time-budget-s", "1", "--small-steps", "3", "--stage-one-curve-every-s", "1",
        "--stage-one-curve-mesh-resolution", "24", "--stage-one-workers", "2", "--stage-one-threads", "1",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report = results.read_text()
    assert "(RESULTS_stage_one.md)" in report

    def measured_cells(label: str) -> np.ndarray:
        row = re.search(rf"^\| glossy-red-torus \| {label} \|(.*)\|$", report, re.MULTILINE)
        assert row is not None, report
        return np.array([float(cell) for cell in row.group(1).split("|")])  # "n/a" would not parse

    for method in ("NeRO", "NeuS colour MLP"):
        cells = measured_cells(method)
        assert cells.shape == (8,) and np.isfinite(cells).all() and cells[0] > 0  # Chamfer first
    for mesh in ("GT mesh", "Stage I mesh"):
        cells = measured_cells(mesh)
        assert cells.shape == (10,) and np.isfinite(cells).all()
        assert (cells[:3] >= 0).all() and (cells[:3] <= 1).all()  # material MAEs

    measured = json.loads((tmp_path / "bench" / "results.json").read_text())
    nero = next(job for job in measured["jobs"] if job["kind"] == "split-sum")
    assert {"shape training", "eval shape", "eval nvs", "material training", "material export", "relight"} <= set(
        nero["stages"]
    )
    assert all(stage["seconds"] > 0 and stage["peak_rss_mib"] > 50 for stage in nero["stages"].values())
    curve = np.asarray(nero["reports"]["train"]["curve"])
    assert curve.shape == (3, 3) and curve[0, 1] == 0.0 and np.all(np.diff(curve[:, 1]) > 0)

    plot = np.asarray(Image.open(tmp_path / "chamfer_vs_time.png").convert("L"))
    assert plot.shape[0] > 200 and plot.std() > 10
    comparison = np.asarray(Image.open(tmp_path / "relight_comparison.png").convert("RGB"))
    assert comparison.shape == (32, 3 * 32, 3)
    ground_truth_tile = comparison[:, :32]
    assert (ground_truth_tile < 200).any(axis=-1).mean() > 0.05  # the object, not only the white background

    stage_one_report = stage_one_results.read_text()
    for run in ("nero-shape-fast", "nero-shape-small", "NeuS colour MLP (fast settings)"):
        row = re.search(rf"^\| glossy-red-torus \| {re.escape(run)} \|(.*)\|$", stage_one_report, re.MULTILINE)
        assert row is not None, stage_one_report
        cells = np.array([float(cell) for cell in row.group(1).split("|")])
        assert cells.shape == (7,) and np.isfinite(cells).all() and (cells > 0).all()
    assert "| fast / small Chamfer at equal training time <= 0.5 | glossy-red-torus |" in stage_one_report
    fast = next(job for job in measured["stage_one_jobs"] if job["kind"] == "nero-shape-fast")
    assert fast["reports"]["train"]["budget_reached"] and fast["reports"]["train"]["steps"] < 500
    assert not any(job["reports"]["train"]["budget_reached"] for job in measured["stage_one_jobs"]
                   if job["kind"] == "nero-shape-small")  # fmt: skip
    plot = np.asarray(Image.open(tmp_path / "stage_one_presets.png").convert("L"))
    assert plot.shape[0] > 200 and plot.std() > 10

    # Everything is reused: the comparison's report is written again, the pipeline's is left alone.
    stage_one_results.unlink()
    completed = subprocess.run(command + ["--stage-one-only"], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "stages were reused" in stage_one_results.read_text() and results.read_text() == report
    # And the other way round: ``--pipeline-only`` writes the pipeline's report alone.
    stage_one_report, stage_one_mtime = stage_one_results.read_text(), stage_one_results.stat().st_mtime_ns
    results.unlink()
    completed = subprocess.run(command + ["--pipeline-only"], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    rewritten = results.read_text()
    assert "stages were reused" in rewritten and "(not run by this invocation, `--pipeline-only`)" in rewritten

    def measured_tables(text: str) -> str:  # Stage I and Stage II tables; the stage table marks reused stages
        return text.split("## Shape and novel views")[1].split("## Wall time")[0]

    assert measured_tables(rewritten) == measured_tables(report)
    assert stage_one_results.stat().st_mtime_ns == stage_one_mtime and stage_one_results.read_text() == stage_one_report
