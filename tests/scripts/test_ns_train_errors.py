"""Bad input given to nerfstudio's own commands (``ns-train nero-*``): one red line naming the file, or the setting,
and the problem, a non-zero exit, no traceback (``NERO_TRACEBACK=1`` shows it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

NS_TRAIN = str(Path(sys.executable).parent / "ns-train")
QUIET = ["--machine.device-type", "cpu", "--vis", "tensorboard", "--max-num-iterations", "2",
         "--logging.local-writer.enable", "False"]  # fmt: skip


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _run(command: List[str], cwd: Path, traceback: bool = False) -> subprocess.CompletedProcess:
    environment = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="400")
    environment.pop("NERO_TRACEBACK", None)
    if traceback:
        environment["NERO_TRACEBACK"] = "1"
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False, env=environment)


def _copy(scene: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "scene"
    shutil.copytree(scene, copy)
    return copy


def _case(name: str, synthetic_scene: Path, custom_scene: Path, tmp_path: Path) -> Tuple[List[str], str]:
    """The ns-train arguments of one bad input and the file name, or the setting, its error line must hold."""
    shape = ["nero-shape-fast", *QUIET, "--output-dir", str(tmp_path / "outputs")]
    if name == "missing_folder":
        return [*shape, "nero-synthetic", "--data", str(tmp_path / "no_such_scene")], "no_such_scene"
    if name == "empty_folder":
        (tmp_path / "empty_scene").mkdir()
        return [*shape, "nero-synthetic", "--data", str(tmp_path / "empty_scene")], "empty_scene"
    if name == "corrupt_camera_pickle":
        scene = _copy(synthetic_scene, tmp_path)
        (scene / "0-camera.pkl").write_bytes(b"not a pickle")
        return [*shape, "nero-synthetic", "--data", str(scene)], "0-camera.pkl"
    if name == "missing_colmap_model":
        scene = _copy(custom_scene, tmp_path)
        shutil.rmtree(scene / "colmap")
        return [*shape, "nero-custom", "--max-resolution", "None", "--data", str(scene)], "scene"
    if name == "bad_meta_info":
        scene = _copy(custom_scene, tmp_path)
        (scene / "meta_info.txt").write_text("up is up\n")
        return [*shape, "nero-custom", "--max-resolution", "None", "--data", str(scene)], "meta_info.txt"
    if name == "truncated_checkpoints":
        load_dir = tmp_path / "models"
        load_dir.mkdir()
        (load_dir / "step-000000001.ckpt").write_bytes(b"PK\x03\x04 truncated")
        return [*shape, "--load-dir", str(load_dir), "nero-synthetic", "--data", str(synthetic_scene)], "step-000000001.ckpt"
    if name == "missing_mesh":
        material = ["nero-material-small", *QUIET, "--output-dir", str(tmp_path / "outputs")]
        mesh = str(tmp_path / "no_such_mesh.ply")
        return [*material, "--pipeline.model.mesh-path", mesh, "nero-synthetic", "--data", str(synthetic_scene)], "no_such_mesh.ply"
    if name == "not_a_mesh":
        (tmp_path / "notes.ply").write_text("these are notes, not a mesh\n")
        material = ["nero-material-small", *QUIET, "--output-dir", str(tmp_path / "outputs")]
        mesh = str(tmp_path / "notes.ply")
        return [*material, "--pipeline.model.mesh-path", mesh, "nero-synthetic", "--data", str(synthetic_scene)], "notes.ply"
    material = ["nero-material-small", *QUIET, "--output-dir", str(tmp_path / "outputs")]
    data = ["nero-synthetic", "--data", str(synthetic_scene)]
    if name == "no_mesh_path":
        return [*material, *data], "--pipeline.model.mesh-path: nero-material needs the Stage I mesh"
    mesh = ["--pipeline.model.mesh-path", str(synthetic_scene / "gt" / "mesh.ply")]
    if name == "odd_sample_count":
        odd = ["--pipeline.model.num-specular-samples", "15"]
        return [*material, *mesh, *odd, *data], "num-specular-samples: 32 and 15: the decorrelated RGB loss"
    if name == "roughness_guard_out_of_range":
        return [*material, *mesh, "--pipeline.model.roughness-guard", "0.01", *data], "roughness-guard: must be in"
    raise ValueError(name)


CASES = ["missing_folder", "empty_folder", "corrupt_camera_pickle", "missing_colmap_model", "bad_meta_info",
         "truncated_checkpoints", "missing_mesh", "not_a_mesh", "no_mesh_path", "odd_sample_count",
         "roughness_guard_out_of_range"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bad_input_to_ns_train_is_one_line(case: str, synthetic_scene: Path, custom_scene: Path, tmp_path: Path):
    arguments, named = _case(case, synthetic_scene, custom_scene, tmp_path)
    result = _run([NS_TRAIN, *arguments], tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    last = _last_line(result.stderr)
    assert last.startswith("ns-train: ") and named in last, result.stderr[-2000:]


def _raising(error: str) -> str:
    """A Python program that installs the one-line hook (as every ns-* command does) and raises ``error``."""
    imports = "import nero_nerfstudio.configs\nfrom nero_nerfstudio.core.errors import NeroDataError, NeroSettingsError\n"
    return f"{imports}raise {error}\n"


def test_only_input_errors_are_shortened_and_the_traceback_is_one_variable_away(tmp_path: Path):
    raise_data_error = _raising("NeroDataError('scene/0.png', 'cannot read image')")
    for error, line in (
        (raise_data_error, "-c: scene/0.png: cannot read image"),
        (
            _raising("NeroSettingsError('--pipeline.model.num-rays', 'must be positive, got 0')"),
            "-c: --pipeline.model.num-rays: must be positive, got 0",
        ),
    ):
        result = _run([sys.executable, "-c", error], tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert _last_line(result.stderr) == line
    verbose = _run([sys.executable, "-c", raise_data_error], tmp_path, traceback=True)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr
    other = _run([sys.executable, "-c", _raising("RuntimeError('a bug')")], tmp_path)
    assert other.returncode == 1 and "Traceback" in other.stderr and "RuntimeError: a bug" in other.stderr
