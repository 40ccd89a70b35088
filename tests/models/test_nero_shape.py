"""NeRO Stage I model on CPU: output shapes and conventions, step-dependent losses, gradients, eval images."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox

from nero_nerfstudio.fields.background_field import NerfPlusPlusFieldConfig
from nero_nerfstudio.fields.sdf_field import NeroSDFFieldConfig
from nero_nerfstudio.fields.split_sum_shading import SplitSumShadingConfig
from nerfstudio.model_components.renderers import SemanticRenderer

from nero_nerfstudio.model_components.losses import charbonnier_rgb_loss, init_sdf_regularizer
from nero_nerfstudio.model_components.nero_sampler import NeroSamplerConfig
from nero_nerfstudio.models.nero_shape import SHADER_DISPLAY, NeroShapeModel, NeroShapeModelConfig, surface_depth

NUM_TRAIN_IMAGES = 3


def tiny_config(**overrides) -> NeroShapeModelConfig:
    config = NeroShapeModelConfig(
        sdf_field=NeroSDFFieldConfig(num_layers=2, hidden_dim=48, skip_layers=(1,), feature_dim=16),
        background_field=NerfPlusPlusFieldConfig(num_layers=3, hidden_dim=32, skip_layer=1, color_hidden_dim=16),
        shading=SplitSumShadingConfig(hidden_dim=16, num_layers=2),
        sampler=NeroSamplerConfig(num_coarse=16, num_upsample_rounds=2, num_upsample_per_round=8, num_background=8),
        anneal_end=100,
        freeze_inv_s_step=10,
        init_sdf_reg_end=5,
        occlusion_loss_start=20,
        eval_num_rays_per_chunk=256,
    )
    return replace(config, **overrides)


def photographer_metadata(light: bool) -> dict:
    poses = torch.zeros(NUM_TRAIN_IMAGES, 3, 4)
    poses[:, :3, :3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    poses[:, 2, 3] = 3.0
    return {"photographer_w2p": poses, "photographer_light": light}


def make_model(light: bool = False, **overrides) -> NeroShapeModel:
    torch.manual_seed(0)
    scene_box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    model = tiny_config(**overrides).setup(
        scene_box=scene_box, num_train_data=NUM_TRAIN_IMAGES, metadata=photographer_metadata(light)
    )
    assert isinstance(model, NeroShapeModel)
    return model


def ray_bundle(num_rays: int = 64, camera_index: int = 0) -> RayBundle:
    generator = torch.Generator().manual_seed(1)
    origins = torch.tensor([[0.0, 0.0, 3.0]]).repeat(num_rays, 1)
    directions = torch.nn.functional.normalize(
        torch.randn(num_rays, 3, generator=generator) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1
    )
    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=torch.ones(num_rays, 1),
        camera_indices=torch.full((num_rays, 1), camera_index, dtype=torch.long),
        metadata={"directions_norm": torch.ones(num_rays, 1)},
    )


def camera(width: int = 12, height: int = 10) -> Cameras:
    c2w = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 3.0]]])
    return Cameras(camera_to_worlds=c2w, fx=12.0, fy=12.0, cx=width / 2, cy=height / 2, width=width, height=height)


def test_charbonnier_and_composite_helpers():
    pred = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]])
    assert charbonnier_rgb_loss(pred, pred, 1e-3).item() == pytest.approx(1e-3**0.5)
    target = torch.tensor([[0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    assert charbonnier_rgb_loss(pred, target, 0.0).item() == pytest.approx(0.5)
    values = torch.tensor([[1.0], [2.0], [4.0]])
    weights = torch.tensor([[0.5], [0.25], [1.0]])
    # The object's maps are composited over a packed subset of samples by nerfstudio's renderer.
    composited = SemanticRenderer()(values, weights, ray_indices=torch.tensor([0, 0, 2]), num_rays=3)
    assert composited[:, 0].tolist() == [1.0, 0.0, 4.0]


def test_surface_depth_is_normalised_by_the_surface_weight():
    distances = torch.tensor([[2.0], [4.0], [3.0], [5.0]])
    weights = torch.tensor([[0.2], [0.2], [0.0], [0.0]])
    depth, accumulation = surface_depth(distances, weights, torch.tensor([0, 0, 1, 2]), num_rays=4)
    assert depth[:, 0].tolist() == pytest.approx([3.0, 0.0, 0.0, 0.0])
    assert accumulation[:, 0].tolist() == pytest.approx([0.4, 0.0, 0.0, 0.0])


def test_init_sdf_regularizer_is_zero_for_a_sphere_and_fires_otherwise():
    points = torch.cat([torch.rand(50, 3) * 0.05, torch.nn.functional.normalize(torch.randn(50, 3), dim=-1) * 1.1])
    sphere = points.norm(dim=-1, keepdim=True) - 0.5
    assert init_sdf_regularizer(points, sphere).item() == pytest.approx(0.0, abs=1e-6)
    assert init_sdf_regularizer(points, -sphere).item() > 0.1
    assert init_sdf_regularizer(torch.zeros(0, 3), torch.zeros(0, 1)).item() == 0.0


def test_train_outputs_and_losses_by_step():
    model = make_model()
    model.train()
    bundle = ray_bundle()
    batch = {"image": torch.rand(64, 3)}

    model.step = 0
    outputs = model(bundle)
    assert outputs["rgb"].shape == (64, 3) and outputs["depth"].shape == (64, 1)
    assert outputs["accumulation"].shape == (64, 1)
    losses = model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch))
    assert set(losses) == {"rgb_loss", "eikonal_loss", "init_sdf_loss"}

    model.step = 10
    outputs = model(bundle)
    assert set(model.get_loss_dict(outputs, batch)) == {"rgb_loss", "eikonal_loss"}

    model.step = 20
    outputs = model(bundle)
    losses = model.get_loss_dict(outputs, batch)
    assert set(losses) == {"rgb_loss", "eikonal_loss", "occlusion_loss"}
    assert all(torch.isfinite(value) for value in losses.values())
    metrics = model.get_metrics_dict(outputs, batch)
    assert metrics["inv_s"].item() == pytest.approx(torch.exp(torch.tensor(3.0)).item(), rel=1e-4)


def test_rays_are_composited_in_front_of_the_background():
    model = make_model()
    model.eval()
    with torch.no_grad():
        outputs = model(ray_bundle())
    # The initial SDF is roughly a sphere of radius 0.5 seen from distance 3: rays through its middle stop at the
    # SDF's first zero crossing (the initial inv_s of 20 blurs the surface by a few hundredths).
    bundle = ray_bundle()
    miss_distance = torch.linalg.cross(bundle.origins, bundle.directions, dim=-1).norm(dim=-1)
    central = miss_distance < 0.3
    assert central.sum() > 5
    depths = torch.linspace(2.0, 3.0, 1001)
    points = bundle.origins[central, None, :] + bundle.directions[central, None, :] * depths[:, None]
    with torch.no_grad():
        sdf = model.field.get_sdf(points.reshape(-1, 3)).reshape(points.shape[:2])
    hit_depth = depths[(sdf < 0).float().argmax(dim=-1)]
    assert torch.allclose(outputs["depth"][central, 0], hit_depth, atol=0.05)
    assert torch.allclose(outputs["normal"][central].norm(dim=-1), torch.tensor(1.0))
    assert torch.all(outputs["rgb"] >= 0) and torch.all(outputs["rgb"] <= 1)
    # Accumulation is the object's opacity: ~1 through the middle of the initial sphere.
    assert torch.all(outputs["accumulation"][central] > 0.9)


def test_depth_is_ray_distance_and_background_is_transparent():
    """nerfstudio's exporters read ``origin + direction * depth`` and keep pixels whose alpha exceeds 0.5."""
    model = make_model()
    model.eval()
    bundle = ray_bundle()
    bundle.metadata["directions_norm"] = torch.full((64, 1), 1.25)  # must not turn the depth into z-depth
    away = RayBundle(  # rays that leave the unit sphere behind them see only background
        origins=torch.tensor([[0.0, 0.0, 3.0]]).repeat(4, 1),
        directions=torch.tensor([[0.0, 0.0, 1.0]]).repeat(4, 1),
        pixel_area=torch.ones(4, 1),
        camera_indices=torch.zeros(4, 1, dtype=torch.long),
        metadata={"directions_norm": torch.ones(4, 1)},
    )
    with torch.no_grad():
        outputs = model(bundle)
        outputs_away = model(away)
    points = bundle.origins + bundle.directions * outputs["depth"]
    hit = outputs["accumulation"][:, 0] > 0.5
    assert hit.sum() > 5
    with torch.no_grad():
        sdf_at_points = model.field.get_sdf(points[hit])
    # Within the blur of the initial inv_s (a z-depth, 1.25 times shorter, would land ~0.5 inside the sphere).
    assert sdf_at_points.abs().max().item() < 0.1
    assert torch.all(outputs_away["accumulation"] == 0) and torch.all(outputs_away["depth"] == 0)
    assert outputs_away["rgb"].abs().sum() > 0  # the background still has colour
    rgba = model.get_rgba_image(outputs)
    assert rgba.shape == (64, 4)
    assert torch.equal(rgba[:, :3], outputs["rgb"]) and torch.equal(rgba[:, 3:], outputs["accumulation"])
    assert torch.all(model.get_rgba_image(outputs_away)[:, 3] == 0)


def test_normals_output_is_the_normal_mapped_to_unit_range():
    model = make_model()
    model.eval()
    with torch.no_grad():
        outputs = model(ray_bundle())
    normals = outputs["normals"]
    assert normals.shape == (64, 3) and normals.min() >= 0.0 and normals.max() <= 1.0
    hit = outputs["accumulation"][:, 0] > 0.5
    assert torch.allclose(normals[hit] * 2.0 - 1.0, outputs["normal"][hit], atol=1e-6)
    # Seen from +z, the front of the initial sphere faces the camera.
    assert torch.all(outputs["normal"][hit, 2] > 0.2)


def test_rays_that_cross_the_unit_sphere_but_miss_the_object_show_a_flat_background():
    """Their few surface weights, normalised, would give a depth and a normal anywhere in the unit sphere."""
    model = make_model()
    model.eval()
    offsets = torch.linspace(0.0, 0.95, 20)
    grazing = RayBundle(  # parallel rays from the centre of the initial sphere out to the unit sphere's rim
        origins=torch.stack([offsets, torch.zeros(20), torch.full((20,), 3.0)], dim=-1),
        directions=torch.tensor([[0.0, 0.0, -1.0]]).repeat(20, 1),
        pixel_area=torch.ones(20, 1),
        camera_indices=torch.zeros(20, 1, dtype=torch.long),
        metadata={"directions_norm": torch.ones(20, 1)},
    )
    with torch.no_grad():
        outputs = model(grazing)
    opacity = outputs["accumulation"][:, 0]
    on_object, off_object = opacity > 0.5, (opacity > 0.0) & (opacity <= 0.5)
    assert on_object.sum() >= 3 and off_object.sum() >= 3  # both kinds of ray, and some of weight but no object
    assert torch.all(outputs["depth"][on_object] > 2.0) and torch.all(outputs["normals"][on_object].sum(-1) > 0)
    shader_maps = [name for name in SHADER_DISPLAY if name in outputs]
    assert {"metallic", "roughness", "albedo", "specular_light"} <= set(shader_maps)
    for name in ("depth", "normal", "normals", *shader_maps):
        assert torch.all(outputs[name][off_object] == 0), name
    assert torch.all(outputs["albedo"][on_object].sum(-1) > 0)


def test_variance_is_frozen_before_the_freeze_step():
    model = make_model()
    model.train()
    batch = {"image": torch.rand(64, 3)}
    for step, expect_gradient in ((5, False), (15, True)):
        model.zero_grad()
        model.step = step
        outputs = model(ray_bundle())
        sum(model.get_loss_dict(outputs, batch).values()).backward()
        gradient = model.field.variance.grad
        has_gradient = gradient is not None and gradient.abs().sum().item() > 0
        assert has_gradient == expect_gradient


def test_occlusion_loss_trains_only_the_occlusion_mlp():
    model = make_model(occlusion_loss_start=0)
    model.train()
    model.step = 30
    outputs = model(ray_bundle())
    occlusion_loss = model.get_loss_dict(outputs, {"image": torch.rand(64, 3)})["occlusion_loss"]
    assert occlusion_loss.requires_grad
    occlusion_loss.backward()
    touched = {name for name, parameter in model.named_parameters() if parameter.grad is not None}
    assert touched and all(name.startswith("shader.occlusion.") for name in touched), touched


def test_eval_outputs_are_per_ray_with_one_or_three_channels():
    model = make_model(light=True)
    model.eval()
    with torch.no_grad():
        outputs = model(ray_bundle(camera_index=NUM_TRAIN_IMAGES + 5))  # a viewer camera: index out of range
    for name in ("rgb", "depth", "normal", "normals", "metallic", "roughness", "albedo", "diffuse_color",
                 "specular_color", "specular_light", "occlusion_prob", "photographer_light"):
        assert name in outputs, name
    for name, value in outputs.items():
        assert isinstance(value, torch.Tensor) and value.shape[0] == 64, name
        assert value.shape[1] in (1, 3), name


def test_get_outputs_for_camera_gives_images_with_and_without_photographer_light():
    for light in (False, True):
        model = make_model(light=light)
        model.eval()
        outputs = model.get_outputs_for_camera(camera())
        for name in ("rgb", "depth", "normal", "metallic", "roughness"):
            assert outputs[name].shape[:2] == (10, 12), name
        assert ("photographer_light" in outputs) == light


def test_photographer_pose_of_a_camera_outside_the_training_set_falls_back_to_camera_zero():
    model = make_model(light=True)
    model.photographer_w2p[1, 2, 3] = 7.0
    bundle = ray_bundle(num_rays=4)
    bundle.camera_indices = torch.tensor([[1], [0], [NUM_TRAIN_IMAGES], [-1]])
    poses = model.photographer_poses(bundle)
    assert poses is not None and poses.shape == (4, 3, 4)
    assert poses[:, 2, 3].tolist() == [7.0, 3.0, 3.0, 3.0]


def test_photographer_light_default_comes_from_metadata():
    assert make_model(light=True).use_photographer_light
    assert not make_model(light=False).use_photographer_light
    assert not make_model(light=True, photographer_light=False).use_photographer_light
    with pytest.raises(ValueError, match="photographer_w2p"):
        tiny_config(photographer_light=True).setup(
            scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1, metadata={}
        )


def test_param_groups_cover_every_parameter_once():
    for encoding in ("frequency", "grid"):
        sdf_field = NeroSDFFieldConfig(
            num_layers=2, hidden_dim=48, skip_layers=(), feature_dim=16, encoding=encoding,  # type: ignore[arg-type]
            grid_num_levels=4, grid_min_resolution=8, grid_max_resolution=32, grid_implementation="dense",
        )
        model = make_model(sdf_field=sdf_field)
        groups = model.get_param_groups()
        expected = {"fields", "field_background"} | ({"field_grid"} if encoding == "grid" else set())
        assert set(groups) == expected and all(groups.values())
        ids = [id(parameter) for group in groups.values() for parameter in group]
        assert len(ids) == len(set(ids))
        assert set(ids) == {id(parameter) for parameter in model.parameters() if parameter.numel() > 0}
        assert any(parameter is model.field.variance for parameter in groups["fields"])
        if encoding == "grid":
            # The grid group holds the grid's features and nothing else.
            grid_ids = {id(parameter) for parameter in model.field.grid_encoding.parameters()}
            assert {id(parameter) for parameter in groups["field_grid"]} == grid_ids and len(grid_ids) == 4


def test_eval_images_and_metrics_without_lpips(monkeypatch):
    import torchmetrics.image.lpip as lpip_module

    class Unavailable:
        def __init__(self, *args, **kwargs):
            raise OSError("no network")

    monkeypatch.setattr(lpip_module, "LearnedPerceptualImagePatchSimilarity", Unavailable)
    model = make_model()
    model.eval()
    outputs = model.get_outputs_for_camera(camera())
    batch = {"image": torch.rand(10, 12, 3)}
    for _ in range(2):  # the failure is remembered, never raised
        metrics, images = model.get_image_metrics_and_images(outputs, batch)
    assert set(metrics) == {"psnr", "ssim"}
    assert images["img"].shape == (10, 24, 3)
    assert images["materials"].shape == (10, 36, 3) and images["shading"].shape == (10, 36, 3)
    assert images["depth"].shape == (10, 12, 3) and images["normal"].shape == (10, 12, 3)


def test_rays_that_miss_the_sphere_render_and_train():
    model = make_model(light=True, occlusion_loss_start=0)
    away = RayBundle(
        origins=torch.tensor([[0.0, 0.0, 3.0]]).repeat(8, 1),
        directions=torch.tensor([[0.0, 0.0, 1.0]]).repeat(8, 1),
        pixel_area=torch.ones(8, 1),
        camera_indices=torch.zeros(8, 1, dtype=torch.long),
        metadata={"directions_norm": torch.ones(8, 1)},
    )
    model.eval()
    with torch.no_grad():
        outputs = model(away)
    assert outputs["rgb"].shape == (8, 3) and torch.all(outputs["metallic"] == 0)
    model.train()
    model.step = 50
    losses = model.get_loss_dict(model(away), {"image": torch.rand(8, 3)})
    assert set(losses) == {"rgb_loss", "occlusion_loss"} and losses["occlusion_loss"].item() == 0.0
    sum(losses.values()).backward()


def test_training_callback_tracks_the_step_and_sets_the_anneal_ratio():
    model = make_model()
    (callback,) = model.get_training_callbacks(None)  # type: ignore[arg-type]
    callback.run_callback(step=50)
    assert model.step == 50
    model.train()
    assert model.cos_anneal_ratio() == pytest.approx(0.5)
    model.eval()
    assert model.cos_anneal_ratio() == 0.0
    model.update_to_step(400)
    model.train()
    assert model.step == 400 and model.cos_anneal_ratio() == 1.0


def test_neus_color_baseline_renders_trains_and_has_no_materials():
    model = make_model(light=True, shading_model="neus-color", occlusion_loss_start=0)
    assert not model.use_photographer_light  # the baseline has no photographer light
    assert not any(name.startswith("shader.occlusion") for name, _ in model.named_parameters())
    model.eval()
    with torch.no_grad():
        outputs = model(ray_bundle())
    assert {"rgb", "accumulation", "depth", "normal", "normals"} <= set(outputs)
    assert not set(outputs) & {"metallic", "roughness", "albedo", "occlusion_prob", "specular_color"}
    for name, value in outputs.items():
        assert value.shape[0] == 64 and value.shape[1] in (1, 3), name
    metrics, images = model.get_image_metrics_and_images(
        model.get_outputs_for_camera(camera()), {"image": torch.rand(10, 12, 3)}
    )
    assert set(images) == {"img", "depth", "normal"} and "psnr" in metrics

    model.train()
    model.step = 30  # past occlusion_loss_start and init_sdf_reg_end: eikonal and colour only
    batch = {"image": torch.full((64, 3), 0.3)}
    groups = model.get_param_groups()
    optimizer = torch.optim.Adam([p for group in groups.values() for p in group], lr=1e-2)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss_dict = model.get_loss_dict(model(ray_bundle()), batch)
        assert set(loss_dict) == {"rgb_loss", "eikonal_loss"}
        total = sum(loss_dict.values())
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < losses[0]
    assert any(parameter.grad is not None for parameter in model.shader.parameters())


def test_unknown_shading_model_is_refused():
    with pytest.raises(ValueError, match="shading_model"):
        make_model(shading_model="phong")


def test_a_config_saved_before_the_sampler_config_still_loads():
    """Runs whose config.yml has the sampler settings as model fields (before ``sampler``) keep loading."""
    import re

    import yaml

    text = yaml.dump(tiny_config())
    old_text = re.sub(
        r"^sampler: .*\n(?:  .*\n)+",
        "num_coarse_samples: 24\nnum_upsample_rounds: 3\nnum_background_samples: 12\nclip_sample_variance: false\n",
        text,
        flags=re.MULTILINE,
    )
    assert "num_coarse_samples" in old_text and "NeroSamplerConfig" not in old_text
    loaded = yaml.load(old_text, Loader=yaml.Loader)
    sampler = loaded.sampler
    assert (sampler.num_coarse, sampler.num_upsample_rounds, sampler.num_background) == (24, 3, 12)
    assert sampler.num_upsample_per_round == 16 and not sampler.clip_sample_variance  # unset: the default
    assert not hasattr(loaded, "num_coarse_samples")
    assert yaml.load(text, Loader=yaml.Loader).sampler == tiny_config().sampler
