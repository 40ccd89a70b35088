"""nero-export: bad input gives one clear line; a trained run exports a closed mesh closer to the GT than the start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml
from scipy.spatial import cKDTree

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.export.mesh import extract_mesh, save_mesh, transform_to_dataset_frame
from nero_nerfstudio.scripts.export import ExportMesh
from nero_nerfstudio.utils.run_loading import find_checkpoint_dir, load_pipeline

EXPORT_RESOLUTION = 96


def run_nero_export(*args: str) -> subprocess.CompletedProcess:
    """Run the installed console script's entry point in a fresh interpreter."""
    command = [sys.executable, "-c", "from nero_nerfstudio.scripts.export import entrypoint; entrypoint()", *args]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment, check=False)


def test_missing_config_is_one_clear_line(tmp_path: Path):
    missing = tmp_path / "run" / "config.yml"
    with pytest.raises(NeroDataError, match="config.yml: config file not found"):
        ExportMesh(load_config=missing).main()

    result = run_nero_export("mesh", "--load-config", str(missing))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"nero-export: {missing}: config file not found" in result.stderr


def test_run_without_checkpoints_is_rejected(tmp_path: Path):
    from nerfstudio.engine.trainer import TrainerConfig

    config = TrainerConfig(method_name="nero-shape")
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.dump(config))
    with pytest.raises(NeroDataError, match="no checkpoint"):
        find_checkpoint_dir(config_path)
    (tmp_path / config.relative_model_dir).mkdir(parents=True)
    with pytest.raises(NeroDataError, match=r"no step-\*\.ckpt"):
        ExportMesh(load_config=config_path).main()
    (tmp_path / config.relative_model_dir / "step-000000010.ckpt").write_bytes(b"")
    assert find_checkpoint_dir(config_path) == tmp_path / config.relative_model_dir
    # Checked before the network is loaded: no transform file for the dataset frame, or an unknown mesh format.
    with pytest.raises(NeroDataError, match="dataparser_transforms.json: .*not found"):
        ExportMesh(load_config=config_path).main()
    with pytest.raises(NeroDataError, match=r"mesh\.stl: unsupported mesh format"):
        ExportMesh(load_config=config_path, output_path=tmp_path / "mesh.stl").main()


def test_config_that_is_not_a_run_is_rejected(tmp_path: Path):
    config_path = tmp_path / "config.yml"
    config_path.write_text("learning_rate: 0.1\n")
    with pytest.raises(NeroDataError, match="not a nerfstudio run config"):
        ExportMesh(load_config=config_path).main()


def symmetric_chamfer(mesh_a: trimesh.Trimesh, mesh_b: trimesh.Trimesh, num_points: int = 20000) -> float:
    """Mean nearest-neighbour distance between surface samples, averaged over both directions."""
    points_a, _ = trimesh.sample.sample_surface(mesh_a, num_points, seed=0)
    points_b, _ = trimesh.sample.sample_surface(mesh_b, num_points, seed=1)
    a_to_b = cKDTree(points_b).query(points_a)[0].mean()
    b_to_a = cKDTree(points_a).query(points_b)[0].mean()
    return float((a_to_b + b_to_a) / 2.0)


def describe_open_edges(mesh: trimesh.Trimesh) -> str:
    """Why ``mesh`` is not watertight: edges not shared by exactly two faces, and zero-area faces."""
    _, faces_per_edge = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    return (
        f"{np.count_nonzero(faces_per_edge == 1)} boundary edges, {np.count_nonzero(faces_per_edge > 2)} edges in "
        f"3+ faces, {np.count_nonzero(~mesh.nondegenerate_faces())} degenerate faces of {len(mesh.faces)}"
    )


@pytest.mark.slow
def test_export_trained_run(trained_shape_run, tmp_path: Path):
    """Normalised export stays in the unit sphere; the dataset-frame export beats the initial sphere on Chamfer.

    ``trained_shape_run`` (a ``TrainedShapeRun``: ``run_dir``, ``config_path``, ``scene``) is nero-shape-small
    trained 300 steps on the rendered synthetic bunny.
    """
    config_path = trained_shape_run.config_path

    # A copied run loads its own checkpoint: found next to config.yml, not at the config's output_dir.
    moved_run = tmp_path / "moved_run"
    shutil.copytree(trained_shape_run.run_dir, moved_run)
    pipeline, checkpoint_path, _ = load_pipeline(moved_run / "config.yml")
    assert checkpoint_path.resolve().parent == (moved_run / "nerfstudio_models").resolve()
    normalized_path = save_mesh(
        extract_mesh(pipeline.model.field.get_sdf, resolution=EXPORT_RESOLUTION), tmp_path / "normalized.obj"
    )
    normalized = trimesh.load(normalized_path, force="mesh")
    assert len(normalized.faces) > 100
    assert normalized.is_watertight, describe_open_edges(normalized)
    assert normalized.volume > 0.0
    assert np.linalg.norm(normalized.vertices, axis=-1).max() <= 1.0 + 2.0 / (EXPORT_RESOLUTION - 1)

    dataset_path = tmp_path / "dataset.ply"
    result = run_nero_export(
        "mesh", "--load-config", str(config_path), "--resolution", str(EXPORT_RESOLUTION),
        "--output-path", str(dataset_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Saved {dataset_path}" in result.stdout and "(dataset frame" in result.stdout
    exported = trimesh.load(dataset_path, force="mesh")
    assert exported.is_watertight, describe_open_edges(exported)

    transforms = json.loads((trained_shape_run.run_dir / "dataparser_transforms.json").read_text())
    initial_sphere = transform_to_dataset_frame(
        trimesh.creation.icosphere(subdivisions=4, radius=0.5), np.asarray(transforms["transform"]), transforms["scale"]
    )
    gt_mesh = trimesh.load(trained_shape_run.scene / "gt" / "mesh.ply", force="mesh")
    exported_chamfer = symmetric_chamfer(exported, gt_mesh)
    sphere_chamfer = symmetric_chamfer(initial_sphere, gt_mesh)
    print(f"Chamfer to GT: exported {exported_chamfer:.4f}, initial sphere {sphere_chamfer:.4f}")
    assert exported_chamfer < sphere_chamfer


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(trained_shape_run, tmp_path: Path, capsys):
    """As training does: the loader warns about the damaged file and loads the newest readable one. A stray file
    among the checkpoints (nerfstudio's own loader parses every name there) does not matter either."""
    run = tmp_path / "run"
    shutil.copytree(trained_shape_run.run_dir, run)
    models = run / "nerfstudio_models"
    (good,) = sorted(models.glob("step-*.ckpt"))
    damaged = models / "step-999999999.ckpt"
    damaged.write_bytes(good.read_bytes()[:1000])  # a crash or a partial copy
    (models / "notes.txt").write_text("mine")
    _, checkpoint_path, step = load_pipeline(run / "config.yml")
    assert checkpoint_path.name == good.name and step == int(good.stem.split("-")[1])
    assert f"Skipping a damaged checkpoint: {damaged}" in " ".join(capsys.readouterr().out.split())

    good.write_bytes(b"")  # nothing readable left: one line naming the newest damaged file
    with pytest.raises(NeroDataError, match=r"step-999999999\.ckpt: unreadable checkpoint .*no older readable"):
        load_pipeline(run / "config.yml")
