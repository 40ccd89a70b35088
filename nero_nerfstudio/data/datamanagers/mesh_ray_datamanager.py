"""Training rays of Stage II: pixels whose primary ray hits the fixed mesh (method.md §4.1), and a few that miss it.

At setup every training pixel is traced once against the mesh; training batches are drawn from the hitting pixels
(reshuffled when used up) and carry their hit in ``RayBundle.metadata`` (:mod:`.mesh_hits`). With
``train_num_background_rays_per_batch`` > 0, each batch ends with that many pixels that miss the mesh (drawn from a
random subset of each image's), which show the environment directly (§4.5). Evaluation batches and
images are nerfstudio's usual ones: the model traces those rays itself.

The mesh has one owner, the model (``nero-material``'s ``--pipeline.model.mesh-path``): it loads the mesh and builds
the ray caster; this datamanager traces the pixels with that caster, handed over through the training callbacks once
both exist. Data flows one way: the datamanager adds the parser's ``dataparser_transform`` / ``dataparser_scale`` to
the dataset metadata, so the model can move the dataset-frame mesh into the normalised frame in every mode
(training, viewer, evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.model_components.ray_generators import RayGenerator
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.data.datamanagers.mesh_hits import (
    BackgroundPixels,
    MeshHitPool,
    ShuffledBatches,
    pool_batch_metadata,
    trace_hit_pool,
)
from nero_nerfstudio.data.datasets.nero_dataset import NeroDataset
from nero_nerfstudio.model_components.pixel_footprint import BLENDER_PIXEL_FILTER_STD, pixel_filter_offsets
from nero_nerfstudio.raycasting.base import MeshRayCaster


@dataclass
class MeshRayDataManagerConfig(VanillaDataManagerConfig):
    """Random hitting pixels of all training images (NeRO Stage II: 512 per step)."""

    _target: Type = field(default_factory=lambda: MeshRayDataManager)
    train_num_rays_per_batch: int = 512
    """Pixels that hit the mesh per batch."""
    train_num_background_rays_per_batch: int = 0
    """Pixels that miss the mesh per batch, after the hitting ones (0: none, NeRO's batches)."""
    background_pixels_per_image: int = 4096
    """Missing pixels kept per training image for those batches (a random subset, to bound memory)."""
    trace_chunk_size: int = 1 << 20
    """Primary rays per cast call while building the pool."""
    pixel_footprint_samples: int = 8
    """Rays per hitting pixel, spread over its filter, that measure how much the normal turns within the pixel
    (method.md §4.4). 0: NeRO's one ray through the pixel centre."""
    pixel_footprint: Literal["widen", "supersample"] = "widen"
    """What the model does with those rays: ``widen`` the GGX lobe shaded at the pixel centre by their normals'
    spread, or ``supersample``: the rays go through each pixel's own random draws from the filter, the pool keeps
    their normals (``3 * pixel_footprint_samples`` half floats per pixel), and each Monte-Carlo estimate is shaded at
    one of them, with no lobe-shape approximation (with the model's ``rgb_loss_pairing linear`` it gets the 0.15 gold
    bunny right where ``widen`` floors it, but it brightens the mirror bunny's albedo; method.md §4.4)."""
    pixel_filter_std: float = BLENDER_PIXEL_FILTER_STD
    """Standard deviation (pixels) of the Gaussian pixel filter those rays are drawn from (0.42: that of Cycles'
    default filter)."""


class MeshRayDataManager(VanillaDataManager[NeroDataset]):
    """VanillaDataManager whose training batches are mesh-hitting pixels with their hits."""

    config: MeshRayDataManagerConfig
    hit_pool: Optional[MeshHitPool] = None
    """The hitting pixels, once traced."""
    background_pool: Optional[BackgroundPixels] = None
    """The kept missing pixels, once traced."""
    _batches: Optional[ShuffledBatches] = None
    _background_batches: Optional[ShuffledBatches] = None

    def create_train_dataset(self) -> NeroDataset:
        transform = self.train_dataparser_outputs.dataparser_transform
        self.train_dataparser_outputs.metadata[NeroKey.DATAPARSER_TRANSFORM] = torch.as_tensor(transform).float().clone()
        self.train_dataparser_outputs.metadata[NeroKey.DATAPARSER_SCALE] = float(self.train_dataparser_outputs.dataparser_scale)
        return super().create_train_dataset()

    def setup_train(self) -> None:
        """Ray generator over the training cameras; the pixel pool is traced once the model's mesh is known (images
        are read once then, not cached by a dataloader)."""
        self.train_ray_generator = RayGenerator(self.train_dataset.cameras.to(self.device))
        self.hit_pool = None
        self.background_pool = None
        self._batches = None
        self._background_batches = None

    def build_hit_pool(self, ray_caster: MeshRayCaster, mesh_name: Optional[Path] = None) -> MeshHitPool:
        """Trace every training pixel against ``ray_caster``'s mesh (normalised frame); keep the hits, and a sample of
        the misses when batches take some.

        Raises:
            NeroDataError: no pixel hits the mesh (named by ``mesh_name``).
        """
        CONSOLE.print("Tracing every training pixel against the mesh...")
        config = self.config
        background_per_image = config.background_pixels_per_image if config.train_num_background_rays_per_batch else 0
        traced = trace_hit_pool(
            self.train_dataset.cameras,
            self.train_dataset.get_image_float32,
            ray_caster,
            chunk_size=config.trace_chunk_size,
            background_per_image=background_per_image,
            footprint_offsets=(
                pixel_filter_offsets(config.pixel_footprint_samples, config.pixel_filter_std)
                if config.pixel_footprint_samples > 0
                else None
            ),
            supersample_filter_std=config.pixel_filter_std if config.pixel_footprint == "supersample" else None,
        )
        pool = traced.hits
        if len(pool) == 0:
            raise NeroDataError(
                mesh_name or "mesh",
                "no training pixel's ray hits the mesh (is the mesh in the dataset frame of this scene?)",
            )
        cameras = self.train_dataset.cameras
        num_pixels = int((cameras.height.long() * cameras.width.long()).sum())
        CONSOLE.print(f"{len(pool)} of {num_pixels} training pixels hit the mesh.")
        self.hit_pool = pool
        self._batches = ShuffledBatches(len(pool))
        self.background_pool = traced.background
        self._background_batches = ShuffledBatches(len(traced.background)) if len(traced.background) else None
        return pool

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        """Called once the pipeline exists: trace the model's mesh (unless a pool was already built)."""
        if self.hit_pool is None:
            pipeline = training_callback_attributes.pipeline
            model = getattr(pipeline, "model", None) if pipeline is not None else None
            ray_caster = getattr(model, "ray_caster", None)
            if ray_caster is None:
                raise ValueError(
                    "MeshRayDataManager needs a mesh: use a model that owns one as 'ray_caster' "
                    "(nero-material: --pipeline.model.mesh-path)"
                )
            self.build_hit_pool(ray_caster, getattr(model.config, "mesh_path", None))
        return []

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        """``train_num_rays_per_batch`` hitting pixels then ``train_num_background_rays_per_batch`` missing ones: rays
        with their hits in ``metadata`` (``NeroKey.HIT_MASK`` tells which), and ``{"image" [N, 3], "indices" [N, 3]}``.
        """
        if self.hit_pool is None or self._batches is None:
            raise RuntimeError("MeshRayDataManager.next_train before the mesh was traced (no mesh given yet)")
        self.train_count += 1
        batch_pool = self.hit_pool.select(self._batches.next(self.config.train_num_rays_per_batch))
        indices, colors = [batch_pool.indices], [batch_pool.colors]
        num_background = 0
        if self.background_pool is not None and self._background_batches is not None:
            background = self.background_pool.select(
                self._background_batches.next(self.config.train_num_background_rays_per_batch)
            )
            indices.append(background.indices)
            colors.append(background.colors)
            num_background = len(background)
        ray_indices = torch.cat(indices).to(self.device)
        ray_bundle = self.train_ray_generator(ray_indices)
        ray_bundle.metadata.update(pool_batch_metadata(batch_pool, num_background, self.device))
        return ray_bundle, {"image": torch.cat(colors).to(self.device), "indices": ray_indices}

    def get_train_rays_per_batch(self) -> int:
        return self.config.train_num_rays_per_batch + self.config.train_num_background_rays_per_batch
