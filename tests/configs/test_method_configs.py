"""The nero-shape method specifications: registration with ns-train and the paper / small / fast settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry import discover_methods

from nero_nerfstudio.configs.method_configs import (
    neus_color_baseline,
    paper_trainer_config,
    nero_shape,
    nero_shape_fast,
    nero_shape_small,
    scaled_step,
    small_trainer_config,
)
from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig
from nero_nerfstudio.data.datasets.nero_dataset import NeroDataset
from nero_nerfstudio.engine.schedulers import WarmUpCosineSchedulerConfig

SPECS = {"nero-shape": nero_shape, "nero-shape-small": nero_shape_small, "nero-shape-fast": nero_shape_fast}


def test_methods_are_discovered_under_their_names():
    methods, _ = discover_methods()
    for name in SPECS:
        assert name in methods


def test_ns_train_help_lists_the_methods():
    ns_train = Path(sys.executable).parent / "ns-train"
    result = subprocess.run(
        [str(ns_train), "--help"], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in SPECS:
        assert name in result.stdout


@pytest.mark.parametrize("name", sorted(SPECS))
def test_common_settings(name: str):
    config = SPECS[name].config
    assert config.method_name == name
    assert config.mixed_precision is False
    datamanager = config.pipeline.datamanager
    assert datamanager._target is VanillaDataManager[NeroDataset]
    assert isinstance(datamanager.dataparser, NeroSyntheticDataParserConfig)
    assert datamanager.train_num_rays_per_batch == 512
    for group in config.optimizers.values():
        assert group["optimizer"].lr > 0
        scheduler = group["scheduler"]
        assert isinstance(scheduler, WarmUpCosineSchedulerConfig)
        assert scheduler.max_steps == config.max_num_iterations


def test_paper_configuration():
    config = nero_shape.config
    model = config.pipeline.model
    assert config.max_num_iterations == 300_000
    sampler = model.sampler
    assert (sampler.num_coarse, sampler.num_upsample_rounds, sampler.num_upsample_per_round) == (64, 4, 16)
    assert sampler.num_background == 32 and sampler.clip_sample_variance
    assert (model.sdf_field.num_layers, model.sdf_field.hidden_dim, model.sdf_field.skip_layers) == (8, 256, (4,))
    assert model.sdf_field.encoding == "frequency" and model.shading.hidden_dim == 256
    assert (model.anneal_end, model.freeze_inv_s_step, model.occlusion_loss_start) == (50_000, 15_000, 20_000)
    assert (model.init_sdf_reg_end, model.occlusion_max_points, model.eikonal_loss_mult) == (1000, 2048, 0.1)
    assert set(config.optimizers) == {"fields", "field_background"}
    for group in config.optimizers.values():
        assert group["optimizer"].lr == 5e-4 and group["optimizer"].weight_decay == 0
        assert (group["scheduler"].warm_up_end, group["scheduler"].min_factor) == (5000, 0.05)


def test_paper_schedule_fitted_to_a_shorter_run():
    config = paper_trainer_config(30_000)
    model = config.pipeline.model
    assert config.max_num_iterations == 30_000 and model.sdf_field.hidden_dim == 256
    assert (model.anneal_end, model.freeze_inv_s_step, model.occlusion_loss_start) == (5000, 1500, 2000)
    for group in config.optimizers.values():
        assert (group["scheduler"].warm_up_end, group["scheduler"].max_steps) == (500, 30_000)
        assert group["optimizer"].lr == 5e-4


def test_material_paper_schedule_fitted_to_a_shorter_run():
    from nero_nerfstudio.configs.material_configs import nero_material
    from nero_nerfstudio.configs.material_configs import paper_trainer_config as material_paper_trainer_config

    assert material_paper_trainer_config().optimizers == nero_material.config.optimizers
    config = material_paper_trainer_config(10_000)
    scheduler = config.optimizers["fields"]["scheduler"]
    assert config.max_num_iterations == 10_000 and (scheduler.warm_up_end, scheduler.max_steps) == (100, 10_000)
    assert config.pipeline.model.saturation_reg_end == 200
    assert config.pipeline.model.num_diffuse_samples == nero_material.config.pipeline.model.num_diffuse_samples


def test_small_schedule_scales_with_the_run_length():
    config = small_trainer_config(3000)
    model = config.pipeline.model
    assert config.max_num_iterations == 3000
    assert (model.anneal_end, model.freeze_inv_s_step, model.occlusion_loss_start, model.init_sdf_reg_end) == (
        500,
        150,
        200,
        10,
    )
    assert config.optimizers["fields"]["scheduler"].warm_up_end == 50
    assert config.optimizers["fields"]["optimizer"].lr == 2e-3  # a 100x shorter schedule needs a larger rate
    assert scaled_step(5000, 6) == 1  # never 0: the warm-up and init regulariser need at least one step
    assert model.sdf_field.hidden_dim == 64 and model.sampler.num_coarse == 32
    assert model.sampler.num_upsample_rounds * model.sampler.num_upsample_per_round == 32
    assert model.sampler.num_background == 16


@pytest.mark.parametrize("name", sorted(SPECS))
def test_param_groups_match_the_optimizers(name: str):
    config = SPECS[name].config
    model = config.pipeline.model.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])),
        num_train_data=2,
        metadata={"photographer_light": False},
    )
    assert set(model.get_param_groups()) == set(config.optimizers)


def test_neus_color_baseline_changes_only_the_shader():
    from dataclasses import fields

    model = small_trainer_config(400).pipeline.model
    baseline = neus_color_baseline(model)
    assert model.shading_model == "split-sum" and baseline.shading_model == "neus-color"
    assert baseline.neus_color.hidden_dim == model.shading.hidden_dim
    assert baseline.neus_color.num_layers == model.shading.num_layers + 1
    changed = {f.name for f in fields(model) if getattr(model, f.name) != getattr(baseline, f.name)}
    assert changed == {"shading_model", "neus_color"}


@pytest.mark.parametrize("max_steps", [40, 4000])
def test_fast_preset_structure_and_schedule(max_steps: int):
    """``nero-shape-fast``: grid-encoded SDF with numerical gradients, the occupancy sampler, its own grid optimizer,
    and a schedule fitted to the run (exact rates and counts are being tuned, so none are pinned here)."""
    from nero_nerfstudio.configs.method_configs import fast_trainer_config
    from nero_nerfstudio.field_components.grid_encoding import coarse_to_fine_levels
    from nero_nerfstudio.model_components.occupancy_sampler import OccupancySamplerConfig

    config = fast_trainer_config(max_steps)
    model = config.pipeline.model
    sdf_field = model.sdf_field
    assert config.method_name == "nero-shape-fast" and config.max_num_iterations == max_steps
    assert sdf_field.encoding == "grid" and sdf_field.gradient == "numerical"
    assert isinstance(model.sampler, OccupancySamplerConfig)
    assert set(config.optimizers) == {"fields", "field_background", "field_grid"}
    for group in config.optimizers.values():
        assert group["optimizer"].lr > 0 and group["scheduler"].max_steps == max_steps
        assert 0 < group["scheduler"].warm_up_end < max_steps
    # Coarse to fine: fewer levels at the start, every level active well before the end.
    levels = [coarse_to_fine_levels(step, sdf_field.grid_start_levels, sdf_field.grid_steps_per_level,
                                    sdf_field.grid_num_levels) for step in range(max_steps)]  # fmt: skip
    assert levels[0] < sdf_field.grid_num_levels and levels == sorted(levels)
    assert levels[max_steps // 2 + 1] == sdf_field.grid_num_levels
    # The paper's step constants are fitted to the run.
    for step in (model.anneal_end, model.freeze_inv_s_step, model.occlusion_loss_start, model.init_sdf_reg_end):
        assert 0 < step < max_steps
    # The method registered under the name is this preset.
    assert type(nero_shape_fast.config.pipeline.model.sampler) is type(model.sampler)
