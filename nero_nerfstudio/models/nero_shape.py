"""NeRO Stage I ("nero-shape"): NeuS SDF + NeRF++ background + split-sum reflective shading + occlusion loss.

Per ray (method.md §3.6-3.8): NeRO's sampler places samples on the unit-sphere chord (uniform + NeuS up-sampling) and
beyond it (inverse depth). Samples whose shading point lies inside the unit sphere get the SDF field (one pass for
SDF, feature and gradient), the NeuS cos-annealed alpha and the split-sum shader's colour; the others get the NeRF++
background's alpha and colour. One transmittance runs over all samples (:meth:`NeroShapeModel.sample_and_forward_field`);
nerfstudio's renderers turn the weights into per-ray outputs (:meth:`NeroShapeModel.get_outputs`).

``shading_model="neus-color"`` swaps the split-sum shader for NeuS's view-dependent colour MLP (no materials, no
occlusion loss), everything else unchanged: the baseline NeRO is measured against.

Outputs follow nerfstudio's conventions so the viewer and ``ns-export`` work on the object alone: ``depth`` is the
distance along the unit ray direction to the object surface, ``accumulation`` the object's opacity (the background
does not count), ``normals`` the normal mapped to ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.renderers import AccumulationRenderer, RGBRenderer, SemanticRenderer
from nerfstudio.utils import colormaps
from torch import Tensor
from torch.nn import Parameter

from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.fields.background_field import NerfPlusPlusFieldConfig, background_alpha
from nero_nerfstudio.fields.neus_color_field import NeusColorConfig
from nero_nerfstudio.fields.sdf_field import NeroSDFFieldConfig
from nero_nerfstudio.fields.split_sum_shading import SplitSumShadingConfig
from nero_nerfstudio.model_components.losses import (
    INIT_SDF_POINT_RADIUS,
    charbonnier_rgb_loss,
    cosine_fade,
    eikonal_loss,
    init_sdf_regularizer,
    occlusion_loss,
)
from nero_nerfstudio.model_components.nero_sampler import NeroSamplerConfig, StageOneSamplerConfig
from nero_nerfstudio.model_components.occupancy_sampler import ACTIVE_KEY
from nero_nerfstudio.model_components.neus_alpha import render_alpha
from nero_nerfstudio.models.nero_base import NeroModel, NeroModelConfig
from nero_nerfstudio.utils.color import linear_to_srgb

# Sampler settings that were fields of the model config before ``NeroShapeModelConfig.sampler``: old name -> new.
LEGACY_SAMPLER_FIELDS: Dict[str, str] = {
    "num_coarse_samples": "num_coarse",
    "num_upsample_rounds": "num_upsample_rounds",
    "num_upsample_per_round": "num_upsample_per_round",
    "num_background_samples": "num_background",
    "base_variance": "base_variance",
    "clip_sample_variance": "clip_sample_variance",
}

OBJECT_OPACITY = 0.5
"""Opacity above which a ray ends on the object: nerfstudio's alpha cut (its exporters keep alpha > 0.5)."""

# Shader outputs composited per ray for the viewer and evaluation images, and how they are shown: "linear" values
# as they are (materials, albedo-like maps), "srgb" lights and colours as clamp(sRGB(.), 0, 1) (method.md §3.9).
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


def surface_depth(
    distances: Float[Tensor, "num_inside 1"],
    weights: Float[Tensor, "num_inside 1"],
    ray_indices: Int[Tensor, "num_inside"],
    num_rays: int,
) -> Tuple[Float[Tensor, "num_rays 1"], Float[Tensor, "num_rays 1"]]:
    """Expected ray distance of a packed subset of samples, normalised by their accumulated weight, and that weight.

    ``depth = sum_i w_i t_i / sum_i w_i`` (0 where the weights sum to 0), so the background behind a
    half-transparent object edge does not pull the depth away from the surface. Not nerfstudio's ``DepthRenderer``:
    it clips to the sample range, so a ray that misses the object would get a depth.
    """
    accumulation = AccumulationRenderer.forward(weights, ray_indices=ray_indices, num_rays=num_rays)
    weighted_distance = SemanticRenderer.forward(distances, weights, ray_indices=ray_indices, num_rays=num_rays)
    depth = torch.where(accumulation > 0, weighted_distance / accumulation.clamp_min(1e-10), 0.0)
    return depth, accumulation


@dataclass
class NeroShapeModelConfig(NeroModelConfig):
    """NeRO Stage I; defaults are the paper's configuration (method.md §1.3)."""

    _target: Type = field(default_factory=lambda: NeroShapeModel)
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
    sampler: StageOneSamplerConfig = field(default_factory=NeroSamplerConfig)
    """Where along each ray the fields are queried: NeRO's (uniform + NeuS up-sampling, inverse-depth background) or
    the fast preset's occupancy grid (evenly spaced depths kept near the surface)."""
    anneal_end: int = 50000
    """Step at which the cos-anneal ratio reaches 1 (0: no annealing)."""
    freeze_inv_s_step: int = 15000
    """The NeuS variance gets no gradient before this step (0: never frozen)."""
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

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Loads a ``config.yml`` saved before the sampler settings moved into :attr:`sampler` (old runs still export
        and render)."""
        sampler = {new: state.pop(old) for old, new in LEGACY_SAMPLER_FIELDS.items() if old in state}
        state.setdefault("sampler", NeroSamplerConfig(**sampler))
        self.__dict__.update(state)


class NeroShapeModel(NeroModel):
    """NeRO Stage I model.

    Args:
        config: the model configuration.
        scene_box: the dataset's scene box (the model works in the unit sphere).
        num_train_data: number of training images.
        metadata: the training dataset's metadata (``photographer_w2p``, ``photographer_light``), via kwargs.
    """

    config: NeroShapeModelConfig
    method_name = "nero-shape"
    use_lpips = True

    def supports_photographer_light(self) -> bool:
        """Only the split-sum shader has a photographer light (the NeuS colour baseline never does)."""
        return self.config.shading_model == "split-sum"

    def populate_modules(self) -> None:
        config = self.config
        if config.shading_model not in ("split-sum", "neus-color"):
            raise ValueError(f"nero-shape: unknown shading_model {config.shading_model!r} (split-sum, neus-color)")
        super().populate_modules()
        self.split_sum = config.shading_model == "split-sum"

        self.field = config.sdf_field.setup()
        self.field_background = config.background_field.setup()
        if self.split_sum:
            self.shader = replace(config.shading, photographer_light=self.use_photographer_light).setup(
                feature_dim=config.sdf_field.feature_dim
            )
        else:
            self.shader = config.neus_color.setup(feature_dim=config.sdf_field.feature_dim)
        self.sampler = config.sampler.setup()
        self.renderer_rgb = RGBRenderer(background_color="black")
        # A plain weighted sum over a packed subset of samples: the object's normal and shader maps.
        self.renderer_surface = SemanticRenderer()

    # ------------------------------------------------------------------------------------------------------------
    # Training schedule

    def cos_anneal_ratio(self) -> float:
        """NeuS cos-anneal ratio: ``min(1, step / anneal_end)`` in training, 0 in evaluation (method.md §3.7)."""
        if not self.training:
            return 0.0
        if self.config.anneal_end <= 0:
            return 1.0
        return min(1.0, self.step / self.config.anneal_end)

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        """``fields`` (SDF, variance, shader), ``field_background``, and ``field_grid`` for a grid-encoded SDF."""
        grid_parameters: List[Parameter] = []
        if self.field.grid_encoding is not None:
            grid_parameters = list(self.field.grid_encoding.parameters())
        grid_ids = {id(parameter) for parameter in grid_parameters}
        field_parameters = [p for p in self.field.parameters() if id(p) not in grid_ids]
        groups = {
            "fields": field_parameters + list(self.shader.parameters()),
            "field_background": list(self.field_background.parameters()),
        }
        if grid_parameters:
            groups["field_grid"] = grid_parameters
        return groups

    # ------------------------------------------------------------------------------------------------------------
    # Rendering

    def sample_and_forward_field(self, ray_bundle: RayBundle) -> Dict[str, Any]:
        """Samples along a flat bundle of unit-direction rays and what the fields give there.

        Returns:
            ``ray_samples`` and their shading points ``positions`` ``[num_rays, num_samples, 3]``; ``inside``
            ``[num_rays, num_samples]`` (shading point within the unit sphere);
            ``weights`` ``[num_rays, num_samples, 1]`` over all samples; ``colors`` ``[num_rays, num_samples, 3]``;
            and for the inside samples only (packed, ``[num_inside, C]``): ``points``, ``directions``,
            ``ray_indices``, ``sdf``, ``gradient``, ``normals`` and the shader's outputs ``shading``.
        """
        num_rays = ray_bundle.origins.shape[0]
        if self.training:
            self.field.set_step(self.step)
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
        if ray_samples.metadata and ACTIVE_KEY in ray_samples.metadata:  # empty space skipped by the sampler
            active = ray_samples.metadata[ACTIVE_KEY][..., 0]
            inside, outside = inside & active, outside & active

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
        return {
            "ray_samples": ray_samples,
            "positions": positions,
            "inside": inside,
            "weights": ray_samples.get_weights_and_transmittance_from_alphas(alphas, weights_only=True),
            "colors": colors,
            "points": inside_points,
            "directions": inside_directions,
            "ray_indices": inside_ray_indices,
            "sdf": sdf,
            "gradient": gradient,
            "normals": normals,
            "shading": shading,
        }

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Any]:  # type: ignore[override]
        """Renders a flat bundle of unit-direction rays.

        Returns ``rgb`` ``[num_rays, 3]`` (object and background); ``accumulation`` ``[num_rays, 1]``, the summed
        weight of the samples inside the unit sphere (object opacity); ``depth`` ``[num_rays, 1]``, their expected
        distance along the unit ray direction normalised by that weight (0 where it is 0; in evaluation also where the
        opacity is at most :data:`OBJECT_OPACITY`). In training also the per-sample tensors the losses need
        (``surface_samples``, ``init_sdf_samples``); in evaluation ``normal`` (unit, world frame), ``normals``
        (``(normal + 1) / 2`` in ``[0, 1]``, what ``ns-export pointcloud --normal-method model_output`` reads), both
        0 off the object, and, for the split-sum shader, its maps of :data:`SHADER_DISPLAY`, 0 off the object too; all
        per ray with 1 or 3 channels.
        """
        samples = self.sample_and_forward_field(ray_bundle)
        ray_samples, inside, weights = samples["ray_samples"], samples["inside"], samples["weights"]
        num_rays = ray_bundle.origins.shape[0]
        # The object is what lies inside the unit sphere: its samples alone give opacity, depth, normals and maps.
        surface_weights, ray_indices = weights[inside], samples["ray_indices"]
        assert ray_samples.frustums.starts is not None and ray_samples.frustums.ends is not None
        distances = (ray_samples.frustums.starts + ray_samples.frustums.ends) / 2.0
        depth, accumulation = surface_depth(distances[inside], surface_weights, ray_indices, num_rays)
        outputs: Dict[str, Any] = {
            "rgb": self.renderer_rgb(rgb=samples["colors"], weights=weights),
            "accumulation": accumulation,
            "depth": depth,
        }
        shading = samples["shading"]
        if self.training:
            outputs[NeroKey.SURFACE_SAMPLES] = {
                name: samples[name] for name in ("points", "directions", "sdf", "gradient")
            }
            if self.split_sum:
                outputs[NeroKey.SURFACE_SAMPLES]["reflect_dir"] = shading["reflect_dir"]
                outputs[NeroKey.SURFACE_SAMPLES]["occlusion_prob_raw"] = shading["occlusion_prob_raw"]
            if self.step < self.config.init_sdf_reg_end:
                outputs[NeroKey.INIT_SDF_SAMPLES] = self._init_sdf_samples(samples)
            return outputs

        # Per-ray maps for the viewer and evaluation images (training needs none of them).
        def render_surface(values: Tensor) -> Tensor:
            return self.renderer_surface(values, surface_weights, ray_indices=ray_indices, num_rays=num_rays)

        # A ray that crosses the unit sphere but misses the object still carries tiny surface weights, and normalising
        # them would paint the whole sphere: off the object (opacity at most 0.5, nerfstudio's alpha cut) depth,
        # normals and the shader's maps are 0, a flat background in the viewer, ns-render and the exporters.
        on_object = accumulation > OBJECT_OPACITY
        outputs["depth"] = depth * on_object
        normal = F.normalize(render_surface(samples["normals"]), dim=-1) * on_object
        outputs[NeroKey.NORMAL] = normal
        outputs[NeroKey.NORMALS] = ((normal + 1.0) / 2.0).clamp(0.0, 1.0) * on_object
        for name, display in SHADER_DISPLAY.items() if self.split_sum else ():
            if name == "photographer_light" and not self.use_photographer_light:
                continue
            value = render_surface(shading[name])
            outputs[name] = (linear_to_srgb(value).clamp(0.0, 1.0) if display == "srgb" else value) * on_object
        return outputs

    def _init_sdf_samples(self, samples: Dict[str, Any]) -> Tuple[Tensor, Tensor]:
        """All sample points within radius 1.2 and their SDF, from :meth:`sample_and_forward_field`'s samples; only
        the ring outside the unit sphere is new work."""
        positions, inside = samples["positions"], samples["inside"]
        ring = (~inside) & (positions.norm(dim=-1) < INIT_SDF_POINT_RADIUS)
        ring_points = positions[ring]
        ring_sdf = self.field.get_sdf(ring_points)
        return torch.cat([samples["points"], ring_points], dim=0), torch.cat([samples["sdf"], ring_sdf], dim=0)

    def get_rgba_image(self, outputs: Dict[str, Tensor], output_name: str = "rgb") -> Tensor:
        """``rgb`` with the object's opacity as alpha: the background is transparent (``ns-export pointcloud``
        keeps pixels with alpha > 0.5, so only object points)."""
        accumulation_name = output_name.replace("rgb", "accumulation")
        if accumulation_name not in outputs:
            raise NotImplementedError(f"nero-shape has no {accumulation_name!r} output for {output_name!r}")
        return torch.cat([outputs[output_name], outputs[accumulation_name]], dim=-1)

    # ------------------------------------------------------------------------------------------------------------
    # Losses and metrics

    def get_metrics_dict(self, outputs: Dict[str, Any], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        metrics = {"psnr": self.psnr(outputs["rgb"], self.batch_image(batch, self.device))}
        if self.training:
            inv_s = self.field.inv_s().detach()[0]
            metrics["inv_s"] = inv_s
            metrics["std"] = 1.0 / inv_s
        return metrics

    def get_loss_dict(
        self, outputs: Dict[str, Any], batch: Dict[str, Tensor], metrics_dict: Optional[Dict[str, Tensor]] = None
    ) -> Dict[str, Tensor]:
        """``rgb_loss``; in training also ``eikonal_loss``, ``init_sdf_loss`` (early steps) and ``occlusion_loss``
        (from ``occlusion_loss_start``, split-sum shader only) (method.md §3.8)."""
        config = self.config
        image = self.batch_image(batch, self.device)
        losses = {"rgb_loss": charbonnier_rgb_loss(outputs["rgb"], image, config.rgb_loss_eps)}
        if not self.training:
            return losses
        surface = outputs[NeroKey.SURFACE_SAMPLES]
        if surface["gradient"].shape[0] > 0:
            losses["eikonal_loss"] = config.eikonal_loss_mult * eikonal_loss(surface["gradient"])
        if NeroKey.INIT_SDF_SAMPLES in outputs:
            fade = cosine_fade(self.step, config.init_sdf_reg_end)
            losses["init_sdf_loss"] = fade * init_sdf_regularizer(*outputs[NeroKey.INIT_SDF_SAMPLES])
        if self.split_sum and 0 <= config.occlusion_loss_start <= self.step:
            losses["occlusion_loss"] = config.occlusion_loss_mult * occlusion_loss(
                self.field,
                surface,
                max_points=config.occlusion_max_points,
                num_march=config.occlusion_num_march,
                num_resample=config.occlusion_num_resample,
            )
        return losses

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation images

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """PSNR/SSIM (and LPIPS when available) of the whole image; panels ``img`` (gt | pred), ``depth``,
        ``normal`` and, for the split-sum shader, ``materials`` (metallic | roughness | albedo) and ``shading``
        (diffuse | specular colour | occlusion probability | photographer light), all but ``img`` black off the
        object."""
        image = self.batch_image(batch, self.device)
        rgb = outputs["rgb"].clamp(0.0, 1.0)
        images = {
            "img": torch.cat([image, rgb], dim=1),
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
            "normal": outputs[NeroKey.NORMALS],  # black where the ray does not end on the object
        }
        if self.split_sum:
            gray = self.gray_panel
            material_panels = [gray(outputs, "metallic"), gray(outputs, "roughness"), outputs["albedo"].clamp(0.0, 1.0)]
            light_panels = [
                outputs["diffuse_color"],
                outputs["specular_color"],
                gray(outputs, "occlusion_prob").clamp(0.0, 1.0),
            ]
            if "photographer_light" in outputs:
                light_panels.append(outputs["photographer_light"])
            images["materials"] = torch.cat(material_panels, dim=1)
            images["shading"] = torch.cat(light_panels, dim=1)
        return self.image_quality(image, rgb), images
