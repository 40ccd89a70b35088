"""nerfstudio method specifications of the plugin: ``nero-shape``, ``nero-shape-small``, ``nero-shape-fast``.

``nero-shape`` is NeRO's Stage I as published (method.md §1.2, 1.3; meant for a GPU). ``nero-shape-small`` shrinks the
networks and sample counts, rescales the whole step schedule and raises the learning rate, aiming at a recognisable
mesh of a 64-view 128x128 scene in about half an hour on two CPU cores. ``nero-shape-fast`` keeps NeRO's method with a
grid-encoded SDF, numerical gradients and empty-space skipping (method.md §3.11): a better mesh in minutes, on a CPU
or a GPU.

This module is an entry point (imported by every ``ns-*`` command): keep it free of heavy imports.
"""

from __future__ import annotations

from dataclasses import replace

from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from nero_nerfstudio.configs.common import PAPER_LEARNING_RATE, adam_warm_up_cosine, nero_trainer_config, rescale_step
from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig
from nero_nerfstudio.data.datasets.nero_dataset import NeroDataset
from nero_nerfstudio.engine.trainer import NeroTrainerConfig
from nero_nerfstudio.fields.background_field import NerfPlusPlusFieldConfig
from nero_nerfstudio.fields.sdf_field import NeroSDFFieldConfig
from nero_nerfstudio.fields.split_sum_shading import SplitSumShadingConfig
from nero_nerfstudio.model_components.nero_sampler import NeroSamplerConfig
from nero_nerfstudio.model_components.occupancy_sampler import OccupancySamplerConfig
from nero_nerfstudio.models.nero_shape import NeroShapeModelConfig

# NeRO Stage I schedule (method.md §1.2, 1.3).
PAPER_STEPS = 300_000
PAPER_WARM_UP_END = 5_000
PAPER_ANNEAL_END = 50_000
PAPER_FREEZE_INV_S_STEP = 15_000
PAPER_OCCLUSION_LOSS_START = 20_000
PAPER_INIT_SDF_REG_END = 1_000


def stage_one_optimizers(learning_rate: float, warm_up_end: int, max_steps: int, grid_lr: float = 0.0) -> dict:
    """NeRO's single Adam schedule (torch defaults, no weight decay) for every parameter group of the model."""
    optimizers = {
        name: adam_warm_up_cosine(learning_rate, warm_up_end, max_steps) for name in ("fields", "field_background")
    }
    if grid_lr > 0.0:
        optimizers["field_grid"] = adam_warm_up_cosine(grid_lr, warm_up_end, max_steps, eps=1e-15)
    return optimizers


def scaled_step(paper_step: int, max_steps: int) -> int:
    """A step of the paper's 300k-step schedule, moved to the same fraction of a ``max_steps`` run (at least 1)."""
    return rescale_step(paper_step, max_steps, PAPER_STEPS)


def scaled_model_config(model: NeroShapeModelConfig, max_steps: int) -> NeroShapeModelConfig:
    """The paper's step-dependent constants rescaled from 300k steps to ``max_steps``."""

    return replace(
        model,
        anneal_end=scaled_step(PAPER_ANNEAL_END, max_steps),
        freeze_inv_s_step=scaled_step(PAPER_FREEZE_INV_S_STEP, max_steps),
        occlusion_loss_start=scaled_step(PAPER_OCCLUSION_LOSS_START, max_steps),
        init_sdf_reg_end=scaled_step(PAPER_INIT_SDF_REG_END, max_steps),
    )


def neus_color_baseline(model: NeroShapeModelConfig) -> NeroShapeModelConfig:
    """The NeuS-style peer of ``model`` for comparisons: NeuS's colour MLP instead of the split-sum shader (no
    materials, no occlusion loss), as wide as the shader and one layer deeper (NeuS: 5 layers vs the shader's 4);
    everything else identical."""
    from nero_nerfstudio.fields.neus_color_field import NeusColorConfig

    colour = NeusColorConfig(hidden_dim=model.shading.hidden_dim, num_layers=model.shading.num_layers + 1)
    return replace(model, shading_model="neus-color", neus_color=colour)


def nero_datamanager(num_rays: int) -> VanillaDataManagerConfig:
    """Random pixels of all training images, RGB only, GlossySynthetic parser by default."""
    return VanillaDataManagerConfig(
        _target=VanillaDataManager[NeroDataset],
        dataparser=NeroSyntheticDataParserConfig(),
        train_num_rays_per_batch=num_rays,
        eval_num_rays_per_batch=num_rays,
    )


def stage_one_trainer_config(
    method_name: str,
    max_steps: int,
    model: NeroShapeModelConfig,
    learning_rate: float,
    steps_per_save: int,
    steps_per_eval: int,
    steps_per_log: int = 20,
    grid_lr: float = 0.0,
) -> NeroTrainerConfig:
    """A Stage I trainer whose whole schedule (model constants and learning-rate warm-up) is fitted to
    ``max_steps``."""
    return nero_trainer_config(
        method_name,
        max_steps,
        pipeline=VanillaPipelineConfig(datamanager=nero_datamanager(512), model=scaled_model_config(model, max_steps)),
        optimizers=stage_one_optimizers(
            learning_rate, scaled_step(PAPER_WARM_UP_END, max_steps), max_steps, grid_lr=grid_lr
        ),
        steps_per_save=steps_per_save,
        steps_per_eval=steps_per_eval,
        steps_per_log=steps_per_log,
    )


def paper_trainer_config(max_steps: int = PAPER_STEPS) -> NeroTrainerConfig:
    """``nero-shape``: NeRO's Stage I settings, the whole schedule fitted to ``max_steps`` (paper: 300k)."""
    return stage_one_trainer_config(
        "nero-shape", max_steps, NeroShapeModelConfig(), PAPER_LEARNING_RATE, steps_per_save=1000, steps_per_eval=5000
    )


SMALL_STEPS = 3_000
SMALL_LEARNING_RATE = 2e-3
"""Four times NeRO's: with a schedule 100x shorter, 5e-4 leaves the SDF near its initial sphere (measured on the
24-view 48 px test bunny: Chamfer 0.19 after 300 steps at 5e-4, 0.05 at 2e-3, while a radius-0.5 sphere scores 0.12;
on a 64-view 128 px bunny, 1000 steps of 512 rays at 2e-3 reach 0.019)."""


def small_trainer_config(max_steps: int = SMALL_STEPS) -> NeroTrainerConfig:
    """``nero-shape-small`` with its whole schedule (warm-up, anneal, freeze, occlusion start) fitted to
    ``max_steps`` (``--max-num-iterations`` alone does not rescale the schedule)."""
    model = NeroShapeModelConfig(
        sdf_field=NeroSDFFieldConfig(num_layers=4, hidden_dim=64, skip_layers=(2,), feature_dim=64),
        background_field=NerfPlusPlusFieldConfig(num_layers=4, hidden_dim=64, skip_layer=1, color_hidden_dim=32),
        shading=SplitSumShadingConfig(hidden_dim=64, num_layers=3, fused_material_head=True),
        sampler=NeroSamplerConfig(num_coarse=32, num_upsample_rounds=2, num_upsample_per_round=16, num_background=16),
        occlusion_max_points=512,
        occlusion_num_march=32,
        occlusion_num_resample=8,
        eval_num_rays_per_chunk=2048,
    )
    return stage_one_trainer_config(
        "nero-shape-small", max_steps, model, SMALL_LEARNING_RATE, steps_per_save=500, steps_per_eval=500
    )


FAST_STEPS = 2_000
FAST_LEARNING_RATE = 2e-3
FAST_GRID_LEARNING_RATE = 1e-2
"""Grids train with a larger rate than networks (Instant-NGP, Neuralangelo); Adam's eps is 1e-15 for them."""


def fast_model_config() -> NeroShapeModelConfig:
    """``nero-shape-fast``'s model: a grid-encoded SDF with numerical gradients behind a small MLP, the small
    preset's shader and background, and the occupancy-grid sampler (method.md §3.11)."""
    return NeroShapeModelConfig(
        sdf_field=NeroSDFFieldConfig(
            encoding="grid",
            num_frequencies=0,
            num_layers=2,
            hidden_dim=64,
            skip_layers=(),
            feature_dim=32,
            gradient="numerical",
        ),
        background_field=NerfPlusPlusFieldConfig(num_layers=4, hidden_dim=64, skip_layer=1, color_hidden_dim=32),
        shading=SplitSumShadingConfig(hidden_dim=64, num_layers=3, fused_material_head=True),
        sampler=OccupancySamplerConfig(),
        occlusion_max_points=512,
        occlusion_num_march=32,
        occlusion_num_resample=8,
        eval_num_rays_per_chunk=4096,
    )


def fast_trainer_config(max_steps: int = FAST_STEPS) -> NeroTrainerConfig:
    """``nero-shape-fast`` with its schedule (grid levels, warm-up, anneal, freeze, occlusion start) fitted to
    ``max_steps``."""
    model = fast_model_config()
    # Every level active by an eighth of the run: thin parts must form while inv_s is still small (their rays then
    # still carry gradient); at a quarter of the run a 96 px bunny lost more of its ears.
    model.sdf_field.grid_steps_per_level = max(1, max_steps // (4 * model.sdf_field.grid_num_levels))
    return stage_one_trainer_config(
        "nero-shape-fast",
        max_steps,
        model,
        FAST_LEARNING_RATE,
        steps_per_save=500,
        steps_per_eval=500,
        grid_lr=FAST_GRID_LEARNING_RATE,
    )


nero_shape = MethodSpecification(
    config=paper_trainer_config(),
    description="NeRO Stage I (shape): NeuS SDF + split-sum reflective shading + occlusion loss; paper settings (GPU).",
)

nero_shape_small = MethodSpecification(
    config=small_trainer_config(),
    description="NeRO Stage I with small networks and fewer samples, scheduled for ~30 minutes on a CPU.",
)

nero_shape_fast = MethodSpecification(
    config=fast_trainer_config(),
    description="NeRO Stage I in minutes: grid-encoded SDF, numerical gradients, empty-space skipping (CPU or GPU).",
)
