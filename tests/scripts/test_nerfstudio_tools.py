"""nerfstudio's own tools on a trained nero-shape run: ``ns-eval`` scores it, ``ns-render`` makes a video (ffmpeg,
installed by .ci/setup), and a damaged checkpoint is one line in ``ns-eval`` and ``ns-viewer``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _run(command, cwd: Path) -> subprocess.CompletedProcess:
    environment = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False, env=environment)


def test_ns_eval_scores_the_run(trained_shape_run, tmp_path: Path):
    output = tmp_path / "eval.json"
    result = _run([str(BIN / "ns-eval"), "--load-config", str(trained_shape_run.config_path), "--output-path", str(output)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(output.read_text())["results"]
    assert 10.0 < scores["psnr"] < 60.0 and 0.0 < scores["ssim"] <= 1.0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg on PATH (.ci/setup installs it)")
def test_ns_render_interpolates_a_video_from_another_folder(trained_shape_run, tmp_path: Path):
    """Run from a folder other than the one training started in: config.yml's paths are absolute."""
    video = tmp_path / "orbit.mp4"
    command = [
        str(BIN / "ns-render"), "interpolate", "--load-config", str(trained_shape_run.config_path),
        "--output-path", str(video), "--pose-source", "train", "--interpolation-steps", "1", "--frame-rate", "4",
        "--rendered-output-names", "rgb", "normals",
    ]  # fmt: skip
    result = _run(command, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    frames = iio.imread(video, plugin="pyav")
    assert frames.ndim == 4 and frames.shape[0] >= 2 and frames.std() > 5


def _run_with_newest_checkpoint_cut_short(trained_shape_run, tmp_path: Path) -> Path:
    """A copy of the trained run whose newest checkpoint is cut short, and its config.yml pointing at the copy."""
    import yaml  # pylint: disable=import-outside-toplevel

    config = yaml.load(trained_shape_run.config_path.read_text(), Loader=yaml.Loader)
    config.output_dir = tmp_path / "outputs"
    shutil.copytree(trained_shape_run.run_dir, config.get_base_dir())
    newest = sorted(config.get_checkpoint_dir().glob("step-*.ckpt"))[-1]
    newest.write_bytes(newest.read_bytes()[:4096])
    (config.get_base_dir() / "config.yml").write_text(yaml.dump(config))
    return newest


@pytest.mark.parametrize("tool", ["ns-eval", "ns-viewer"])
def test_a_damaged_checkpoint_is_one_line_in_nerfstudio_s_tools(tool: str, trained_shape_run, tmp_path: Path):
    newest = _run_with_newest_checkpoint_cut_short(trained_shape_run, tmp_path)
    command = [str(BIN / tool), "--load-config", str(newest.parents[1] / "config.yml")]
    result = _run(command + (["--output-path", str(tmp_path / "eval.json")] if tool == "ns-eval" else []), tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{tool}: {newest}: unreadable checkpoint"), result.stderr[-2000:]
    assert last.endswith("the run has no other checkpoint: restore this one or train again")
