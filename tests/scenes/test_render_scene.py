"""The scene generator end to end: files and conventions of the three layouts, ground truth, errors."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.scenes import render_scene as render_scene_module
from nero_nerfstudio.scenes.assets import (
    FILE_MESHES,
    bundled_environments,
    load_mesh_file,
    resolve_mesh,
)
from nero_nerfstudio.scenes.render_scene import (
    BlenderRenderError,
    RenderSceneConfig,
    camera_rig,
    render_scene,
    run_blender_job,
)
from nero_nerfstudio.scenes.similarity import Similarity
from nero_nerfstudio.scenes.tabletop import NUM_PROPS

SCENE_FIXTURES = ("synthetic_scene", "real_scene", "custom_scene")


def _scene_info(scene: Path) -> Dict[str, Any]:
    return json.loads((scene / "gt" / "scene.json").read_text())


def _project(w2c: np.ndarray, intrinsics: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``[N, 2]`` and z-depth ``[N]`` of world points ``[N, 3]`` in one OpenCV camera."""
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    pixels = cam @ intrinsics.T
    return np.concatenate([pixels[:, :2] / pixels[:, 2:], cam[:, 2:]], axis=-1)


def _read_colmap(scene: Path):
    from nerfstudio.data.utils import colmap_parsing_utils as colmap

    return colmap.read_model(str(scene / "colmap" / "sparse" / "0"), ext=".bin")


def _image_paths(scene: Path):
    info = _scene_info(scene)
    folder = scene if info["layout"] == "synthetic" else scene / "images"
    return [folder / name for name in info["image_names"]]


@pytest.mark.parametrize("fixture_name", SCENE_FIXTURES)
def test_rendered_images_and_ground_truth(fixture_name: str, request: pytest.FixtureRequest) -> None:
    scene: Path = request.getfixturevalue(fixture_name)
    info = _scene_info(scene)
    size = (info["height"], info["width"])
    assert info["metallic"] == 1.0 and info["roughness"] == 0.2 and info["environment"] == "courtyard"
    paths = _image_paths(scene)
    assert len(paths) == len(info["image_names"]) >= 8
    mesh = trimesh.load(scene / "gt" / "mesh.ply", process=False)
    similarity = Similarity.from_json(info["similarity"])
    radius = np.linalg.norm(mesh.vertices - similarity.translation, axis=-1).max()
    assert radius == pytest.approx(similarity.scale * info["mesh_radius"], rel=1e-5)
    for path in paths:
        image = iio.imread(path)
        assert image.shape == (*size, 3) and image.dtype == np.uint8
        assert image.std() > 10  # not empty: an environment and an object
        stem = path.stem
        normals = np.load(scene / "gt" / f"{stem}-normal.npy")
        depth = np.load(scene / "gt" / f"{stem}-depth.npy")
        assert normals.dtype == np.float16 and normals.shape == (*size, 3)
        assert depth.dtype == np.float32 and depth.shape == size
        foreground = depth > 0
        assert 0.05 < foreground.mean() < 0.8  # the object fills a good part of the view, not all of it
        assert np.all(normals[~foreground] == 0)
        np.testing.assert_allclose(np.linalg.norm(normals[foreground].astype(np.float32), axis=-1), 1.0, atol=2e-3)


def test_synthetic_layout_files_and_frame(synthetic_scene: Path) -> None:
    info = _scene_info(synthetic_scene)
    assert info["layout"] == "synthetic" and info["up_axis"] == "y"
    expected_pickles = sorted(f"{k}-camera.pkl" for k in range(len(info["image_names"])))
    assert sorted(p.name for p in synthetic_scene.glob("*.pkl")) == expected_pickles
    mesh = trimesh.load(synthetic_scene / "gt" / "mesh.ply", process=False)
    vertices = np.asarray(mesh.vertices)
    assert np.linalg.norm(vertices, axis=-1).max() == pytest.approx(0.8, rel=1e-5)  # inside the unit sphere
    for name in info["image_names"]:
        stem = Path(name).stem
        with open(synthetic_scene / f"{stem}-camera.pkl", "rb") as file:
            w2c, intrinsics = pickle.load(file)
        assert w2c.shape == (3, 4) and intrinsics.shape == (3, 3) and w2c.dtype.kind == "f"
        # Every camera looks at the origin from the camera sphere, and the dataset's +y points up in the image.
        center = -w2c[:, :3].T @ w2c[:, 3]
        assert np.linalg.norm(center) == pytest.approx(info["camera_distance"], rel=1e-5)
        origin_and_up = _project(w2c, intrinsics, np.array([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0]]))
        np.testing.assert_allclose(origin_and_up[0, :2], [info["width"] / 2, info["height"] / 2], atol=1e-3)
        assert origin_and_up[1, 1] < origin_and_up[0, 1]

        depth_png = iio.imread(synthetic_scene / f"{stem}-depth.png")
        assert depth_png.dtype == np.uint16 and depth_png.shape == (info["height"], info["width"])
        gt_depth = np.load(synthetic_scene / "gt" / f"{stem}-depth.npy")
        np.testing.assert_array_equal(depth_png == 65535, gt_depth == 0)
        np.testing.assert_allclose(depth_png[gt_depth > 0] / 65535 * 15, gt_depth[gt_depth > 0], atol=15 / 65535)

        # The depth map is the front surface of the GT mesh: no vertex lies in front of the nearest surface in
        # its 3x3 pixel neighbourhood (the neighbourhood covers silhouettes), and many lie on it.
        projected = _project(w2c, intrinsics, vertices)
        cols, rows = np.floor(projected[:, 0]).astype(int), np.floor(projected[:, 1]).astype(int)
        inside = (cols >= 0) & (cols < info["width"]) & (rows >= 0) & (rows < info["height"])
        depth_map = depth_png / 65535 * 15
        padded = np.pad(depth_map, 1, mode="edge")
        height, width = depth_map.shape
        shifts = [padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width] for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        nearest_around = np.min(shifts, axis=0)
        vertex_depth = projected[inside, 2]
        assert (vertex_depth < nearest_around[rows[inside], cols[inside]] - 0.02).mean() < 1e-3
        assert (np.abs(vertex_depth - depth_map[rows[inside], cols[inside]]) < 0.02).mean() > 0.2


def test_real_layout_colmap_reads_back_with_the_same_poses(real_scene: Path) -> None:
    info = _scene_info(real_scene)
    assert info["layout"] == "real" and info["up_axis"] == "z"
    cameras, images, points3d = _read_colmap(real_scene)
    assert len(cameras) == 1
    camera = cameras[1]
    assert camera.model == "PINHOLE" and (camera.width, camera.height) == (info["width"], info["height"])
    focal = info["width"] / 2 / np.tan(np.radians(info["fov_deg"]) / 2)
    np.testing.assert_allclose(camera.params, [focal, focal, info["width"] / 2, info["height"] / 2])

    config = RenderSceneConfig(
        output_dir=real_scene,
        layout="real",
        num_views=len(info["image_names"]),
        resolution=info["width"],
        camera_distance=info["camera_distance"],
        fov_deg=info["fov_deg"],
        seed=info["seed"],
    )
    similarity = Similarity.from_json(info["similarity"])
    expected_w2c = similarity.apply_w2c(camera_rig(config)[0])
    assert [images[i].name for i in sorted(images)] == info["image_names"]
    for index, image_id in enumerate(sorted(images)):
        image = images[image_id]
        assert (real_scene / "images" / image.name).is_file()
        np.testing.assert_allclose(image.qvec2rotmat(), expected_w2c[index, :, :3], atol=1e-9)
        np.testing.assert_allclose(image.tvec, expected_w2c[index, :, 3], atol=1e-9)
        # Cameras sit on the scaled camera sphere around the object centre and look at it.
        rotation = image.qvec2rotmat()
        center = -rotation.T @ image.tvec
        to_object = similarity.translation - center
        assert np.linalg.norm(to_object) == pytest.approx(similarity.scale * info["camera_distance"], rel=1e-6)
        np.testing.assert_allclose(rotation @ to_object / np.linalg.norm(to_object), [0, 0, 1], atol=1e-9)

    # points3D.bin and object_point_cloud.ply hold the same surface points, in the COLMAP frame.
    points = np.stack([points3d[i].xyz for i in sorted(points3d)])
    cloud = np.asarray(trimesh.load(real_scene / "object_point_cloud.ply").vertices)
    np.testing.assert_allclose(cloud, points, atol=1e-5)
    import open3d as o3d

    mesh = trimesh.load(real_scene / "gt" / "mesh.ply", process=False)
    raycasting = o3d.t.geometry.RaycastingScene()
    raycasting.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    distance = raycasting.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
    assert distance.max() < 1e-4 * similarity.scale


def test_custom_layout_meta_info_and_cameras(custom_scene: Path) -> None:
    info = _scene_info(custom_scene)
    cameras, images, _ = _read_colmap(custom_scene)
    assert len(cameras) == len(images) == len(info["image_names"])
    assert {camera.model for camera in cameras.values()} == {"SIMPLE_PINHOLE"}
    up, forward = np.loadtxt(custom_scene / "meta_info.txt")
    np.testing.assert_allclose(up, info["up"], atol=1e-8)
    np.testing.assert_allclose(forward, info["forward"], atol=1e-8)
    rotation = np.asarray(info["similarity"]["rotation"])
    np.testing.assert_allclose(up, rotation[:, 2], atol=1e-8)  # Blender +z
    np.testing.assert_allclose(forward, rotation[:, 0], atol=1e-8)  # Blender +x
    assert not (custom_scene / "gt" / "0-depth.png").exists()


@pytest.fixture(scope="module")
def red_sphere_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rough red dielectric sphere (unlike any part of the environment) with an exact centre pixel."""
    config = RenderSceneConfig(
        output_dir=tmp_path_factory.mktemp("red_sphere") / "scene",
        mesh="sphere",
        environment="courtyard",
        num_views=3,
        resolution=33,
        samples=8,
        metallic=0.0,
        roughness=0.9,
        albedo=(0.8, 0.02, 0.02),
    )
    return render_scene(config)


def test_object_is_where_the_ground_truth_says(red_sphere_scene: Path) -> None:
    info = _scene_info(red_sphere_scene)
    center = info["width"] // 2
    for name in info["image_names"]:
        stem = Path(name).stem
        image = iio.imread(red_sphere_scene / name).astype(np.float64) / 255
        depth = np.load(red_sphere_scene / "gt" / f"{stem}-depth.npy")
        foreground = depth > 0
        # Shrink the mask by a pixel so anti-aliased edges do not blur the comparison.
        core = foreground & np.roll(foreground, 1, 0) & np.roll(foreground, -1, 0)
        core &= np.roll(foreground, 1, 1) & np.roll(foreground, -1, 1)
        background = ~foreground & ~np.roll(foreground, 1, 0) & ~np.roll(foreground, -1, 0)
        redness = image[..., 0] - image[..., 1:].max(axis=-1)
        assert redness[core].mean() > redness[background].mean() + 0.2
        # The central ray hits the sphere of radius 0.8 head on.
        assert depth[center, center] == pytest.approx(info["camera_distance"] - info["mesh_radius"], abs=2e-3)
        with open(red_sphere_scene / f"{stem}-camera.pkl", "rb") as file:
            w2c, _ = pickle.load(file)
        normal = np.load(red_sphere_scene / "gt" / f"{stem}-normal.npy")[center, center].astype(np.float64)
        np.testing.assert_allclose(normal, -w2c[2, :3], atol=2e-3)  # facing the camera


@pytest.mark.slow
@pytest.mark.parametrize("mesh_name", ["torus", "suzanne"])
def test_primitive_meshes_render(mesh_name: str, tmp_path: Path) -> None:
    scene = render_scene(
        RenderSceneConfig(output_dir=tmp_path / mesh_name, mesh=mesh_name, num_views=1, resolution=24, samples=2)
    )
    vertices = np.asarray(trimesh.load(scene / "gt" / "mesh.ply", process=False).vertices)
    assert np.linalg.norm(vertices, axis=-1).max() == pytest.approx(0.8, rel=1e-5)
    assert len(vertices) > 2000  # tessellated / subdivided, not a coarse primitive
    assert (np.load(scene / "gt" / "0-depth.npy") > 0).mean() > 0.05


@pytest.mark.slow
def test_mesh_file_with_z_up_stands_upright(tmp_path: Path) -> None:
    # A box three times taller (z) than wide: with mesh_up_axis="z" it must be tall along the synthetic +y.
    box = trimesh.creation.box(extents=(0.4, 0.4, 1.2))
    box.apply_translation((5.0, 1.0, -2.0))
    mesh_path = tmp_path / "tall_box.ply"
    box.export(mesh_path)
    scene = render_scene(
        RenderSceneConfig(
            output_dir=tmp_path / "scene",
            mesh=str(mesh_path),
            mesh_up_axis="z",
            num_views=1,
            resolution=24,
            samples=2,
        )
    )
    vertices = np.asarray(trimesh.load(scene / "gt" / "mesh.ply", process=False).vertices)
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    np.testing.assert_allclose(extent / extent[1], [1 / 3, 1, 1 / 3], atol=1e-6)
    np.testing.assert_allclose((vertices.max(0) + vertices.min(0)) / 2, 0.0, atol=1e-6)


def _prop_hit_depth(center: np.ndarray, rays: np.ndarray, prop: Dict[str, Any]) -> np.ndarray:
    """z-depth ``[H, W]`` where each ray (``[H, W, 3]``, camera z = 1) enters a prop's bounding sphere; inf: none."""
    offset = center - np.asarray(prop["center"])
    a = (rays**2).sum(-1)
    b = 2 * rays @ offset
    disc = b**2 - 4 * a * (offset @ offset - prop["radius"] ** 2)
    t_near = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where((disc > 0) & (t_near > 0), t_near, np.inf)


@pytest.mark.slow
def test_tabletop_scene_stands_the_object_on_a_textured_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = RenderSceneConfig(
        output_dir=tmp_path / "tabletop",
        layout="custom",
        tabletop=True,
        num_views=6,
        resolution=64,
        samples=4,
        threads=1,
    )
    scene = render_scene(config)
    # The same views without the table: there the environment shows, and the object mirrors it.
    rig = camera_rig(config)
    monkeypatch.setattr(render_scene_module, "camera_rig", lambda _: rig)
    bare = render_scene(replace(config, output_dir=tmp_path / "bare", tabletop=False))
    info = _scene_info(scene)
    assert info["tabletop"] is True and _scene_info(bare)["tabletop"] is False
    assert "table_plane" not in _scene_info(bare)

    # The object stands on the table plane: every vertex on or above it, the lowest one on it.
    similarity = Similarity.from_json(info["similarity"])
    normal, offset = np.asarray(info["table_plane"][:3]), info["table_plane"][3]
    np.testing.assert_allclose(normal, info["up"], atol=1e-9)
    vertices = np.asarray(trimesh.load(scene / "gt" / "mesh.ply", process=False).vertices)
    height = vertices @ normal + offset
    assert height.min() == pytest.approx(0.0, abs=1e-6 * similarity.scale)
    assert height.max() > similarity.scale * info["mesh_radius"]

    # Cameras above the table; props on it, outside the object's bounding sphere and away from the cameras.
    _, images, _ = _read_colmap(scene)
    w2c = np.stack([np.concatenate([images[i].qvec2rotmat(), images[i].tvec[:, None]], 1) for i in sorted(images)])
    camera_centers = -np.einsum("nji,nj->ni", w2c[:, :, :3], w2c[:, :, 3])
    assert (camera_centers @ normal + offset).min() > similarity.scale * info["mesh_radius"]
    assert len(info["props"]) == NUM_PROPS
    for prop in info["props"]:
        center, radius = np.asarray(prop["center"]), prop["radius"]
        assert 0 < center @ normal + offset < radius
        assert np.linalg.norm(center - similarity.translation) > similarity.scale * info["mesh_radius"] + radius
        assert np.linalg.norm(camera_centers - center, axis=-1).min() > 3 * radius

    intrinsics = rig[1]
    cols, rows = np.meshgrid(np.arange(info["width"]) + 0.5, np.arange(info["height"]) + 0.5)
    camera_rays = np.stack([cols, rows, np.ones_like(cols)], -1) @ np.linalg.inv(intrinsics).T
    for name, view_w2c, camera_center in zip(info["image_names"], w2c, camera_centers):
        stem = Path(name).stem
        depth = np.load(scene / "gt" / f"{stem}-depth.npy")
        np.testing.assert_array_equal(depth, np.load(bare / "gt" / f"{stem}-depth.npy"))
        # Below the horizon the table replaces the environment (pixels next to the object left out: anti-aliasing).
        rays = camera_rays @ view_w2c[:, :3]
        near_object = depth > 0
        for axis in (0, 1):
            near_object |= np.roll(near_object, 1, axis) | np.roll(near_object, -1, axis)
        downward = (rays @ normal < 0) & ~near_object
        assert downward.mean() > 0.2
        difference = np.abs(iio.imread(scene / "images" / name) / 255 - iio.imread(bare / "images" / name) / 255)
        assert difference.mean(-1)[downward].mean() > 0.1
        # Props hide little of the object (measured with their bounding spheres, so an overestimate).
        prop_depth = np.min([_prop_hit_depth(camera_center, rays, prop) for prop in info["props"]], axis=0)
        assert (prop_depth < depth)[depth > 0].mean() < 0.1


def test_tabletop_needs_a_colmap_layout(tmp_path: Path) -> None:
    with pytest.raises(NeroDataError, match="tabletop needs the real or custom layout"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "a", layout="synthetic", tabletop=True))
    assert not (tmp_path / "a").exists()


def test_unknown_names_and_missing_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NeroDataError, match="unknown environment; use one of city, courtyard"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "a", environment="moon"))
    with pytest.raises(NeroDataError, match="unknown mesh; use one of bunny, cow, sphere, torus, suzanne"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "a", mesh="dragon"))
    with pytest.raises(NeroDataError, match="missing.ply: mesh file does not exist"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "a", mesh=str(tmp_path / "missing.ply")))
    with pytest.raises(NeroDataError, match="environment map file does not exist"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "a", environment=str(tmp_path / "sky.exr")))
    with pytest.raises(NeroDataError, match=r"metallic must be in \[0, 1\]"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "a", metallic=1.5))
    with pytest.raises(NeroDataError, match="does not fit in the view"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "a", camera_distance=1.0))
    assert not (tmp_path / "a").exists()  # nothing is created for bad settings

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.png").write_bytes(b"")
    with pytest.raises(NeroDataError, match="not empty"):
        render_scene(RenderSceneConfig(output_dir=tmp_path / "full"))

    garbage = tmp_path / "garbage.ply"
    garbage.write_text("this is not a mesh")
    with pytest.raises(NeroDataError, match="garbage.ply"):
        load_mesh_file(garbage, "y")


def test_named_mesh_files_resolve_to_installed_files() -> None:
    assert set(FILE_MESHES) == {"bunny", "cow"}
    for name in FILE_MESHES:
        path = resolve_mesh(name)
        assert isinstance(path, Path) and path.is_file()
    # The cow is y-up like the bunny: in Blender's z-up frame it is long (head to tail), then tall, then narrow.
    vertices, faces = load_mesh_file(resolve_mesh("cow"), "y")
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    assert extent[1] > extent[2] > extent[0] and len(faces) > 5000


def test_bundled_environments_are_found() -> None:
    environments = bundled_environments()
    assert {"courtyard", "city", "forest", "studio"} <= set(environments)
    assert all(path.suffix == ".exr" and path.is_file() for path in environments.values())


def test_blender_failure_reports_its_log(tmp_path: Path) -> None:
    with pytest.raises(BlenderRenderError, match=r"(?s)exit code 1.*No such file"):
        run_blender_job(tmp_path / "missing_job.json", num_views=1, description="failing")
