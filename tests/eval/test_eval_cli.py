"""``nero-eval`` as a command: subcommands, JSON output, one-line summaries and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import sphere_mesh, write_synthetic_scene

from nero_nerfstudio.scripts import eval as eval_script


@pytest.fixture(scope="module")
def small_sphere_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "scene"
    write_synthetic_scene(folder, sphere_mesh(0.5, 4), num_views=6, resolution=64)
    return folder


def _run_entrypoint(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["nero-eval", *args])
    eval_script.entrypoint()


def test_shape_writes_the_json_keys_and_a_summary(
    small_sphere_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    output = tmp_path / "out" / "shape.json"
    gt_mesh = small_sphere_scene / "gt" / "mesh.ply"
    _run_entrypoint(
        monkeypatch, "shape", "--mesh", str(gt_mesh), "--data", str(small_sphere_scene),
        "--gt-mesh", str(gt_mesh), "--num-mesh-samples", "2000", "--output", str(output),
    )
    report = json.loads(output.read_text())
    assert report["chamfer"] < 2e-4 and report["chamfer_gt_mesh"] < 1e-6 and report["normal_error_deg"] < 2.0
    assert report["views"] == [str(k) for k in range(6)]
    assert "mesh: chamfer 0.0000" in capsys.readouterr().out
    # Written atomically: no temporary file is left next to it.
    assert [path.name for path in output.parent.iterdir()] == ["shape.json"]


def test_shape_without_gt_mesh_reports_null(
    small_sphere_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "shape.json"
    _run_entrypoint(
        monkeypatch, "shape", "--mesh", str(small_sphere_scene / "gt" / "mesh.ply"), "--data", str(small_sphere_scene),
        "--views", "all", "--output", str(output),
    )
    report = json.loads(output.read_text())
    assert report["chamfer_gt_mesh"] is None and report["chamfer"] is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["shape", "--mesh", "{tmp}/none.ply", "--data", "{scene}"], "none.ply: mesh file not found"),
        (["shape", "--mesh", "{scene}/gt/mesh.ply", "--data", "{tmp}/nowhere"], "nowhere: scene folder not found"),
        (["relight", "--pred", "{tmp}", "--gt", "{tmp}", "--num-views", "0"], "num_views must be positive"),
        (["materials", "--mesh", "{scene}/gt/mesh.ply", "--mesh-materials", "{tmp}/mat", "--data", "{scene}"],
         "mat: material folder does not exist"),
    ],
)
def test_bad_input_fails_with_one_line(
    small_sphere_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, args, message
) -> None:
    filled = [arg.format(tmp=tmp_path, scene=small_sphere_scene) for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        _run_entrypoint(monkeypatch, *filled)
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("nero-eval: ") and message in error and len(error.splitlines()) == 1


def test_module_runs_as_a_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nero_nerfstudio.scripts.eval", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0
    for subcommand in ("shape", "nvs", "relight", "materials"):
        assert subcommand in completed.stdout
