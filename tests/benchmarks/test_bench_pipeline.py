"""The pipeline benchmark's command runs end to end (tiny settings); its measured runner is tested in tests/scripts."""

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


@pytest.mark.slow
def test_tiny_benchmark_writes_a_report_a_plot_and_a_relight_comparison(tmp_path: Path):
    """One scene, a few steps of every stage: the report holds numbers for NeRO and the baseline."""
    results = tmp_path / "RESULTS.md"
    command = [
        sys.executable, str(BENCHMARK_DIR / "bench_pipeline.py"), "--output-dir", str(tmp_path / "bench"),
        "--results", str(results), "--scenes", "glossy-red-torus", "--num-views", "16", "--resolution", "32",
        "--render-samples", "4", "--shape-steps", "8", "--shape-rays", "64", "--material-steps", "6",
        "--mesh-resolution", "40", "--curve-points", "2", "--curve-mesh-resolution", "32", "--relight-views", "2",
        "--relight-samples", "4", "--texture-size", "32",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report = results.read_text()

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
