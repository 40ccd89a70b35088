"""NeRO Stage II (``nero-material``): materials and lights of a fixed mesh, Monte-Carlo shaded (method.md §4).

The Stage I mesh (dataset frame, moved into the normalised frame with the parser's transform) is fixed. Each pixel
whose ray hits it is shaded with NeRO's Monte-Carlo estimator: ``N_d`` diffuse and ``N_s`` specular light
directions per point, each traced against the mesh to pick the outer (environment / photographer) light on a miss
or the inner (object) light on a hit. All networks start fresh; nothing of Stage I but the mesh is used.

Training rays come with their primary hit from :class:`~nero_nerfstudio.data.datamanagers.mesh_ray_datamanager.
MeshRayDataManager`; any other ray (evaluation, viewer) is cast against the mesh here, and misses render black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torch.nn import Parameter

from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.fields.light_fields import LIGHT_EXP_MAX, OuterLightType, StageTwoLights
from nero_nerfstudio.fields.material_field import (
    MaterialFieldConfig,
    albedo_logit,
    perceptual_roughness,
    roughness_logit,
)
from nero_nerfstudio.model_components.brdf_lut import SplitSumLUT
from nero_nerfstudio.model_components.dielectric_layer import diffuse_layer_weight
from nero_nerfstudio.model_components.sample_directions import (
    fibonacci_sample_set,
    interleaved_stratified_u,
    nero_u,
    stratified_sample_set,
)
from nero_nerfstudio.model_components.pixel_footprint import footprint_alpha, pick_footprint_normals
from nero_nerfstudio.model_components.microfacet import Shadowing
from nero_nerfstudio.model_components.losses import (
    charbonnier_rgb_loss,
    decorrelated_rgb_loss,
    material_smoothness_loss,
    neutral_light_loss,
    saturated_as_lower_bound,
    saturation_guard,
    sigmoid_slope_guard,
    tangent_offsets,
    two_valued_metallic_loss,
)
from nero_nerfstudio.model_components.monte_carlo_shading import (
    MonteCarloShading,
    interleaved_halves,
    monte_carlo_shade,
    per_lobe_monte_carlo_shade,
    sample_per_lobe_directions,
    sample_shading_directions,
)
from nero_nerfstudio.models.nero_base import NeroModel, NeroModelConfig
from nero_nerfstudio.raycasting.factory import make_ray_caster
from nero_nerfstudio.utils.color import linear_to_srgb
from nero_nerfstudio.utils.mesh_io import load_mesh_in_normalised_frame


def resolve_outer_light(outer_light: str, dataset_format: Optional[str]) -> OuterLightType:
    """``auto``: ``direction`` for synthetic scenes (and unknown formats), ``sphere_direction`` for real/custom."""
    if outer_light != "auto":
        return outer_light  # type: ignore[return-value]
    return "sphere_direction" if dataset_format in ("real", "custom") else "direction"


@dataclass
class NeroMaterialModelConfig(NeroModelConfig):
    """NeRO Stage II (defaults = the paper's settings, method.md §1.4)."""

    _target: Type = field(default_factory=lambda: NeroMaterialModel)
    eval_num_rays_per_chunk: int = 512
    """Rays per chunk when rendering images (each ray shades ``num_diffuse + num_specular`` light samples)."""
    mesh_path: Optional[Path] = None
    """Stage I mesh in the dataset frame (``nero-export`` output). Required."""
    ray_caster_backend: Literal["auto", "open3d", "cuda"] = "auto"
    """Ray-casting backend (auto: the CUDA BVH when available, else open3d on the CPU)."""
    outer_light: Literal["auto", "direction", "sphere_direction"] = "auto"
    """Environment light: ``direction`` (distant), ``sphere_direction`` (position dependent); auto: by dataset."""
    num_diffuse_samples: int = 512
    """Diffuse light samples per shading point."""
    num_specular_samples: int = 256
    """Specular light samples per shading point."""
    shading_normals: Literal["smooth", "face"] = "smooth"
    """Normals the primary hits are shaded with: ``smooth`` (vertex normals interpolated across the face, as a
    smooth-shaded mesh renders) or ``face`` (NeRO's flat face normals, whose facets blur reflections)."""
    estimator: Literal["per_lobe", "nero"] = "per_lobe"
    """Monte-Carlo shading: ``per_lobe`` (each lobe from its own samples, exact GGX sampling and densities) or
    ``nero`` (NeRO's estimator: specular directions around the mirror direction, weighted by another density, and
    the specular lobe counted again by the diffuse samples)."""
    shadowing: Shadowing = "smith"
    """Shadowing-masking ``G1`` of the specular lobe: ``smith`` (GGX's exact one, as Blender renders) or
    ``schlick`` (NeRO's Schlick-GGX approximation, too dark at grazing angles on rough lobes)."""
    sample_set: Literal["stratified", "nero"] = "stratified"
    """Light-sample ``u`` values: ``stratified`` (uniform, so each lobe follows its density) or ``nero`` (NeRO's
    Fibonacci set, which over-samples grazing diffuse directions and the GGX tail). Training with the decorrelated
    RGB gradient draws randomly shifted strata instead, warped to NeRO's ``u`` density for ``nero``."""
    diffuse_layering: Literal["blender", "nero"] = "blender"
    """How the diffuse lobe meets the dielectric specular one: ``blender`` weights it by ``1 - E_s(n.v)``, what the
    specular layer (F0 0.04) lets through, as Blender's Principled BSDF (where the materials are rendered and relit)
    layers them; ``nero`` adds the two lobes, as NeRO, so a dielectric's diffuse is too bright towards grazing views
    (method.md §4.4)."""
    material_field: MaterialFieldConfig = field(default_factory=MaterialFieldConfig)
    """Material network."""
    light_hidden_dim: int = 256
    """Width of the light MLPs."""
    light_exp_max: float = LIGHT_EXP_MAX
    """Exponent cap of the outer and inner lights."""
    material_smoothness_mult: float = 0.005
    """Weight of the material smoothness regulariser."""
    material_smoothness_std: float = 0.05
    """Standard deviation of the tangent-plane perturbation of the smoothness regulariser."""
    saturation_reg_end: int = 2000
    """The saturation guard on metallic and roughness acts before this step."""
    roughness_guard: Optional[float] = 0.05
    """All through training, ``relu(z_min - z)`` summed over the hits keeps the roughness head's pre-sigmoid value
    ``z`` above ``z_min``, that of this perceptual roughness, where the sigmoid still has a slope. Without it a glossy
    metal's roughness could reach the 0.04 floor in the first 100 steps, while the learned light was still blurry,
    and stay there (the sigmoid's slope below 1e-5; method.md §4.5). None: off, as NeRO."""
    albedo_guard: Optional[float] = 0.999
    """All through training, ``relu(z - z_max)`` summed over the hits and the channels keeps the albedo head's
    pre-sigmoid values ``z`` below ``z_max``, that of this albedo, where the sigmoid still has a slope. Without it a
    glossy metal's albedo could reach 1 (white) in the first 100 steps and stay there (the 0.15 gold bunny on one
    training seed of five, with the roughness guard; method.md §4.5). None: off, as NeRO."""
    neutral_light_mult: float = 0.1
    """Weight of the neutral (grey) diffuse-light regulariser."""
    two_valued_metallic_mult: float = 0.3
    """Weight of the two-valued metallic prior, ``m (1 - m)`` averaged over the hits: a surface is a metal or it is
    not. Without it a rough metal came out partly dielectric, its wide lobe partly explained by a diffuse one (the
    sun-lit 0.5 gold cow, metallic 0.85; method.md §4.5). 0: off, as NeRO."""
    miss_depth: float = 10.0
    """Depth output of rays that miss the mesh (NeRO's tracer reports 10)."""
    background_light_mult: float = 1.0
    """Weight of the background loss: the outer light along a training ray that misses the mesh must match its pixel
    (the environment seen directly; needs the datamanager's background rays). 0: NeRO's hit pixels only."""
    saturated_pixels_as_lower_bound: bool = True
    """Clipped (white) 8-bit pixels only ask for a colour of at least 1 (False: NeRO's loss pulls it to exactly 1)."""
    rgb_loss_gradient: Literal["decorrelated", "single"] = "decorrelated"
    """Training gradient of the RGB loss on hit pixels: ``decorrelated`` shades each hit from two independent halves
    of its light samples (randomly shifted strata, rotated apiece) and pairs each half's residual with the other's
    derivative (:func:`~nero_nerfstudio.model_components.losses.decorrelated_rgb_loss`), so the Monte-Carlo noise of
    a wide lobe is not something training can lower (both sample counts must be even); ``single``: NeRO's Charbonnier
    gradient of the one estimate, which also rewards less noisy estimates (rough metals come out less rough and
    less metallic)."""
    rgb_loss_pairing: Literal["srgb", "linear"] = "srgb"
    """What the decorrelated gradient pairs: the halves' sRGB colours (``srgb``) or their linear values weighted by the
    squared sRGB slope at the pixel, capped at its slope at linear 0.02 (``linear``: no bias from the sRGB curve; with
    the datamanager's ``pixel_footprint supersample`` it gets the 0.15 gold bunny right, but a glossy red 48 px sphere
    comes out rough, 0.58 to 1 for 0.05, and the glossy red cow rougher; method.md §4.5)."""

    def __post_init__(self) -> None:
        # Absolute, so that the saved config.yml still finds the mesh from another working directory.
        if self.mesh_path is not None:
            self.mesh_path = Path(self.mesh_path).expanduser().absolute()


class NeroMaterialModel(NeroModel):
    """NeRO Stage II model.

    Args:
        config: the model configuration.
        scene_box: the dataset's scene box.
        num_train_data: number of training images.
        metadata: the training dataset's metadata (``dataset_format``, ``photographer_w2p``, ``photographer_light``,
            and ``dataparser_transform``/``dataparser_scale`` from the mesh-ray datamanager), via kwargs.
    """

    config: NeroMaterialModelConfig
    method_name = "nero-material"

    def populate_modules(self) -> None:
        super().populate_modules()
        config = self.config
        metadata = self.metadata
        use_photographer = self.use_photographer_light

        # The model owns the Stage II mesh; the mesh-ray datamanager traces its training pixels with this caster.
        self.ray_caster = make_ray_caster(*self._mesh_in_normalised_frame(metadata), backend=config.ray_caster_backend)

        self.outer_light_type = resolve_outer_light(config.outer_light, metadata.get(NeroKey.DATASET_FORMAT))
        self.material_field = config.material_field.setup()
        self.split_sum = SplitSumLUT() if config.diffuse_layering == "blender" else None
        guard = config.roughness_guard
        self.lowest_roughness_logit = (
            None if guard is None else roughness_logit(guard, "--pipeline.model.roughness-guard")
        )
        albedo_guard = config.albedo_guard
        self.highest_albedo_logit = (
            None if albedo_guard is None else albedo_logit(albedo_guard, "--pipeline.model.albedo-guard")
        )
        self.lights = StageTwoLights(
            self.outer_light_type, use_photographer, hidden_dim=config.light_hidden_dim, exp_max=config.light_exp_max
        )
        sample_set = stratified_sample_set if config.sample_set == "stratified" else fibonacci_sample_set
        diffuse_u, diffuse_azimuth = sample_set(config.num_diffuse_samples)
        specular_u, specular_azimuth = sample_set(config.num_specular_samples)
        # Fixed sample sets, rebuilt on construction (not part of checkpoints).
        self.register_buffer("diffuse_u", diffuse_u, persistent=False)
        self.register_buffer("diffuse_azimuth", diffuse_azimuth, persistent=False)
        self.register_buffer("specular_u", specular_u, persistent=False)
        self.register_buffer("specular_azimuth", specular_azimuth, persistent=False)
        halves = None
        if config.rgb_loss_gradient == "decorrelated":
            if config.num_diffuse_samples % 2 or config.num_specular_samples % 2:
                raise NeroSettingsError(
                    "--pipeline.model.num-diffuse-samples, --pipeline.model.num-specular-samples",
                    f"{config.num_diffuse_samples} and {config.num_specular_samples}: the decorrelated RGB loss halves "
                    "each lobe's samples, so both counts must be even (or pass --pipeline.model.rgb-loss-gradient "
                    "single)",
                )
            halves = interleaved_halves(config.num_diffuse_samples, config.num_specular_samples)
        self.register_buffer("half_columns", halves, persistent=False)

    def _mesh_in_normalised_frame(self, metadata: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
        """The configured mesh moved from the dataset frame into the normalised frame."""
        if self.config.mesh_path is None:
            raise NeroSettingsError(
                "--pipeline.model.mesh-path", "nero-material needs the Stage I mesh (.ply, .obj or .glb)"
            )
        transform = metadata.get(NeroKey.DATAPARSER_TRANSFORM)
        scale = metadata.get(NeroKey.DATAPARSER_SCALE, 1.0)
        if transform is None:
            if metadata.get(NeroKey.DATASET_FORMAT, "synthetic") != "synthetic":
                CONSOLE.print(
                    "[yellow]nero-material: the datamanager gave no dataparser transform; the mesh is used as it is "
                    "(use the nero-material datamanager so the mesh is moved into the normalised frame)"
                )
            transform = torch.eye(4)[:3]
        return load_mesh_in_normalised_frame(self.config.mesh_path, transform, scale)

    # ------------------------------------------------------------------------------------------------------------
    # Parameters

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        """One ``fields`` group: materials and lights (NeRO's single Adam group)."""
        return {"fields": list(self.material_field.parameters()) + list(self.lights.parameters())}

    # ------------------------------------------------------------------------------------------------------------
    # Materials

    def material_fn(self, points: Float[Tensor, "num_points 3"]) -> Dict[str, Tensor]:
        """Materials at ``points`` of the normalised frame, for the exports.

        Returns:
            ``metallic`` ``[N, 1]``, ``roughness`` ``[N, 1]`` = ``sqrt(alpha)`` (perceptual), ``albedo`` ``[N, 3]``
            linear RGB; all in [0, 1].
        """
        materials = self.material_field(points)
        return {
            "metallic": materials["metallic"],
            "roughness": perceptual_roughness(materials["alpha"]),
            "albedo": materials["albedo"],
        }

    def environment_fn(self, directions: Float[Tensor, "num_dirs 3"]) -> Float[Tensor, "num_dirs 3"]:
        """The outer light arriving at the centre of the normalised frame from unit ``directions``, linear (for the
        environment export; a ``sphere_direction`` light is the one entering the unit sphere there)."""
        return self.lights.outer_light(torch.zeros_like(directions), directions)

    # ------------------------------------------------------------------------------------------------------------
    # Rendering

    def _primary_hits(self, ray_bundle: RayBundle) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``hit_mask [N]``, ``points [N, 3]``, ``normals [N, 3]``, ``depth [N, 1]`` (miss depth for misses):
        from the ray metadata when the datamanager traced them, else cast here (through the pixel centres)."""
        metadata = ray_bundle.metadata or {}
        if NeroKey.HIT_POINTS in metadata:
            points = metadata[NeroKey.HIT_POINTS]
            all_hit = torch.ones_like(points[:, :1], dtype=torch.bool)
            hit_mask = metadata.get(NeroKey.HIT_MASK, all_hit)[:, 0]
            depth = torch.where(hit_mask[:, None], metadata[NeroKey.HIT_DEPTH], self.config.miss_depth)
            smooth = self.config.shading_normals == "smooth" and NeroKey.HIT_SMOOTH_NORMALS in metadata
            normals = metadata[NeroKey.HIT_SMOOTH_NORMALS if smooth else NeroKey.HIT_NORMALS]
            return hit_mask, points, normals, depth
        with torch.no_grad():
            hits = self.ray_caster.cast(ray_bundle.origins, ray_bundle.directions)
            smooth = self.config.shading_normals == "smooth"
            normals = self.ray_caster.smooth_normals(hits) if smooth else hits.face_normals
        depth = torch.where(hits.hit_mask, hits.depth, torch.full_like(hits.depth, self.config.miss_depth))
        return hits.hit_mask, hits.points, normals, depth[:, None]

    def light_sample_sets(
        self, num_points: int, device: torch.device
    ) -> Tuple[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor], Optional[Tensor]]:
        """The diffuse and specular ``(u, azimuth)`` sets and the azimuth offsets of ``num_points`` shading points.

        Evaluation: the fixed sets, no offsets. Training: each lobe rotated by a random azimuth per point. Training
        with the decorrelated RGB gradient: per point, lobe and interleaved half, its own strata shift and rotation,
        so the two halves (:attr:`half_columns`) are independent estimates with the same mean.

        Returns:
            ``(u, azimuth)`` ``[N_d]`` or ``[num_points, N_d]`` each; the same for ``N_s``; offsets ``[num_points, 2]``,
            ``[num_points, 2, 2]`` or ``None``.
        """
        config = self.config
        diffuse_set = (self.diffuse_u, self.diffuse_azimuth)
        specular_set = (self.specular_u, self.specular_azimuth)
        if not self.training:
            return diffuse_set, specular_set, None
        if config.rgb_loss_gradient == "single":
            return diffuse_set, specular_set, 2.0 * math.pi * torch.rand(num_points, 2, device=device)
        shifts = torch.rand(num_points, 2, 2, device=device)  # [point, lobe, half]
        diffuse_u = interleaved_stratified_u(config.num_diffuse_samples, shifts[:, 0])
        specular_u = interleaved_stratified_u(config.num_specular_samples, shifts[:, 1])
        if config.sample_set == "nero":  # the same law as NeRO's fixed u, so training and evaluation agree
            diffuse_u, specular_u = nero_u(diffuse_u), nero_u(specular_u)
        offsets = 2.0 * math.pi * torch.rand(num_points, 2, 2, device=device)
        return (diffuse_u, self.diffuse_azimuth), (specular_u, self.specular_azimuth), offsets

    def shade(
        self,
        points: Float[Tensor, "num_points 3"],
        normals: Float[Tensor, "num_points 3"],
        view_dirs: Float[Tensor, "num_points 3"],
        poses: Optional[Float[Tensor, "num_points 3 4"]],
        normal_variance: Optional[Float[Tensor, "num_points 1"]] = None,
        footprint_normals: Optional[Float[Tensor, "num_points num_offsets 3"]] = None,
    ) -> Dict[str, Tensor]:
        """Materials and Monte-Carlo shading of surface points (light samples from :meth:`light_sample_sets`).

        The pixel footprint (training only, method.md §4.4): given ``footprint_normals`` (the interpolated normals of a
        few rays through each point's pixel filter, the datamanager's ``pixel_footprint`` ``supersample``), each
        estimate is shaded at one of them, drawn at random
        (:func:`~nero_nerfstudio.model_components.pixel_footprint.pick_footprint_normals`), with the material's
        ``alpha``; otherwise ``normal_variance`` (their spread) widens the GGX lobe shaded at ``normals``
        (:func:`~nero_nerfstudio.model_components.pixel_footprint.footprint_alpha`).
        Training with the decorrelated RGB gradient also returns ``rgb_halves`` ``[num_points, 6]``: the sRGB colours
        of the two half estimates, whose linear mean is ``rgb``.
        """
        config = self.config
        materials = self.material_field(points)
        decorrelated = self.training and config.rgb_loss_gradient == "decorrelated"
        num_estimates = 2 if decorrelated else 1
        supersample = self.training and footprint_normals is not None and footprint_normals.shape[1] > 0
        if supersample:
            estimate_normals = list(pick_footprint_normals(footprint_normals, num_estimates))
            pixel_materials = materials
        else:
            estimate_normals = [normals] * num_estimates
            pixel_materials = {**materials, "alpha": footprint_alpha(materials["alpha"], normal_variance)}
        diffuse_weight = None
        if self.split_sum is not None:
            roughness = perceptual_roughness(pixel_materials["alpha"])
            diffuse_weight = diffuse_layer_weight(normals, view_dirs, roughness, self.split_sum)
        diffuse_set, specular_set, azimuth_offsets = self.light_sample_sets(points.shape[0], points.device)
        per_lobe = config.estimator == "per_lobe"

        def sample_directions(sample_normals: Tensor) -> Tensor:
            return (sample_per_lobe_directions if per_lobe else sample_shading_directions)(
                sample_normals, view_dirs, pixel_materials["alpha"], diffuse_set, specular_set, azimuth_offsets
            )

        directions = sample_directions(estimate_normals[0])
        if supersample and decorrelated:  # the second half's samples around its own footprint normal
            in_second_half = torch.zeros(directions.shape[1], dtype=torch.bool, device=points.device)
            in_second_half[self.half_columns[1]] = True
            directions = torch.where(in_second_half[:, None], sample_directions(estimate_normals[1]), directions)
        radiance = self.lights.incident_radiance(points, directions, self.ray_caster, poses)
        shade_fn = per_lobe_monte_carlo_shade if per_lobe else monte_carlo_shade

        def shade_samples(columns: Tensor | slice, num_diffuse: int, shading_normals: Tensor) -> MonteCarloShading:
            """The estimate from the sample ``columns``, of which the first ``num_diffuse`` are diffuse samples,
            shaded with ``shading_normals``."""
            return shade_fn(
                shading_normals, view_dirs, pixel_materials, directions[:, columns], radiance[:, columns],
                num_diffuse, config.shadowing, diffuse_weight,
            )  # fmt: skip

        extra: Dict[str, Tensor] = {}
        if decorrelated:
            halves = [
                shade_samples(columns, config.num_diffuse_samples // 2, half_normals)
                for columns, half_normals in zip(self.half_columns, estimate_normals)
            ]
            shading = MonteCarloShading.mean_of(*halves)
            extra["rgb_halves"] = linear_to_srgb(torch.cat([half.color for half in halves], dim=-1))
        else:
            shading = shade_samples(slice(None), config.num_diffuse_samples, estimate_normals[0])
        rgb = linear_to_srgb(shading.color)

        def display(linear: Tensor) -> Tensor:
            return linear_to_srgb(linear).clamp(0.0, 1.0)

        return {
            **extra,
            "rgb": rgb if self.training else rgb.clamp(0.0, 1.0),
            "albedo": materials["albedo"],
            "metallic": materials["metallic"],
            "roughness": perceptual_roughness(materials["alpha"]),
            "alpha": materials["alpha"],
            "roughness_logit": materials["roughness_logit"],
            "albedo_logit": materials["albedo_logit"],
            "diffuse_color": display(shading.diffuse_color),
            "specular_color": display(shading.specular_color),
            "diffuse_light": display(shading.diffuse_light),
            "specular_light": display(shading.specular_light),
        }

    def background_rgb(
        self, origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"]
    ) -> Tuple[Float[Tensor, "num_rays 3"], Float[Tensor, "num_rays"]]:
        """The outer light seen straight along camera rays (sRGB, unclamped), and which rays it is defined for.

        A distant (``direction``) light is defined everywhere. A ``sphere_direction`` light is the radiance entering
        the unit sphere, so only rays through the sphere see it; it is read at the chord's middle, whose sphere exit
        point along the ray is where the ray leaves the sphere.
        """
        directions = torch.nn.functional.normalize(directions, dim=-1)
        chord_middle = origins - (origins * directions).sum(-1, keepdim=True) * directions
        valid = torch.ones_like(directions[:, 0], dtype=torch.bool)
        if self.outer_light_type == "sphere_direction":
            valid = chord_middle.norm(dim=-1) < 1.0
        rgb = directions.new_zeros(directions.shape)
        rows = valid.nonzero(as_tuple=True)[0]
        rgb = rgb.index_put((rows,), linear_to_srgb(self.lights.outer_light(chord_middle[rows], directions[rows])))
        return rgb, valid

    def sample_and_forward_field(self, ray_bundle: RayBundle) -> Dict[str, Any]:
        """Each ray's one sample, its primary hit on the mesh, and the materials and shading there.

        Returns:
            ``hit_mask`` ``[num_rays]``, ``normals`` ``[num_rays, 3]`` and ``depth`` ``[num_rays, 1]`` for all rays
            (misses: ``depth`` = ``miss_depth``); ``hit_rows`` ``[num_hits]``, the hits' ``points`` ``[num_hits, 3]``
            and ``shading`` (:meth:`shade`, ``[num_hits, C]`` each).
        """
        hit_mask, points, normals, depth = self._primary_hits(ray_bundle)
        hit_rows = hit_mask.nonzero(as_tuple=True)[0]
        hit_points, hit_normals = points[hit_rows], normals[hit_rows]
        view_dirs = -torch.nn.functional.normalize(ray_bundle.directions[hit_rows], dim=-1)
        poses = self.photographer_poses(ray_bundle)
        metadata = ray_bundle.metadata or {}
        variance = metadata.get(NeroKey.HIT_NORMAL_VARIANCE)
        footprint = metadata.get(NeroKey.HIT_FOOTPRINT_NORMALS)
        if footprint is not None and self.config.shading_normals == "smooth":
            footprint = footprint[hit_rows].reshape(len(hit_rows), -1, 3)
        else:
            footprint = None  # interpolated normals: not those of face-normal shading
        shading = self.shade(
            hit_points,
            hit_normals,
            view_dirs,
            None if poses is None else poses[hit_rows],
            None if variance is None else variance[hit_rows],
            footprint,
        )
        return {
            "hit_mask": hit_mask,
            "normals": normals,
            "depth": depth,
            "hit_rows": hit_rows,
            "points": hit_points,
            "shading": shading,
        }

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Any]:  # type: ignore[override]
        """Per-ray outputs (misses: zeros, ``depth`` = ``miss_depth``): ``rgb`` (sRGB), ``albedo`` (linear),
        ``metallic``, ``roughness`` (``sqrt(alpha)``), ``diffuse_color``, ``specular_color``, ``diffuse_light``,
        ``specular_light`` (clamped sRGB), ``normal`` (outward, ``[-1, 1]``), ``normal_vis``, ``hit_mask``,
        ``accumulation`` (= hit mask), ``depth``. In training also ``material_samples`` (points, normals and
        materials of the hits, for the regularisers) and, with the decorrelated RGB gradient, ``rgb_halves``
        ``[num_rays, 6]`` (:meth:`shade`)."""
        num_rays = ray_bundle.origins.shape[0]
        samples = self.sample_and_forward_field(ray_bundle)
        hit_rows, normals, shading = samples["hit_rows"], samples["normals"], samples["shading"]

        def scatter(values: Tensor) -> Tensor:
            full = values.new_zeros(num_rays, values.shape[-1])
            return full.index_put((hit_rows,), values)

        internal = ("alpha", "roughness_logit", "albedo_logit")  # for the regularisers, not images
        outputs: Dict[str, Any] = {name: scatter(value) for name, value in shading.items() if name not in internal}
        hit_float = samples["hit_mask"][:, None].to(normals.dtype)
        outputs[NeroKey.NORMAL] = normals
        outputs[NeroKey.NORMAL_VIS] = (normals + 1.0) / 2.0 * hit_float
        outputs[NeroKey.HIT_MASK] = hit_float
        outputs["accumulation"] = hit_float
        outputs["depth"] = samples["depth"]
        if self.training and self.config.background_light_mult > 0:
            # Only the datamanager's background rays: eval and viewer rays keep NeRO's black misses.
            miss = ~samples["hit_mask"]
            rgb, valid = self.background_rgb(ray_bundle.origins[miss], ray_bundle.directions[miss])
            outputs["background_rows"] = miss.nonzero(as_tuple=True)[0][valid]
            outputs["background_rgb"] = rgb[valid]
        if self.training:
            outputs[NeroKey.MATERIAL_SAMPLES] = {
                "points": samples["points"],
                "normals": normals[hit_rows],
                **{
                    name: shading[name]
                    for name in ("metallic", "alpha", "albedo", "roughness_logit", "albedo_logit", "diffuse_light")
                },
            }
        return outputs

    # ------------------------------------------------------------------------------------------------------------
    # Losses and metrics

    def get_metrics_dict(self, outputs: Dict[str, Any], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        image = self.batch_image(batch, self.device)
        hit = outputs[NeroKey.HIT_MASK][:, 0] > 0.5
        if not bool(hit.any()):
            return {}
        return {"psnr": self.psnr(outputs["rgb"][hit].clamp(0.0, 1.0), image[hit])}

    def get_loss_dict(
        self, outputs: Dict[str, Any], batch: Dict[str, Tensor], metrics_dict: Optional[Dict[str, Tensor]] = None
    ) -> Dict[str, Tensor]:
        """``rgb_loss`` (Charbonnier on hit pixels; trained on the halves' paired error when the outputs hold
        ``rgb_halves``); in training also ``background_loss``, ``material_smoothness_loss``, ``neutral_light_loss``,
        ``two_valued_metallic_loss`` (unless its weight is 0), ``roughness_guard_loss`` and ``albedo_guard_loss``
        (unless their guard is None) and, before ``saturation_reg_end``, ``saturation_loss`` (method.md §4.5)."""
        config = self.config
        image = self.batch_image(batch, self.device)
        hit = outputs[NeroKey.HIT_MASK][:, 0] > 0.5
        rgb = outputs["rgb"]
        if config.saturated_pixels_as_lower_bound:
            rgb = saturated_as_lower_bound(rgb, image)
        if not bool(hit.any()):
            losses = {"rgb_loss": rgb.sum() * 0.0}
        elif "rgb_halves" in outputs:
            halves = [outputs["rgb_halves"][hit, 3 * h : 3 * h + 3] for h in (0, 1)]
            if config.saturated_pixels_as_lower_bound:
                halves = [saturated_as_lower_bound(half, image[hit]) for half in halves]
            losses = {
                "rgb_loss": decorrelated_rgb_loss(
                    rgb[hit], *halves, image[hit], config.rgb_loss_eps, config.rgb_loss_pairing
                )
            }
        else:
            losses = {"rgb_loss": charbonnier_rgb_loss(rgb[hit], image[hit], config.rgb_loss_eps)}
        if not self.training:
            return losses
        if "background_rows" in outputs and len(outputs["background_rows"]):
            background = image[outputs["background_rows"]]
            background_rgb = outputs["background_rgb"]
            if config.saturated_pixels_as_lower_bound:
                background_rgb = saturated_as_lower_bound(background_rgb, background)
            losses["background_loss"] = config.background_light_mult * charbonnier_rgb_loss(
                background_rgb, background, config.rgb_loss_eps
            )
        samples = outputs[NeroKey.MATERIAL_SAMPLES]
        offsets = tangent_offsets(samples["normals"], config.material_smoothness_std)
        perturbed = self.material_field(samples["points"] + offsets)
        losses["material_smoothness_loss"] = (
            config.material_smoothness_mult * material_smoothness_loss(samples, perturbed).mean()
        )
        losses["neutral_light_loss"] = config.neutral_light_mult * neutral_light_loss(samples["diffuse_light"]).mean()
        if config.two_valued_metallic_mult > 0:
            losses["two_valued_metallic_loss"] = (
                config.two_valued_metallic_mult * two_valued_metallic_loss(samples["metallic"]).mean()
            )
        if self.step < config.saturation_reg_end:
            losses["saturation_loss"] = saturation_guard(samples["metallic"], samples["alpha"])
        if self.lowest_roughness_logit is not None:
            losses["roughness_guard_loss"] = sigmoid_slope_guard(
                samples["roughness_logit"], lowest_logit=self.lowest_roughness_logit
            )
        if self.highest_albedo_logit is not None:
            losses["albedo_guard_loss"] = sigmoid_slope_guard(
                samples["albedo_logit"], highest_logit=self.highest_albedo_logit
            )
        return losses

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation images

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """PSNR/SSIM NeRO-style (pixels that miss the mesh black in both images) and ``psnr_hit`` over hit pixels
        only; panels ``img`` (gt | pred), ``materials`` (albedo | metallic | roughness), ``shading`` (specular light |
        specular colour | diffuse light | diffuse colour), ``normal``, ``depth``. No LPIPS, as NeRO's Stage II
        reports none."""
        hit_mask = outputs[NeroKey.HIT_MASK]
        image = self.batch_image(batch, self.device) * hit_mask
        rgb = outputs["rgb"].clamp(0.0, 1.0)
        gray = self.gray_panel
        images = {
            "img": torch.cat([image, rgb], dim=1),
            "materials": torch.cat([outputs["albedo"], gray(outputs, "metallic"), gray(outputs, "roughness")], dim=1),
            "shading": torch.cat(
                [
                    outputs["specular_light"],
                    outputs["specular_color"],
                    outputs["diffuse_light"],
                    outputs["diffuse_color"],
                ],
                dim=1,
            ),
            "normal": outputs[NeroKey.NORMAL_VIS],
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=hit_mask),
        }
        metrics = self.image_quality(image, rgb)
        hit = hit_mask[..., 0] > 0.5
        if bool(hit.any()):
            metrics["psnr_hit"] = float(self.psnr(rgb[hit], image[hit]).item())
        return metrics, images
