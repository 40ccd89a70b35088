"""End to end on CPU: the fast preset (grid SDF, numerical gradients, occupancy sampler) trains, skips non-finite
batches, resumes, and its empty-space skipping never changes what a camera sees."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

from nero_nerfstudio.configs.method_configs import fast_trainer_config
from nero_nerfstudio.utils.checkpoint import read_checkpoint
from nero_nerfstudio.engine.trainer import NeroTrainer, NeroTrainerConfig
from nero_nerfstudio.model_components.occupancy_sampler import ACTIVE_KEY, OccupancySampler, skip_threshold
from nero_nerfstudio.models.nero_shape import NeroShapeModel

from shape_run import NanInjectedRun, TrainedShapeRun, cpu_test_config, train, train_with_nan_steps

pytestmark = pytest.mark.slow

TRAIN_STEPS = 40
TRAIN_RAYS = 256
NAN_RUN_STEPS = 4
NAN_RUN_RAYS = 32
NAN_GRADIENT_STEP = 1
NAN_LOSS_STEP = 2


def small_fast_config(max_steps: int) -> NeroTrainerConfig:
    """``fast_trainer_config(max_steps)`` with a coarser grid, occupancy grid and march, so a CPU test runs in
    seconds; everything else (encoding, numerical gradients, schedule, optimizers) is the preset's."""
    config = fast_trainer_config(max_steps)
    model = config.pipeline.model
    sdf_field = replace(model.sdf_field, grid_num_levels=4, grid_min_resolution=8, grid_max_resolution=48)
    sdf_field.grid_start_levels = min(sdf_field.grid_start_levels, 2)
    sdf_field.grid_steps_per_level = max(1, max_steps // (2 * sdf_field.grid_num_levels))
    sdf_field.grid_implementation = "dense"
    sampler = replace(model.sampler, resolution=32, num_march=64, num_background=8, refresh_every=8)
    config.pipeline.model = replace(model, sdf_field=sdf_field, sampler=sampler, eval_num_rays_per_chunk=1024)
    return config


@pytest.fixture(scope="module")
def fast_run(synthetic_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedShapeRun:
    torch.manual_seed(0)
    config = cpu_test_config(
        small_fast_config(TRAIN_STEPS), synthetic_scene, tmp_path_factory.mktemp("fast_run"), TRAIN_RAYS
    )
    return train(config)


def test_fast_preset_trains_and_its_loss_drops(fast_run: TrainedShapeRun):
    losses = fast_run.losses
    assert len(losses) == TRAIN_STEPS and all(np.isfinite(losses))
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    print(f"fast preset loss: first 10 steps {first:.4f}, last 10 steps {last:.4f}")
    assert last < 0.8 * first, (first, last)
    model = fast_run.trainer.pipeline.model
    assert isinstance(model, NeroShapeModel) and isinstance(model.sampler, OccupancySampler)
    assert model.field.grid_encoding is not None and model.field.config.gradient == "numerical"
    # Coarse to fine reached every level, and the grid itself learned (it starts at +-1e-4).
    assert int(model.field.grid_encoding.num_active_levels) == model.field.config.grid_num_levels
    assert max(grid.abs().max().item() for grid in model.field.grid_encoding.grids) > 1e-3
    # The occupancy grid culls part of the cube (but not everything).
    assert 0.0 < model.sampler.occupied_fraction < 0.9


def test_fast_checkpoint_loads_weights_only_and_keeps_the_levels(fast_run: TrainedShapeRun):
    state = torch.load(fast_run.checkpoint_path)  # torch's default weights-only loader
    assert state["step"] == TRAIN_STEPS - 1
    levels = [key for key in state["pipeline"] if key.endswith("grid_encoding.num_active_levels")]
    assert len(levels) == 1 and int(state["pipeline"][levels[0]]) == 4
    assert not any(".sampler." in key for key in state["pipeline"])  # the occupancy grid is rebuilt from the SDF
    assert "field_grid" in state["optimizers"] and "field_grid" in state["schedulers"]


def _render_camera(model: NeroShapeModel, camera) -> Dict[str, torch.Tensor]:
    with torch.no_grad():
        return model.get_outputs_for_camera(camera)


# Differences between the skipped and the all-active render of camera 0 at half resolution after 40 steps
# (inv_s ~20-23), measured with the evaluation band (eval_band 6):
#   this fixture (seed 0):  accumulation max ~0.012, mean ~0.0012-0.0015; rgb max ~0.003, mean ~0.0002-0.0003
#   seeds 1-3:              accumulation max 0.0099-0.025, mean 0.0006-0.0017; rgb max 0.002-0.013, mean <= 0.0003
# Before evaluation had its own band (the training band 3 there too) they were ~20x larger (accumulation max ~0.2-0.25,
# mean ~0.02; rgb max ~0.05, mean ~0.004): a silhouette ray grazing the surface at |sdf| just beyond band / inv_s
# gathers evaluation NeuS opacity (cos-anneal ratio 0) over a long stretch; see
# tests/model_components/test_occupancy_sampler.py::test_the_training_band_is_too_narrow_for_the_evaluation_alpha.
PARITY_BOUNDS = dict(accumulation_max=0.03, accumulation_mean=3e-3, rgb_max=0.015, rgb_mean=6e-4)


def test_skipping_empty_space_barely_changes_the_render(fast_run: TrainedShapeRun):
    """rgb and accumulation of an evaluation camera with the occupancy grid against those with every chord sample
    evaluated (every ``metadata["active"]`` true), on the trained model, at the preset's evaluation band."""
    pipeline = fast_run.trainer.pipeline
    model = pipeline.model
    model.eval()
    sampler = model.sampler
    assert isinstance(sampler, OccupancySampler) and not sampler.training
    camera = copy.deepcopy(pipeline.datamanager.train_dataset.cameras[0:1])
    camera.rescale_output_resolution(0.5)  # 24 x 24 pixels
    generate_ray_samples = sampler.generate_ray_samples

    def all_active(*args, **kwargs):
        samples = generate_ray_samples(*args, **kwargs)
        samples.metadata[ACTIVE_KEY] = torch.ones_like(samples.metadata[ACTIVE_KEY])
        return samples

    try:
        sampler.stale = True  # rebuild from the final SDF, as a freshly loaded model does
        skipped = _render_camera(model, camera)
        assert not sampler.stale and 0.0 < sampler.occupied_fraction < 0.9
        # Rebuilt with the model's sharpness, skipping with the evaluation band.
        inv_s = float(model.field.inv_s().detach())
        assert sampler.inv_s == pytest.approx(inv_s)
        config = sampler.config
        assert sampler.current_threshold() == pytest.approx(
            skip_threshold(config.resolution, config.num_march, inv_s, config.cell_margin, config.eval_band)
        )
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(sampler, "generate_ray_samples", all_active)
            full = _render_camera(model, camera)
    finally:
        sampler.stale = True
    height, width = int(camera.height), int(camera.width)
    assert skipped["rgb"].shape == (height, width, 3)
    rgb_difference = (skipped["rgb"] - full["rgb"]).abs()
    accumulation_difference = (skipped["accumulation"] - full["accumulation"]).abs()
    print(
        f"inv_s {inv_s:.1f}, eval band {config.eval_band}, occupied {sampler.occupied_fraction:.3f}: skip vs all: "
        f"rgb max {rgb_difference.max():.2e} mean {rgb_difference.mean():.2e}, "
        f"accumulation max {accumulation_difference.max():.2e} mean {accumulation_difference.mean():.2e}"
    )
    assert full["accumulation"].max() > 0.5  # the camera sees the object
    assert rgb_difference.max() < PARITY_BOUNDS["rgb_max"] and rgb_difference.mean() < PARITY_BOUNDS["rgb_mean"]
    assert accumulation_difference.max() < PARITY_BOUNDS["accumulation_max"]
    assert accumulation_difference.mean() < PARITY_BOUNDS["accumulation_mean"]
    # Skipping only removes opacity (inactive samples get none), it never adds any.
    assert torch.all(skipped["accumulation"] <= full["accumulation"] + 1e-5)


def test_the_model_evaluates_only_active_samples(fast_run: TrainedShapeRun):
    """The SDF network sees the occupancy grid's active chord samples only (plus the sampler's own refresh)."""
    pipeline = fast_run.trainer.pipeline
    model = pipeline.model
    model.eval()
    ray_bundle = pipeline.datamanager.train_dataset.cameras[0:1].generate_rays(camera_indices=0).flatten()[:512]
    # A sharp surface (as later in training), so that most of each chord is skipped whatever this short run reached.
    model.sampler.refresh(model.field.get_sdf, inv_s=400.0)
    seen = []
    forward = model.field.get_sdf_feature_gradient

    def counting(points: torch.Tensor):
        seen.append(points.shape[0])
        return forward(points)

    with torch.no_grad(), pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(model.field, "get_sdf_feature_gradient", counting)
        samples = model.sample_and_forward_field(ray_bundle)
    active = samples["ray_samples"].metadata[ACTIVE_KEY][..., 0]
    inside = samples["positions"].norm(dim=-1) <= 1.0
    assert seen == [int((active & inside).sum())]
    assert seen[0] < 0.5 * int(inside.sum())
    # Inactive samples add no weight.
    assert torch.all(samples["weights"][~active] == 0)


@pytest.fixture(scope="module")
def fast_nan_run(synthetic_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> NanInjectedRun:
    """4 steps of the fast preset; step 1 has a finite loss but a NaN gradient into the grid, step 2 a NaN loss
    term."""
    torch.manual_seed(0)
    config = cpu_test_config(
        small_fast_config(NAN_RUN_STEPS), synthetic_scene, tmp_path_factory.mktemp("fast_nan_run"), NAN_RUN_RAYS
    )
    config.max_num_iterations = NAN_RUN_STEPS
    return train_with_nan_steps(
        config, NAN_GRADIENT_STEP, NAN_LOSS_STEP, parameter=lambda model: model.field.grid_encoding.grids[0]
    )


def test_fast_preset_skips_non_finite_batches(fast_nan_run: NanInjectedRun):
    run, output = fast_nan_run.run, fast_nan_run.console_output
    assert isinstance(run.trainer, NeroTrainer)
    assert run.trainer.num_skipped_steps == 2, output
    assert len(run.losses) == NAN_RUN_STEPS
    assert f"Step {NAN_GRADIENT_STEP}: non-finite gradients of" in output
    assert f"Step {NAN_LOSS_STEP}: non-finite loss" in output
    # Adam stepped only on the 2 good batches, the grid's optimizer too.
    for group in ("fields", "field_grid"):
        adam_steps = [float(state["step"]) for state in run.trainer.optimizers.optimizers[group].state.values()]
        assert adam_steps and max(adam_steps) == NAN_RUN_STEPS - 2, group
    assert all(torch.isfinite(parameter).all() for parameter in run.trainer.pipeline.parameters())
    state = read_checkpoint(run.checkpoint_path)
    assert state["step"] == NAN_RUN_STEPS - 1
    assert all(torch.isfinite(value).all() for value in state["pipeline"].values() if value.is_floating_point())


def test_fast_preset_resumes_to_the_planned_final_step(fast_nan_run: NanInjectedRun, synthetic_scene: Path, tmp_path: Path):
    first = fast_nan_run.run
    saved = torch.load(first.checkpoint_path)
    config = small_fast_config(NAN_RUN_STEPS)
    # NeroTrainer counts max_num_iterations from the start of the run, also when resuming: 4 done + 2 more.
    config.max_num_iterations = NAN_RUN_STEPS + 2
    resumed = train(
        cpu_test_config(
            config, synthetic_scene, tmp_path / "resumed", NAN_RUN_RAYS, load_dir=first.checkpoint_path.parent
        )
    )
    assert len(resumed.losses) == 2 and all(np.isfinite(resumed.losses))
    assert resumed.checkpoint_path.name == f"step-{NAN_RUN_STEPS + 1:09d}.ckpt"
    model = resumed.trainer.pipeline.model
    assert model.step == NAN_RUN_STEPS + 1
    state = torch.load(resumed.checkpoint_path)
    for group in ("fields", "field_grid"):
        assert state["schedulers"][group]["last_epoch"] == saved["schedulers"][group]["last_epoch"] + 2
    # The resumed model's grid follows the coarse-to-fine schedule at its step.
    sdf_config = model.field.config
    expected = min(
        sdf_config.grid_num_levels,
        sdf_config.grid_start_levels + (NAN_RUN_STEPS + 1) // max(1, sdf_config.grid_steps_per_level),
    )
    assert int(model.field.grid_encoding.num_active_levels) == expected
