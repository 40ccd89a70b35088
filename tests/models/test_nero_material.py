"""nero-material model on a sphere mesh: outputs, shading paths, losses, materials, configuration."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch
import trimesh
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox

from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.core.errors import NeroDataError, NeroSettingsError
from nero_nerfstudio.fields.material_field import MaterialFieldConfig, albedo_logit, roughness_logit
from nero_nerfstudio.model_components.losses import (
    charbonnier_rgb_loss,
    neutral_light_loss,
    saturated_as_lower_bound,
    saturation_guard,
    sigmoid_slope_guard,
    tangent_offsets,
    two_valued_metallic_loss,
)
from nero_nerfstudio.utils.color import linear_to_srgb, srgb_slope, srgb_to_linear
from nero_nerfstudio.model_components.sample_directions import fibonacci_sample_set
from nero_nerfstudio.models.nero_material import NeroMaterialModel, NeroMaterialModelConfig, resolve_outer_light

SPHERE_RADIUS = 0.5
PER_RAY_CHANNELS = {
    "rgb": 3,
    "albedo": 3,
    "metallic": 1,
    "roughness": 1,
    "diffuse_color": 3,
    "specular_color": 3,
    "diffuse_light": 3,
    "specular_light": 3,
    "normal": 3,
    "hit_mask": 1,
    "depth": 1,
    "accumulation": 1,
}


@pytest.fixture(scope="module")
def sphere_mesh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sphere") / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=3, radius=SPHERE_RADIUS).export(path)
    return path


def make_model(mesh_path, metadata=None, **overrides) -> NeroMaterialModel:
    settings = dict(
        material_field=MaterialFieldConfig(hidden_dim=16),
        light_hidden_dim=16,
        num_diffuse_samples=8,
        num_specular_samples=4,
    )
    config = NeroMaterialModelConfig(mesh_path=mesh_path, **{**settings, **overrides})
    return config.setup(
        scene_box=SceneBox(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
        num_train_data=2,
        metadata={"dataset_format": "synthetic"} if metadata is None else metadata,
    )


def rays_towards_the_sphere() -> RayBundle:
    """Three rays from z = 3: two hit the sphere, the last misses it."""
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.1, 0.05, 3.0], [2.0, 0.0, 3.0]])
    directions = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]))
    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=torch.ones(3, 1),
        camera_indices=torch.zeros(3, 1, dtype=torch.long),
    )


@pytest.fixture()
def model(sphere_mesh: Path) -> NeroMaterialModel:
    torch.manual_seed(0)
    return make_model(sphere_mesh)


def test_rays_are_cast_and_misses_render_black(model: NeroMaterialModel):
    model.eval()
    with torch.no_grad():
        outputs = model(rays_towards_the_sphere())
    for name, channels in PER_RAY_CHANNELS.items():
        assert outputs[name].shape == (3, channels), name
    assert outputs["hit_mask"][:, 0].tolist() == [1.0, 1.0, 0.0]
    assert torch.equal(outputs["accumulation"], outputs["hit_mask"])
    # The icosphere's faces lie slightly inside the sphere.
    assert 3.0 - SPHERE_RADIUS <= outputs["depth"][0, 0] < 3.0 - 0.97 * SPHERE_RADIUS
    assert outputs["depth"][2, 0] == model.config.miss_depth
    assert torch.all(outputs["rgb"][2] == 0) and torch.all(outputs["albedo"][2] == 0)
    assert (outputs["rgb"][:2] > 0).all() and (outputs["rgb"] <= 1).all()
    assert outputs["normal"][0, 2] > 0.95  # outward, towards the camera
    assert "material_samples" not in outputs


def test_evaluation_is_deterministic_and_training_jitters_the_samples(model: NeroMaterialModel):
    bundle = rays_towards_the_sphere()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(bundle)["rgb"], model(bundle)["rgb"])
    model.train()
    torch.manual_seed(1)
    first = model(bundle)["rgb"]
    second = model(bundle)["rgb"]
    assert not torch.allclose(first[:2], second[:2])


def test_training_rays_use_the_hits_from_the_metadata(model: NeroMaterialModel):
    bundle = rays_towards_the_sphere()[:2]
    # A hit the mesh would not give: the model must shade it, not re-cast.
    bundle.metadata = {
        NeroKey.HIT_POINTS: torch.tensor([[0.0, 0.0, 0.45], [0.0, 0.45, 0.0]]),
        NeroKey.HIT_NORMALS: torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
        NeroKey.HIT_DEPTH: torch.tensor([[2.55], [7.0]]),
    }
    model.train()
    outputs = model(bundle)
    assert torch.equal(outputs["depth"], bundle.metadata[NeroKey.HIT_DEPTH])
    assert torch.equal(outputs["normal"], bundle.metadata[NeroKey.HIT_NORMALS])
    assert torch.equal(outputs["material_samples"]["points"], bundle.metadata[NeroKey.HIT_POINTS])


def test_losses_backpropagate_into_materials_and_lights(model: NeroMaterialModel):
    model.train()
    model.update_to_step(0)
    bundle = rays_towards_the_sphere()
    outputs = model(bundle)
    losses = model.get_loss_dict(outputs, {"image": torch.rand(3, 3)})
    assert set(losses) == {
        "rgb_loss",
        "background_loss",
        "material_smoothness_loss",
        "neutral_light_loss",
        "two_valued_metallic_loss",
        "saturation_loss",
        "roughness_guard_loss",
        "albedo_guard_loss",
    }
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    groups = model.get_param_groups()
    assert list(groups) == ["fields"]
    trainable = {id(p) for name, p in model.named_parameters() if name != "device_indicator_param"}
    assert {id(p) for p in groups["fields"]} == trainable
    assert model.material_field.albedo_head.layers[0].parametrizations.weight.original1.grad is not None
    assert model.lights.outer_light.mlp.layers[-1].bias.grad.abs().sum() > 0

    model.update_to_step(model.config.saturation_reg_end)
    assert "saturation_loss" not in model.get_loss_dict(model(bundle), {"image": torch.rand(3, 3)})
    model.eval()
    with torch.no_grad():
        assert set(model.get_loss_dict(model(bundle), {"image": torch.rand(3, 3)})) == {"rgb_loss"}


def test_training_pairs_two_half_estimates_whose_mean_is_the_rendered_colour(sphere_mesh: Path):
    torch.manual_seed(0)
    model = make_model(sphere_mesh)
    model.train()
    outputs = model(rays_towards_the_sphere())
    halves = srgb_to_linear(outputs["rgb_halves"][:2].view(2, 2, 3))  # the two hits; [ray, half, rgb] linear
    assert not torch.allclose(halves[:, 0], halves[:, 1])
    torch.testing.assert_close(halves.mean(dim=1), srgb_to_linear(outputs["rgb"][:2]), rtol=1e-4, atol=1e-6)
    image = torch.full((3, 3), 0.5)
    loss = model.get_loss_dict(outputs, {"image": image})["rgb_loss"]
    # Logged: NeRO's Charbonnier of the rendered colour. Trained: the halves' paired squared error.
    a, b = outputs["rgb_halves"][:2, :3], outputs["rgb_halves"][:2, 3:]
    torch.testing.assert_close(loss, charbonnier_rgb_loss(outputs["rgb"][:2], image[:2], model.config.rgb_loss_eps))
    (grad,) = torch.autograd.grad(loss, outputs["rgb_halves"])
    scale = 0.5 / model.config.rgb_loss_eps**0.5 / 2  # mean over the two hit rays
    torch.testing.assert_close(grad[:2], torch.cat([b - 0.5, a - 0.5], dim=-1).detach() * scale)


def test_linear_pairing_pairs_the_halves_linear_values(sphere_mesh: Path):
    torch.manual_seed(0)
    model = make_model(sphere_mesh, rgb_loss_pairing="linear")
    model.train()
    outputs = model(rays_towards_the_sphere())
    image = torch.full((3, 3), 0.5)
    loss = model.get_loss_dict(outputs, {"image": image})["rgb_loss"]
    (grad,) = torch.autograd.grad(loss, outputs["rgb_halves"])
    a, b = (srgb_to_linear(outputs["rgb_halves"][:2, 3 * h : 3 * h + 3]).detach() for h in (0, 1))
    target = srgb_to_linear(torch.tensor(0.5))
    scale = 0.5 / model.config.rgb_loss_eps**0.5 / 2 * srgb_slope(target) ** 2  # mean over the two hit rays
    # d/d sRGB(a) of s'(T)^2 (a - T)(b - T): (b - T) s'(T)^2 / s'(a), a's linear value per unit of its sRGB value.
    expected = torch.cat([(b - target) / srgb_slope(a), (a - target) / srgb_slope(b)], dim=-1) * scale
    torch.testing.assert_close(grad[:2], expected, rtol=1e-4, atol=1e-7)


def test_each_half_draws_its_own_strata_and_rotation_in_training_only(sphere_mesh: Path):
    torch.manual_seed(0)
    model = make_model(sphere_mesh)
    model.train()
    (diffuse_u, _), (specular_u, _), offsets = model.light_sample_sets(5, torch.device("cpu"))
    assert diffuse_u.shape == (5, 8) and specular_u.shape == (5, 4) and offsets.shape == (5, 2, 2)
    # Strata j = 0..M-1 of each half, each shifted by its own fraction: u * M - j is one value per half and lobe.
    for u, size in ((diffuse_u, 8), (specular_u, 4)):
        shift = u * (size // 2) - torch.arange(size).div(2, rounding_mode="floor")
        torch.testing.assert_close(shift[:, 0::2], shift[:, :1].expand(5, size // 2))
        torch.testing.assert_close(shift[:, 1::2], shift[:, 1:2].expand(5, size // 2))
        assert not torch.allclose(shift[:, 0], shift[:, 1])
    assert not torch.allclose(diffuse_u[:, 0], specular_u[:, 0])
    assert not torch.allclose(offsets[:, :, 0], offsets[:, :, 1])
    model.eval()
    with torch.no_grad():
        assert "rgb_halves" not in model(rays_towards_the_sphere())
    assert model.light_sample_sets(5, torch.device("cpu"))[2] is None


def test_nero_sample_set_keeps_its_u_density_in_training(sphere_mesh: Path):
    torch.manual_seed(0)
    model = make_model(sphere_mesh, sample_set="nero", num_diffuse_samples=64)
    model.train()
    (diffuse_u, _), _, _ = model.light_sample_sets(4000, torch.device("cpu"))
    fixed_u = fibonacci_sample_set(64)[0]
    assert abs(float(diffuse_u.mean()) - float(fixed_u.mean())) < 0.01
    assert abs(float(diffuse_u.median()) - float(fixed_u.median())) < 0.03


def test_single_gradient_and_odd_sample_counts(sphere_mesh: Path):
    single = make_model(sphere_mesh, rgb_loss_gradient="single")
    single.train()
    assert "rgb_halves" not in single(rays_towards_the_sphere())
    # An odd count cannot be halved: refused when the model is built, before the datamanager traces the pixels.
    with pytest.raises(NeroSettingsError, match="num-specular-samples: 8 and 5: .* both counts must be even"):
        make_model(sphere_mesh, num_specular_samples=5)
    odd = make_model(sphere_mesh, num_specular_samples=5, rgb_loss_gradient="single")
    odd.train()
    assert torch.isfinite(odd(rays_towards_the_sphere())["rgb"]).all()  # NeRO's gradient takes any count


def test_training_rays_that_miss_teach_the_outer_light_their_pixel(model: NeroMaterialModel):
    model.train()
    bundle = rays_towards_the_sphere()
    outputs = model(bundle)
    # The third ray misses: its pixel is the environment straight along it (sRGB of the outer light).
    assert outputs["background_rows"].tolist() == [2]
    with torch.no_grad():
        expected = linear_to_srgb(model.lights.outer_light(bundle.origins[2:], bundle.directions[2:]))
    torch.testing.assert_close(outputs["background_rgb"].detach(), expected)
    image = torch.rand(3, 3)
    loss = model.get_loss_dict(outputs, {"image": image})["background_loss"]
    assert loss > 0
    model.zero_grad()
    loss.backward()
    assert model.lights.outer_light.mlp.layers[-1].bias.grad.abs().sum() > 0
    assert model.material_field.albedo_head.layers[0].parametrizations.weight.original1.grad is None
    # Switched off: NeRO's hit pixels only.
    off = make_model(model.config.mesh_path, background_light_mult=0.0).train()
    assert "background_loss" not in off.get_loss_dict(off(bundle), {"image": image})


def test_a_position_dependent_light_sees_only_rays_through_the_unit_sphere(sphere_mesh: Path):
    model = make_model(sphere_mesh, {"dataset_format": "custom"}).train()
    assert model.outer_light_type == "sphere_direction"
    origins = torch.tensor([[0.9, 0.0, 3.0], [1.5, 0.0, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    rgb, valid = model.background_rgb(origins, directions)
    assert valid.tolist() == [True, False] and torch.all(rgb[1] == 0) and torch.all(rgb[0] > 0)


def test_clipped_pixels_are_lower_bounds():
    prediction = torch.tensor([[1.4, 0.5, 0.9], [1.4, 1.4, 0.2]])
    target = torch.tensor([[1.0, 1.0, 0.5], [0.9, 254.9 / 255.0, 0.2]])
    capped = saturated_as_lower_bound(prediction, target)
    # Clipped channels: above 1 is as good as 1; below it still pulls up. Other channels unchanged.
    torch.testing.assert_close(capped, torch.tensor([[1.0, 0.5, 0.9], [1.4, 1.0, 0.2]]))


def test_hits_are_shaded_with_smooth_normals_unless_asked_for_face_normals(sphere_mesh: Path):
    bundle = rays_towards_the_sphere()[1:2]
    hit_point = None
    errors = {}
    for kind in ("smooth", "face"):
        model = make_model(sphere_mesh, shading_normals=kind).eval()
        with torch.no_grad():
            outputs = model(bundle)
        depth = outputs["depth"][0, 0]
        hit_point = bundle.origins[0] + depth * bundle.directions[0]
        radial = hit_point / hit_point.norm()
        errors[kind] = float(torch.acos((outputs["normal"][0] * radial).sum().clamp(-1, 1)))
    # The icosphere's facets tilt face normals by degrees; interpolated vertex normals follow the sphere.
    assert errors["smooth"] < 0.5 * errors["face"]


def test_training_shades_each_half_at_its_own_footprint_normal(sphere_mesh: Path):
    """Supersampling the pixel footprint: given footprint normals, each half estimate takes one of them at random
    (with replacement, so the halves stay independent) and samples its light around it; without them the centre
    normal is shaded (with the lobe widened by the spread instead)."""
    num_pixels, side = 64, torch.tensor([1.0, 0.0, 0.0])
    centre = torch.tensor([0.0, 0.0, 1.0])
    # Half of each pixel's footprint normals face +x, half -x; its centre normal faces +z.
    footprint = torch.cat([side.expand(num_pixels, 4, 3), (-side).expand(num_pixels, 4, 3)], dim=1)
    metadata = {
        NeroKey.HIT_POINTS: torch.tensor([0.0, 0.0, 0.5]).expand(num_pixels, 3),
        NeroKey.HIT_NORMALS: centre.expand(num_pixels, 3),
        NeroKey.HIT_DEPTH: torch.full((num_pixels, 1), 2.5),
        NeroKey.HIT_NORMAL_VARIANCE: torch.ones(num_pixels, 1),
    }
    seen = {}
    for mode, extra in (("supersample", {NeroKey.HIT_FOOTPRINT_NORMALS: footprint.flatten(1)}), ("widen", {})):
        bundle = RayBundle(
            origins=torch.tensor([0.0, 0.0, 3.0]).expand(num_pixels, 3),
            directions=(-centre).expand(num_pixels, 3),
            pixel_area=torch.ones(num_pixels, 1),
            camera_indices=torch.zeros(num_pixels, 1, dtype=torch.long),
            metadata={**metadata, **extra},
        )
        torch.manual_seed(0)
        model = make_model(sphere_mesh).train()
        incident_radiance = model.lights.incident_radiance

        def spy(points, directions, *args, **kwargs):
            seen[mode] = directions.detach()
            return incident_radiance(points, directions, *args, **kwargs)

        model.lights.incident_radiance = spy
        model(bundle)
    # Diffuse samples (the first 8 columns) lie in the hemisphere of the normal they were drawn around.
    diffuse_x = seen["supersample"][:, :8, 0]
    side_of_half = [torch.sign(diffuse_x[:, columns[columns < 8]]) for columns in make_model(sphere_mesh).half_columns]
    for signs in side_of_half:  # one footprint normal per half and pixel
        assert bool((signs == signs[:, :1]).all())
    first, second = side_of_half[0][:, 0], side_of_half[1][:, 0]
    assert 0.25 < float((first > 0).float().mean()) < 0.75  # both footprint normals are drawn
    assert 0.25 < float((first == second).float().mean()) < 0.75  # independently for the two halves
    assert bool((seen["widen"][:, :8, 2] > 0).all())  # around the centre normal


def test_material_fn_ranges_and_roughness_is_sqrt_alpha(model: NeroMaterialModel):
    points = torch.rand(50, 3) - 0.5
    materials = model.material_fn(points)
    assert materials["metallic"].shape == (50, 1) and materials["albedo"].shape == (50, 3)
    alpha = model.material_field(points)["alpha"]
    assert torch.allclose(materials["roughness"], alpha.sqrt())
    for value in materials.values():
        assert value.min() >= 0.0 and value.max() <= 1.0


def test_environment_fn_is_the_outer_light_seen_from_the_centre(model: NeroMaterialModel):
    directions = torch.nn.functional.normalize(torch.randn(20, 3), dim=-1)
    with torch.no_grad():
        environment = model.environment_fn(directions)
        # A distant light is the same from every point.
        elsewhere = model.lights.outer_light(torch.rand(20, 3) - 0.5, directions)
    assert environment.shape == (20, 3) and environment.min() > 0
    torch.testing.assert_close(environment, elsewhere)


def test_camera_render_and_evaluation_images(model: NeroMaterialModel):
    c2w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 3.0]])
    camera = Cameras(camera_to_worlds=c2w[None], fx=12.0, fy=12.0, cx=5.0, cy=4.0, width=10, height=8)
    model.eval()
    outputs = model.get_outputs_for_camera(camera)
    for name, channels in PER_RAY_CHANNELS.items():
        assert outputs[name].shape == (8, 10, channels), name
    hit = outputs["hit_mask"][..., 0]
    assert 0 < hit.sum() < 80  # the sphere covers the middle only
    image = torch.rand(8, 10, 3)
    metrics, images = model.get_image_metrics_and_images(outputs, {"image": image})
    assert set(metrics) == {"psnr", "ssim", "psnr_hit"} and all(math.isfinite(v) for v in metrics.values())
    assert images["img"].shape == (8, 20, 3)
    assert images["materials"].shape == (8, 30, 3) and images["shading"].shape == (8, 40, 3)


def test_photographer_light_and_sphere_direction_for_real_data(sphere_mesh: Path):
    torch.manual_seed(0)
    w2p = torch.eye(4)[:3].clone()
    w2p[2, 3] = -3.0
    metadata = {"dataset_format": "real", "photographer_light": True, "photographer_w2p": w2p[None].repeat(2, 1, 1)}
    model = make_model(sphere_mesh, metadata)
    assert model.outer_light_type == "sphere_direction" and model.use_photographer_light
    assert model.lights.photographer_light is not None
    model.eval()
    with torch.no_grad():
        outputs = model(rays_towards_the_sphere())
    assert torch.isfinite(outputs["rgb"]).all()
    c2w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 3.0]])
    camera = Cameras(camera_to_worlds=c2w[None], fx=12.0, fy=12.0, cx=3.0, cy=3.0, width=6, height=6)
    assert model.get_outputs_for_camera(camera)["rgb"].shape == (6, 6, 3)

    forced_off = make_model(sphere_mesh, metadata, photographer_light=False, outer_light="direction")
    assert forced_off.lights.photographer_light is None and forced_off.outer_light_type == "direction"


def test_outer_light_auto_follows_the_dataset_format():
    assert resolve_outer_light("auto", "synthetic") == "direction"
    assert resolve_outer_light("auto", "real") == "sphere_direction"
    assert resolve_outer_light("auto", "custom") == "sphere_direction"
    assert resolve_outer_light("direction", "real") == "direction"


def test_mesh_is_moved_into_the_normalised_frame(sphere_mesh: Path):
    transform = torch.eye(4)[:3].clone()
    transform[:, 3] = torch.tensor([0.2, 0.0, 0.0])
    model = make_model(
        sphere_mesh, {"dataset_format": "real", "dataparser_transform": transform, "dataparser_scale": 2.0}
    )
    original = trimesh.load(sphere_mesh, process=False).vertices
    assert np.allclose(model.ray_caster.vertices, 2.0 * (original + [0.2, 0.0, 0.0]), atol=1e-5)


def test_missing_mesh_errors_name_the_problem(sphere_mesh: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="mesh-path"):
        make_model(None)
    with pytest.raises(NeroDataError, match="absent.ply"):
        make_model(tmp_path / "absent.ply")
    # Relative paths are stored absolute so a saved config still finds the mesh.
    assert NeroMaterialModelConfig(mesh_path=Path("m.ply")).mesh_path.is_absolute()


@pytest.mark.parametrize(
    "guard, head, stuck_bias, out_of_range",
    [
        # Bias -20: sigmoid slope 2e-9, roughness at the floor, where nothing else moves it any more.
        ("roughness_guard", "roughness_head", -20.0, (0.03, r"\(0.04, 1\), got 0.03")),
        # Bias 20: albedo 1 - 2e-9, white, where nothing else moves it any more.
        ("albedo_guard", "albedo_head", 20.0, (1.0, r"\(0, 1\), got 1.0")),
    ],
)
def test_a_guard_brings_a_stuck_head_back_where_the_sigmoid_has_a_slope(
    sphere_mesh: Path, guard: str, head: str, stuck_bias: float, out_of_range: Tuple[float, str]
):
    torch.manual_seed(0)
    model = make_model(sphere_mesh)
    model.train()
    model.update_to_step(model.config.saturation_reg_end)
    head_module = getattr(model.material_field, head)
    with torch.no_grad():
        head_module.layers[-1].bias.fill_(stuck_bias)
    bundle, image = rays_towards_the_sphere(), {"image": torch.rand(3, 3)}
    loss_key = f"{guard}_loss"
    optimizer = torch.optim.Adam(head_module.parameters(), lr=0.1)
    for _ in range(100):  # the guard alone
        optimizer.zero_grad()
        model.get_loss_dict(model(bundle), image)[loss_key].backward()
        optimizer.step()
    logits = model(bundle)[NeroKey.MATERIAL_SAMPLES][head.replace("_head", "_logit")]
    level = getattr(model.config, guard)
    beyond = roughness_logit(level) - logits if guard == "roughness_guard" else logits - albedo_logit(level)
    assert bool((beyond < 0.5).all()) and model.get_loss_dict(model(bundle), image)[loss_key] < 1

    unguarded = make_model(sphere_mesh, **{guard: None})
    assert loss_key not in unguarded.get_loss_dict(unguarded(bundle), image)
    value, message = out_of_range
    with pytest.raises(NeroSettingsError, match=rf"^--pipeline.model.{guard.replace('_', '-')}: must be in {message}"):
        make_model(sphere_mesh, **{guard: value})


def test_regulariser_functions():
    metallic = torch.tensor([[0.5], [0.99], [0.01]])
    alpha = torch.tensor([[0.5], [0.99], [0.5]])
    expected = (0.99 - 0.98) + (0.99 - 0.98**2) + (0.02 - 0.01)
    assert torch.isclose(saturation_guard(metallic, alpha), torch.tensor(expected))
    logits = torch.tensor([[-9.0], [-7.5], [0.0]])
    assert torch.isclose(sigmoid_slope_guard(logits, lowest_logit=-8.0), torch.tensor(1.0))
    albedo_logits = torch.tensor([[5.0, 4.0, 0.0], [6.5, -9.0, 4.6]])
    assert torch.isclose(sigmoid_slope_guard(albedo_logits, highest_logit=4.5), torch.tensor(0.5 + 2.0 + 0.1))
    assert torch.isclose(sigmoid_slope_guard(logits, -8.0, -7.0), torch.tensor(1.0 + 7.0))
    grey_and_red = torch.tensor([[0.4, 0.4, 0.4], [0.9, 0.0, 0.0]])
    assert torch.allclose(neutral_light_loss(grey_and_red), torch.tensor([0.0, 0.6 + 0.3 + 0.3]))
    metal_dielectric_between = torch.tensor([[1.0], [0.0], [0.8]])
    assert torch.allclose(two_valued_metallic_loss(metal_dielectric_between), torch.tensor([0.0, 0.0, 0.8 * 0.2]))

    torch.manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(4000, 3), dim=-1)
    offsets = tangent_offsets(normals, 0.05)
    assert torch.allclose((offsets * normals).sum(-1), torch.zeros(4000), atol=1e-6)
    assert abs(offsets.norm(dim=-1).pow(2).mean().sqrt().item() - 0.05) < 0.005


def test_method_specifications():
    from nero_nerfstudio.configs.material_configs import nero_material, nero_material_small
    from nero_nerfstudio.data.datamanagers.mesh_ray_datamanager import MeshRayDataManagerConfig
    from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig

    paper, small = nero_material.config, nero_material_small.config
    assert (paper.method_name, small.method_name) == ("nero-material", "nero-material-small")
    for config in (paper, small):
        assert config.mixed_precision is False
        assert list(config.optimizers) == ["fields"]
        assert isinstance(config.pipeline.datamanager, MeshRayDataManagerConfig)
        assert isinstance(config.pipeline.datamanager.dataparser, NeroSyntheticDataParserConfig)
        scheduler = config.optimizers["fields"]["scheduler"]
        assert scheduler.max_steps == config.max_num_iterations and scheduler.min_factor == 0.05
    model = paper.pipeline.model
    assert (paper.max_num_iterations, paper.pipeline.datamanager.train_num_rays_per_batch) == (100_000, 512)
    assert (model.num_diffuse_samples, model.num_specular_samples) == (512, 256)
    assert model.material_field.hidden_dim == 256 and model.light_hidden_dim == 256
    assert paper.optimizers["fields"]["optimizer"].lr == 5e-4
    assert paper.optimizers["fields"]["scheduler"].warm_up_end == 1000 and model.saturation_reg_end == 2000
    small_model = small.pipeline.model
    assert (small_model.num_diffuse_samples, small_model.num_specular_samples) == (32, 16)
    assert small_model.material_field.hidden_dim == 64 and small.pipeline.datamanager.train_num_rays_per_batch == 256
    # The schedule is the paper's, compressed to the run length.
    assert small_model.saturation_reg_end == round(2000 * small.max_num_iterations / 100_000)
    # Both presets shade with the per-lobe estimator and smooth normals, and add a quarter of background rays.
    for config in (paper, small):
        model_config = config.pipeline.model
        assert (model_config.estimator, model_config.sample_set, model_config.shading_normals) == (
            "per_lobe",
            "stratified",
            "smooth",
        )
        datamanager = config.pipeline.datamanager
        assert datamanager.train_num_background_rays_per_batch == datamanager.train_num_rays_per_batch // 4
        assert model_config.background_light_mult > 0 and model_config.material_field.initial_roughness == 0.5


def test_rays_that_all_miss_render_black(model: NeroMaterialModel):
    bundle = rays_towards_the_sphere()[2:]
    model.eval()
    with torch.no_grad():
        outputs = model(bundle)
    assert outputs["rgb"].shape == (1, 3) and torch.all(outputs["rgb"] == 0)
    assert outputs["hit_mask"].sum() == 0 and outputs["depth"][0, 0] == model.config.miss_depth
