"""NeRO Stage I ("nero-shape"): NeuS SDF + NeRF++ background + split-sum reflective shading + occlusion loss.

Per ray (spec 3.6-3.8): NeRO's sampler places samples on the unit-sphere chord (uniform + NeuS up-sampling) and
beyond it (inverse depth). Samples whose shading point lies inside the unit sphere get the SDF field (one pass for
SDF, feature and gradient), the NeuS cos-annealed alpha and the split-sum shader's colour; the others get the NeRF++
background's alpha and colour. One transmittance runs over all samples.

``shading_model="neus-color"`` swaps the split-sum shader for NeuS's view-dependent colour MLP (no materials, no
occlusion loss), everything else unchanged: the baseline NeRO is measured against.

Outputs follow nerfstudio's conventions so the viewer and ``ns-export`` work on the object alone: ``depth`` is the
distance along the unit ray direction to the object surface, ``accumulation`` the object's opacity (the background
does not count), ``normals`` the normal mapped to ``[0, 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import OrientedBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.model_components.renderers import RGBRenderer
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torch.nn import Parameter

from nero_nerfstudio.core.camera_conventions import opengl_c2w_to_opencv_w2c
from nero_nerfstudio.core.photographer import photographer_w2p
from nero_nerfstudio.fields.background_field import NerfPlusPlusFieldConfig, background_alpha
from nero_nerfstudio.fields.neus_color_field import NeusColorConfig
from nero_nerfstudio.fields.sdf_field import NeroSDFFieldConfig
from nero_nerfstudio.fields.split_sum_shading import SplitSumShadingConfig
from nero_nerfstudio.model_components.nero_sampler import NeroSampler
from nero_nerfstudio.model_components.neus_alpha import render_alpha
from nero_nerfstudio.model_components.occlusion import occlusion_target, select_occlusion_points
from nero_nerfstudio.utils.color import linear_to_srgb

# Shader outputs composited per ray for the viewer and evaluation images, and how they are shown: "linear" values
# as they are (materials, albedo-like maps), "srgb" lights and colours as clamp(sRGB(.), 0, 1) (spec 3.9).
SHADER_DISPLAY: Dict[str, Literal["linear", "srgb"]] = {
    "metallic": "linear",
    "roughness": "linear",
    "albedo": "linear",
    "diffuse_albedo": "linear",
    "diffuse_light": "srgb",
    "diffuse_color": "srgb",
    "specular_albedo": "linear",
    "specular_ref": "linear",
    "specular_light": "srgb",
    "specular_color": "srgb",
    "occlusion_prob": "linear",
    "occluded_indirect_light": "linear",
    "photographer_light": "srgb",
}

# Init-SDF regulariser radii (spec 3.8): points well inside must be inside, points beyond the sphere outside.
INIT_SDF_INNER_RADIUS = 0.1
INIT_SDF_OUTER_RADIUS = 1.05
INIT_SDF_POINT_RADIUS = 1.2


def charbonnier_rgb_loss(pred: Float[Tensor, "num_rays 3"], target: Float[Tensor, "num_rays 3"], eps: float) -> Tensor:
    """``mean_rays sqrt(sum_c (pred - target)^2 + eps)`` (NeRO's RGB loss)."""
    return torch.sqrt(((pred - target) ** 2).sum(dim=-1) + eps).mean()


def init_sdf_regularizer(points: Float[Tensor, "num_points 3"], sdf: Float[Tensor, "num_points 1"]) -> Tensor:
    """NeRO's early-training SDF hinge terms (spec 3.8), unweighted.

    Points within radius 0.1 must have ``sdf <= |p| - 0.1``: ``mean(h) / (1[mean(h) > 1e-5] + 1e-3)``; points beyond
    1.05 must have ``sdf >= |p| - 1.05``: ``sum(h) / (#{h > 1e-5} + 1e-3)``. Empty sets contribute 0.
    """
    radius = points.norm(dim=-1, keepdim=True)
    total = sdf.new_zeros(())
    small = radius < INIT_SDF_INNER_RADIUS
    if small.any():
        hinge = torch.relu(sdf[small] - (radius[small] - INIT_SDF_INNER_RADIUS)).mean()
        total = total + hinge / ((hinge > 1e-5).to(hinge.dtype) + 1e-3)
    large = radius > INIT_SDF_OUTER_RADIUS
    if large.any():
        hinge = torch.relu((radius[large] - INIT_SDF_OUTER_RADIUS) - sdf[large])
        total = total + hinge.sum() / ((hinge > 1e-5).sum().to(hinge.dtype) + 1e-3)
    return total


def composite_per_ray(
    values: Float[Tensor, "num_samples channels"],
    weights: Float[Tensor, "num_samples 1"],
    ray_indices: Int[Tensor, "num_samples"],
    num_rays: int,
) -> Float[Tensor, "num_rays channels"]:
    """``sum_i w_i v_i`` per ray over a packed subset of samples (``ray_indices`` names each sample's ray)."""
    output = values.new_zeros(num_rays, values.shape[-1])
    return output.index_add(0, ray_indices, weights * values)


def surface_depth(
    distances: Float[Tensor, "num_samples 1"],
    weights: Float[Tensor, "num_samples 1"],
    ray_indices: Int[Tensor, "num_samples"],
    num_rays: int,
) -> Tuple[Float[Tensor, "num_rays 1"], Float[Tensor, "num_rays 1"]]:
    """Expected ray distance of a packed subset of samples, normalised by their accumulated weight, and that weight.

    ``depth = sum_i w_i t_i / sum_i w_i`` (0 where the weights sum to 0), so the background behind a
    half-transparent object edge does not pull the depth away from the surface.
    """
    accumulation = composite_per_ray(torch.ones_like(distances), weights, ray_indices, num_rays)
    weighted_distance = composite_per_ray(distances, weights, ray_indices, num_rays)
    depth = torch.where(accumulation > 0, weighted_distance / accumulation.clamp_min(1e-10), 0.0)
    return depth, accumulation


@dataclass
class NeroShapeModelConfig(ModelConfig):
    """NeRO Stage I; defaults are the paper's configuration (spec 1.3)."""

    _target: Type = field(default_factory=lambda: NeroShapeModel)
    enable_collider: bool = False
    """The sampler takes near/far from the unit sphere itself."""
    eval_num_rays_per_chunk: int = 1024
    """Rays per chunk when rendering full images."""
    sdf_field: NeroSDFFieldConfig = field(default_factory=NeroSDFFieldConfig)
    """SDF network and NeuS variance."""
    background_field: NerfPlusPlusFieldConfig = field(default_factory=NerfPlusPlusFieldConfig)
    """NeRF++ network outside the unit sphere."""
    shading_model: Literal["split-sum", "neus-color"] = "split-sum"
    """``split-sum``: NeRO's reflective shader; ``neus-color``: NeuS's view-dependent colour MLP (baseline)."""
    shading: SplitSumShadingConfig = field(default_factory=SplitSumShadingConfig)
    """Split-sum shader (its ``photographer_light`` flag is set from :attr:`photographer_light`)."""
    neus_color: NeusColorConfig = field(default_factory=NeusColorConfig)
    """Colour MLP of ``shading_model="neus-color"``."""
    photographer_light: Optional[bool] = None
    """Model the photographer's reflection; None: the dataparser's default (off for synthetic, on for real/custom).
    Always off with ``shading_model="neus-color"``."""
    num_coarse_samples: int = 64
    """Uniform samples on the unit-sphere chord."""
    num_upsample_rounds: int = 4
    """Rounds of NeuS up-sampling."""
    num_upsample_per_round: int = 16
    """Samples added per up-sampling round."""
    num_background_samples: int = 32
    """Inverse-depth samples beyond the sphere."""
    base_variance: float = 64.0
    """NeuS sharpness of up-sampling round i is base_variance * 2^i."""
    clip_sample_variance: bool = True
    """Cap the up-sampling sharpness at the field's current inv_s."""
    anneal_end: int = 50000
    """Step at which the cos-anneal ratio reaches 1 (0: no annealing)."""
    freeze_inv_s_step: int = 15000
    """The NeuS variance gets no gradient before this step (0: never frozen)."""
    rgb_loss_eps: float = 1e-3
    """Epsilon inside the Charbonnier square root."""
    eikonal_loss_mult: float = 0.1
    """Weight of the eikonal loss."""
    init_sdf_reg_end: int = 1000
    """The init-SDF regulariser fades out (cosine) over this many steps (0: off)."""
    occlusion_loss_start: int = 20000
    """First step of the occlusion loss (negative: off; always off with ``shading_model="neus-color"``)."""
    occlusion_loss_mult: float = 1.0
    """Weight of the occlusion loss."""
    occlusion_max_points: int = 2048
    """At most this many surface samples per step get an occlusion target."""
    occlusion_num_march: int = 64
    """Uniform depths of the occlusion march along the reflected ray."""
    occlusion_num_resample: int = 16
    """Importance depths of the occlusion march."""


class NeroShapeModel(Model):
    """NeRO Stage I model.

    Args:
        config: the model configuration.
        scene_box: the dataset's scene box (the model works in the unit sphere).
        num_train_data: number of training images.
        metadata: the training dataset's metadata (``photographer_w2p``, ``photographer_light``), via kwargs.
    """

    config: NeroShapeModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        config = self.config
        self.step = 0
        metadata: Dict[str, Any] = self.kwargs.get("metadata") or {}

        self.split_sum = config.shading_model == "split-sum"
        if config.shading_model not in ("split-sum", "neus-color"):
            raise ValueError(f"nero-shape: unknown shading_model {config.shading_model!r} (split-sum, neus-color)")
        use_photographer = config.photographer_light
        if use_photographer is None:
            use_photographer = bool(metadata.get("photographer_light", False))
        use_photographer = use_photographer and self.split_sum
        self.use_photographer_light = use_photographer
        if use_photographer:
            if "photographer_w2p" not in metadata:
                raise ValueError(
                    "nero-shape: the photographer light is on but the dataparser gave no 'photographer_w2p' metadata"
                )
            poses = torch.as_tensor(metadata["photographer_w2p"], dtype=torch.float32).reshape(-1, 3, 4)
        else:
            poses = torch.zeros(0, 3, 4)
        # Not persistent: it comes with the dataset, not with the checkpoint.
        self.register_buffer("photographer_w2p", poses, persistent=False)

        self.field = config.sdf_field.setup()
        self.field_background = config.background_field.setup()
        if self.split_sum:
            self.shader = replace(config.shading, photographer_light=use_photographer).setup(
                feature_dim=config.sdf_field.feature_dim
            )
        else:
            self.shader = config.neus_color.setup(feature_dim=config.sdf_field.feature_dim)
        self.sampler = NeroSampler(
            num_coarse=config.num_coarse_samples,
            num_upsample_rounds=config.num_upsample_rounds,
            num_upsample_per_round=config.num_upsample_per_round,
            num_background=config.num_background_samples,
            base_variance=config.base_variance,
            clip_sample_variance=config.clip_sample_variance,
        )
        self.renderer_rgb = RGBRenderer(background_color="black")

        from torchmetrics.functional import structural_similarity_index_measure
        from torchmetrics.image import PeakSignalNoiseRatio

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = structural_similarity_index_measure
        # LPIPS needs AlexNet weights that may not be downloadable: built on first use, never registered as a
        # submodule (so it stays out of checkpoints).
        self._lpips_cache: Dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------------------------
    # Training schedule

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        def set_step(step: int) -> None:
            self.step = step

        return [TrainingCallback(where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], func=set_step)]

    def update_to_step(self, step: int) -> None:
        self.step = step

    def cos_anneal_ratio(self) -> float:
        """NeuS cos-anneal ratio: ``min(1, step / anneal_end)`` in training, 0 in evaluation (spec 3.7)."""
        if not self.training:
            return 0.0
        if self.config.anneal_end <= 0:
            return 1.0
        return min(1.0, self.step / self.config.anneal_end)

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        """``fields`` (SDF, variance, shader), ``field_background``, and ``field_hash_grid`` for a hash-grid SDF."""
        hash_parameters: List[Parameter] = []
        if self.field.hash_encoding is not None:
            hash_parameters = list(self.field.hash_encoding.parameters())
        hash_ids = {id(parameter) for parameter in hash_parameters}
        field_parameters = [p for p in self.field.parameters() if id(p) not in hash_ids]
        groups = {
            "fields": field_parameters + list(self.shader.parameters()),
            "field_background": list(self.field_background.parameters()),
        }
        if hash_parameters:
            groups["field_hash_grid"] = hash_parameters
        return groups

    # ------------------------------------------------------------------------------------------------------------
    # Rendering

    def photographer_poses(self, ray_bundle: RayBundle) -> Optional[Float[Tensor, "num_rays 3 4"]]:
        """Photographer frame of each ray's camera, or None when the photographer light is off.

        Rays rendered through :meth:`get_outputs_for_camera` carry their camera's own frame; otherwise the training
        camera index selects it, and indices outside the training set (viewer, evaluation) fall back to camera 0.
        """
        if not self.use_photographer_light:
            return None
        num_rays = ray_bundle.origins.shape[0]
        if ray_bundle.metadata is not None and "photographer_w2p" in ray_bundle.metadata:
            return ray_bundle.metadata["photographer_w2p"].reshape(num_rays, 3, 4)
        if ray_bundle.camera_indices is None:
            indices = torch.zeros(num_rays, dtype=torch.long, device=self.device)
        else:
            indices = ray_bundle.camera_indices.reshape(num_rays).long()
            known = (indices >= 0) & (indices < self.photographer_w2p.shape[0])
            indices = torch.where(known, indices, torch.zeros_like(indices))
        return self.photographer_w2p[indices]

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Any]:  # type: ignore[override]
        """Renders a flat bundle of unit-direction rays.

        Returns ``rgb`` ``[num_rays, 3]`` (object and background); ``accumulation`` ``[num_rays, 1]``, the summed
        weight of the samples inside the unit sphere (object opacity); ``depth`` ``[num_rays, 1]``, their expected
        distance along the unit ray direction normalised by that weight (0 where it is 0). In training also the
        per-sample tensors the losses need (``surface_samples``, ``init_sdf_samples``); in evaluation ``normal``
        (unit, world frame), ``normals`` (``(normal + 1) / 2`` in ``[0, 1]``, what ``ns-export pointcloud
        --normal-method model_output`` reads) and, for the split-sum shader, its maps of :data:`SHADER_DISPLAY`; all
        per ray with 1 or 3 channels.
        """
        num_rays = ray_bundle.origins.shape[0]
        inv_s = self.field.inv_s()
        ray_samples = self.sampler(ray_bundle, sdf_fn=self.field.get_sdf, inv_s=float(inv_s.detach()))

        positions = ray_samples.frustums.get_positions()  # [num_rays, num_samples, 3]
        assert ray_samples.deltas is not None
        deltas = ray_samples.deltas
        num_samples = positions.shape[1]
        directions = ray_bundle.directions[:, None, :].expand(num_rays, num_samples, 3)
        ray_indices = torch.arange(num_rays, device=positions.device)[:, None].expand(num_rays, num_samples)
        inside = positions.norm(dim=-1) <= 1.0
        outside = ~inside

        # Surface part: SDF, feature and gradient once per sample, NeuS alpha, the shader's colour.
        inside_points = positions[inside]
        inside_directions = directions[inside]
        inside_ray_indices = ray_indices[inside]
        sdf, feature, gradient = self.field.get_sdf_feature_gradient(inside_points)
        normals = F.normalize(gradient, dim=-1)
        if self.training and self.step < self.config.freeze_inv_s_step:
            inv_s = inv_s.detach()
        direction_dot_gradient = (inside_directions * gradient).sum(dim=-1, keepdim=True)
        inside_alpha = render_alpha(sdf, direction_dot_gradient, deltas[inside], inv_s, self.cos_anneal_ratio())
        if self.split_sum:
            poses = self.photographer_poses(ray_bundle)
            shading = self.shader(
                inside_points,
                normals,
                -inside_directions,
                feature,
                None if poses is None else poses[inside_ray_indices],
            )
        else:
            shading = {"rgb": self.shader(inside_points, inside_directions, normals, feature)}

        # Background part.
        density_raw, background_rgb = self.field_background(positions[outside], -directions[outside])
        outside_alpha = background_alpha(density_raw, deltas[outside])

        alphas = positions.new_zeros(num_rays, num_samples, 1)
        alphas[inside] = inside_alpha
        alphas[outside] = outside_alpha
        colors = positions.new_zeros(num_rays, num_samples, 3)
        colors[inside] = shading["rgb"]
        colors[outside] = background_rgb
        weights = ray_samples.get_weights_and_transmittance_from_alphas(alphas, weights_only=True)

        inside_weights = weights[inside]
        assert ray_samples.frustums.starts is not None and ray_samples.frustums.ends is not None
        distances = (ray_samples.frustums.starts + ray_samples.frustums.ends) / 2.0
        depth, accumulation = surface_depth(distances[inside], inside_weights, inside_ray_indices, num_rays)
        outputs: Dict[str, Any] = {
            "rgb": self.renderer_rgb(rgb=colors, weights=weights),
            "accumulation": accumulation,
            "depth": depth,
        }

        if self.training:
            outputs["surface_samples"] = {
                "points": inside_points,
                "directions": inside_directions,
                "sdf": sdf,
                "gradient": gradient,
            }
            if self.split_sum:
                outputs["surface_samples"]["reflect_dir"] = shading["reflect_dir"]
                outputs["surface_samples"]["occlusion_prob_raw"] = shading["occlusion_prob_raw"]
            if self.step < self.config.init_sdf_reg_end:
                outputs["init_sdf_samples"] = self._init_sdf_samples(positions, inside, inside_points, sdf)
        else:
            # Per-ray maps for the viewer and evaluation images (training needs none of them).
            normal = F.normalize(composite_per_ray(normals, inside_weights, inside_ray_indices, num_rays), dim=-1)
            outputs["normal"] = normal
            outputs["normals"] = ((normal + 1.0) / 2.0).clamp(0.0, 1.0)
            for name, display in SHADER_DISPLAY.items() if self.split_sum else ():
                if name == "photographer_light" and not self.use_photographer_light:
                    continue
                value = composite_per_ray(shading[name], inside_weights, inside_ray_indices, num_rays)
                outputs[name] = linear_to_srgb(value).clamp(0.0, 1.0) if display == "srgb" else value
        return outputs

    def _init_sdf_samples(
        self,
        positions: Float[Tensor, "num_rays num_samples 3"],
        inside: Tensor,
        inside_points: Float[Tensor, "num_inside 3"],
        inside_sdf: Float[Tensor, "num_inside 1"],
    ) -> Tuple[Tensor, Tensor]:
        """All sample points within radius 1.2 and their SDF; only the ring outside the unit sphere is new work."""
        ring = (~inside) & (positions.norm(dim=-1) < INIT_SDF_POINT_RADIUS)
        ring_points = positions[ring]
        ring_sdf = self.field.get_sdf(ring_points)
        return torch.cat([inside_points, ring_points], dim=0), torch.cat([inside_sdf, ring_sdf], dim=0)

    def get_rgba_image(self, outputs: Dict[str, Tensor], output_name: str = "rgb") -> Tensor:
        """``rgb`` with the object's opacity as alpha: the background is transparent (``ns-export pointcloud``
        keeps pixels with alpha > 0.5, so only object points)."""
        accumulation_name = output_name.replace("rgb", "accumulation")
        if accumulation_name not in outputs:
            raise NotImplementedError(f"nero-shape has no {accumulation_name!r} output for {output_name!r}")
        return torch.cat([outputs[output_name], outputs[accumulation_name]], dim=-1)

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box: Optional[OrientedBox] = None) -> Dict[str, Tensor]:
        """Renders one camera; its own photographer frame is attached to the rays (the camera need not be a
        training camera)."""
        ray_bundle = camera.generate_rays(camera_indices=0, keep_shape=True, obb_box=obb_box)
        if self.use_photographer_light:
            c2w = camera.camera_to_worlds.reshape(-1, 3, 4)[0].detach().cpu().numpy().astype(np.float64)
            pose = photographer_w2p(opengl_c2w_to_opencv_w2c(c2w)[None])[0]
            pose_tensor = torch.as_tensor(pose, dtype=torch.float32, device=ray_bundle.origins.device).reshape(12)
            height, width = ray_bundle.origins.shape[:2]
            ray_bundle.metadata["photographer_w2p"] = pose_tensor.expand(height, width, 12)
        return self.get_outputs_for_camera_ray_bundle(ray_bundle)

    # ------------------------------------------------------------------------------------------------------------
    # Losses and metrics

    def get_metrics_dict(self, outputs: Dict[str, Any], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        image = batch["image"][..., :3].to(self.device)
        metrics = {"psnr": self.psnr(outputs["rgb"], image)}
        if self.training:
            inv_s = self.field.inv_s().detach()[0]
            metrics["inv_s"] = inv_s
            metrics["std"] = 1.0 / inv_s
        return metrics

    def get_loss_dict(
        self, outputs: Dict[str, Any], batch: Dict[str, Tensor], metrics_dict: Optional[Dict[str, Tensor]] = None
    ) -> Dict[str, Tensor]:
        image = batch["image"][..., :3].to(self.device)
        losses = {"rgb_loss": charbonnier_rgb_loss(outputs["rgb"], image, self.config.rgb_loss_eps)}
        if not self.training:
            return losses
        surface = outputs["surface_samples"]
        gradient = surface["gradient"]
        if gradient.shape[0] > 0:
            losses["eikonal_loss"] = self.config.eikonal_loss_mult * ((gradient.norm(dim=-1) - 1.0) ** 2).mean()
        if "init_sdf_samples" in outputs:
            fade = (math.cos(math.pi * self.step / self.config.init_sdf_reg_end) + 1.0) / 2.0
            losses["init_sdf_loss"] = fade * init_sdf_regularizer(*outputs["init_sdf_samples"])
        if self.split_sum and 0 <= self.config.occlusion_loss_start <= self.step:
            losses["occlusion_loss"] = self.config.occlusion_loss_mult * self._occlusion_loss(surface)
        return losses

    def _occlusion_loss(self, surface: Dict[str, Tensor]) -> Tensor:
        """``mean |o_raw - o_gt|`` over front-facing surface samples (spec 3.8); 0 when there are none."""
        selected = select_occlusion_points(
            surface["points"],
            surface["sdf"].detach(),
            surface["gradient"].detach(),
            surface["directions"],
            self.config.occlusion_max_points,
        )
        predicted = surface["occlusion_prob_raw"][selected]
        if selected.shape[0] == 0:
            return predicted.sum()
        # The march uses the learned sharpness exp(10 v) as it is, without the rendering clip.
        inv_s = torch.exp(10.0 * self.field.variance.detach())
        target = occlusion_target(
            self.field.get_sdf,
            surface["points"][selected].detach(),
            F.normalize(surface["reflect_dir"][selected].detach(), dim=-1),
            inv_s,
            num_march=self.config.occlusion_num_march,
            num_resample=self.config.occlusion_num_resample,
        )
        return (predicted - target).abs().mean()

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation images

    def _lpips(self) -> Optional[torch.nn.Module]:
        """LPIPS (AlexNet) if its weights can be had; a failure is reported once and LPIPS is skipped after."""
        if "model" not in self._lpips_cache and "error" not in self._lpips_cache:
            try:
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                self._lpips_cache["model"] = LearnedPerceptualImagePatchSimilarity(normalize=True).to(self.device)
            except Exception as error:  # weights download or torchvision problems: LPIPS is optional
                self._lpips_cache["error"] = error
                CONSOLE.print(f"[yellow]LPIPS is unavailable ({type(error).__name__}: {error}); reporting PSNR/SSIM only")
        return self._lpips_cache.get("model")

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        image = batch["image"][..., :3].to(self.device)
        rgb = outputs["rgb"].clamp(0.0, 1.0)

        def gray(name: str) -> Tensor:
            return outputs[name].expand(*outputs[name].shape[:-1], 3)

        images = {
            "img": torch.cat([image, rgb], dim=1),
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
            # Black where the ray does not end on the object.
            "normal": outputs["normals"] * (outputs["accumulation"] > 0.5),
        }
        if self.split_sum:
            material_panels = [gray("metallic"), gray("roughness"), outputs["albedo"].clamp(0.0, 1.0)]
            light_panels = [outputs["diffuse_color"], outputs["specular_color"], gray("occlusion_prob").clamp(0.0, 1.0)]
            if "photographer_light" in outputs:
                light_panels.append(outputs["photographer_light"])
            images["materials"] = torch.cat(material_panels, dim=1)
            images["shading"] = torch.cat(light_panels, dim=1)

        image_nchw = torch.moveaxis(image, -1, 0)[None]
        rgb_nchw = torch.moveaxis(rgb, -1, 0)[None]
        metrics = {
            "psnr": float(self.psnr(image_nchw, rgb_nchw).item()),
            "ssim": float(self.ssim(image_nchw, rgb_nchw)),  # type: ignore[arg-type]
        }
        lpips = self._lpips()
        if lpips is not None:
            metrics["lpips"] = float(lpips(image_nchw, rgb_nchw).item())
        return metrics, images
