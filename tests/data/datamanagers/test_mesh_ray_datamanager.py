"""The Stage II datamanager keeps exactly the pixels whose ray hits the mesh, with correct hits, and serves them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh

from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.data.datamanagers.mesh_hits import ShuffledBatches
from nero_nerfstudio.data.datamanagers.mesh_ray_datamanager import MeshRayDataManager, MeshRayDataManagerConfig
from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.mesh_io import load_mesh_in_normalised_frame
from nero_nerfstudio.raycasting.factory import make_ray_caster
from nero_nerfstudio.scenes.camera_rig import look_at_w2c, pinhole_intrinsics
from nero_nerfstudio.scenes.synthetic_layout import write_synthetic_view

WIDTH, HEIGHT = 24, 20
BOX_HALF_SIZE = 0.5


@pytest.fixture(scope="module")
def box_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four random-colour views of the origin (y-up, GlossySynthetic layout) and a unit box ``mesh.ply``."""
    folder = tmp_path_factory.mktemp("box_scene")
    centers = np.array([[3.0, 1.0, 0.5], [-0.5, 1.5, 3.0], [-3.0, -0.8, -0.4], [0.3, 2.0, -2.8]])
    poses = look_at_w2c(centers, up=np.array([0.0, 1.0, 0.0]))
    rng = np.random.default_rng(0)
    for index, w2c in enumerate(poses):
        write_synthetic_view(
            folder, str(index), w2c, pinhole_intrinsics(WIDTH, HEIGHT, 40.0), np.full((HEIGHT, WIDTH), np.inf)
        )
        iio.imwrite(folder / f"{index}.png", rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    box = trimesh.creation.box(extents=(2 * BOX_HALF_SIZE,) * 3)
    box.export(folder / "mesh.ply")
    return folder


def make_datamanager(
    scene: Path, mesh_path, scale: float = 1.0, rays: int = 64, background_rays: int = 0, **overrides
) -> MeshRayDataManager:
    """A datamanager whose pool is traced against ``mesh_path`` (dataset frame) the way the model's mesh is, or
    with no pool yet when ``mesh_path`` is None."""
    config = MeshRayDataManagerConfig(
        dataparser=NeroSyntheticDataParserConfig(data=scene, scale_factor=scale),
        train_num_rays_per_batch=rays,
        train_num_background_rays_per_batch=background_rays,
        background_pixels_per_image=100,
        eval_num_rays_per_batch=rays,
        **overrides,
    )
    datamanager = config.setup(device="cpu")
    if mesh_path is not None:
        outputs = datamanager.train_dataparser_outputs
        vertices, faces = load_mesh_in_normalised_frame(
            mesh_path, outputs.dataparser_transform, outputs.dataparser_scale
        )
        datamanager.build_hit_pool(make_ray_caster(vertices, faces), mesh_path)
    return datamanager


def slab_intersections(origins: torch.Tensor, directions: torch.Tensor, half_size: float):
    """Entry and exit distances of rays through the box ``[-h, h]^3`` (exact)."""
    inverse = 1.0 / directions
    t0 = (-half_size - origins) * inverse
    t1 = (half_size - origins) * inverse
    return torch.minimum(t0, t1).max(dim=-1).values, torch.maximum(t0, t1).min(dim=-1).values


@pytest.fixture(scope="module")
def datamanager(box_scene: Path) -> MeshRayDataManager:
    return make_datamanager(box_scene, box_scene / "mesh.ply")


def test_pool_holds_exactly_the_pixels_whose_ray_hits_the_box(datamanager: MeshRayDataManager):
    pool = datamanager.hit_pool
    assert pool is not None and len(pool) > 0
    cameras = datamanager.train_dataset.cameras
    kept = {tuple(row) for row in pool.indices.tolist()}
    checked = 0
    for camera_index in range(len(cameras)):
        bundle = cameras.generate_rays(camera_indices=camera_index, keep_shape=True)
        t_in, t_out = slab_intersections(bundle.origins, bundle.directions, BOX_HALF_SIZE)
        for y in range(HEIGHT):
            for x in range(WIDTH):
                margin = float(t_out[y, x] - t_in[y, x])
                if abs(margin) < 1e-3:  # grazes an edge: either answer is right
                    continue
                checked += 1
                assert ((camera_index, y, x) in kept) == (margin > 0), (camera_index, y, x)
    assert checked > 0.9 * len(cameras) * WIDTH * HEIGHT
    assert 0 < len(pool) < len(cameras) * WIDTH * HEIGHT  # some pixels miss


def test_pool_rows_carry_the_hit_and_the_pixel_colour(datamanager: MeshRayDataManager):
    pool = datamanager.hit_pool
    cameras = datamanager.train_dataset.cameras
    # Hit points on the box surface, normals outward along the axis of the face they lie on.
    assert torch.allclose(pool.points.abs().max(dim=-1).values, torch.full((len(pool),), BOX_HALF_SIZE), atol=1e-5)
    axis = pool.normals.abs().argmax(dim=-1)
    assert torch.allclose(pool.normals.abs().max(dim=-1).values, torch.ones(len(pool)))
    face_coordinate = pool.points.gather(1, axis[:, None])[:, 0]
    normal_sign = pool.normals.gather(1, axis[:, None])[:, 0]
    assert torch.allclose(face_coordinate, BOX_HALF_SIZE * normal_sign, atol=1e-5)
    for row in range(0, len(pool), 37):
        camera_index, y, x = pool.indices[row].tolist()
        origin = cameras.generate_rays(camera_indices=camera_index, keep_shape=True).origins[y, x]
        assert torch.isclose(pool.depth[row, 0], (pool.points[row] - origin).norm(), atol=1e-5)
        image = datamanager.train_dataset.get_image_float32(camera_index)
        assert torch.allclose(pool.colors[row], image[y, x, :3])


def test_background_rays_follow_the_hits_and_miss_the_box(box_scene: Path):
    datamanager = make_datamanager(box_scene, box_scene / "mesh.ply", background_rays=16)
    background = datamanager.background_pool
    # At most 100 kept per image, all of them missing pixels with their colours.
    assert 0 < len(background) <= 4 * 100
    hit_pixels = {tuple(row) for row in datamanager.hit_pool.indices.tolist()}
    assert not hit_pixels & {tuple(row) for row in background.indices.tolist()}
    cameras = datamanager.train_dataset.cameras
    for row in range(0, len(background), 17):
        camera_index, y, x = background.indices[row].tolist()
        bundle = cameras.generate_rays(camera_indices=camera_index, keep_shape=True)
        t_in, t_out = slab_intersections(bundle.origins[y, x], bundle.directions[y, x], BOX_HALF_SIZE)
        assert t_out < t_in + 1e-3
        image = datamanager.train_dataset.get_image_float32(camera_index)
        assert torch.allclose(background.colors[row], image[y, x, :3])

    bundle, batch = datamanager.next_train(0)
    assert bundle.origins.shape == (64 + 16, 3) and batch["image"].shape == (64 + 16, 3)
    assert datamanager.get_train_rays_per_batch() == 64 + 16
    hit_mask = bundle.metadata[NeroKey.HIT_MASK]
    assert hit_mask.shape == (80, 1) and hit_mask[:64].all() and not hit_mask[64:].any()
    t_in, t_out = slab_intersections(bundle.origins, bundle.directions, BOX_HALF_SIZE)
    assert bool((t_out[64:] < t_in[64:] + 1e-3).all()) and bool((t_out[:64] > t_in[:64] - 1e-3).all())


def test_next_train_serves_hit_rays_with_their_metadata(datamanager: MeshRayDataManager):
    bundle, batch = datamanager.next_train(0)
    assert bundle.origins.shape == (64, 3) and batch["image"].shape == (64, 3)
    assert batch["indices"].shape == (64, 3)
    assert bundle.metadata[NeroKey.HIT_POINTS].shape == (64, 3)
    assert bundle.metadata[NeroKey.HIT_NORMALS].shape == (64, 3)
    assert bundle.metadata[NeroKey.HIT_DEPTH].shape == (64, 1)
    # The metadata belongs to the rays: origin + depth * direction is the hit point.
    reached = bundle.origins + bundle.metadata[NeroKey.HIT_DEPTH] * bundle.directions
    assert torch.allclose(reached, bundle.metadata[NeroKey.HIT_POINTS], atol=1e-4)
    assert torch.equal(bundle.camera_indices[:, 0], batch["indices"][:, 0])
    assert NeroKey.HIT_FOOTPRINT_NORMALS not in bundle.metadata  # only kept to supersample the footprint


def test_a_supersampled_footprint_keeps_each_rays_normal(box_scene: Path):
    datamanager = make_datamanager(box_scene, box_scene / "mesh.ply", pixel_footprint="supersample")
    assert datamanager.hit_pool.footprint_normals.shape == (len(datamanager.hit_pool), 8, 3)
    bundle, _ = datamanager.next_train(0)
    normals = bundle.metadata[NeroKey.HIT_FOOTPRINT_NORMALS].view(64, 8, 3)
    # A box's faces are flat: away from its edges every footprint ray sees the pixel's own face normal.
    agree = (normals * bundle.metadata[NeroKey.HIT_SMOOTH_NORMALS][:, None]).sum(-1) > 0.99
    assert float(agree.float().mean()) > 0.8


def test_whole_pool_is_served_before_a_reshuffle():
    batches = ShuffledBatches(10, seed=1)
    first_pass = torch.cat([batches.next(4), batches.next(4), batches.next(4)])
    assert sorted(first_pass[:10].tolist()) == list(range(10))
    assert batches.num_passes == 2
    # A batch larger than the pool takes whole passes.
    served = ShuffledBatches(3).next(7)
    assert served.shape == (7,) and sorted(torch.bincount(served, minlength=3).tolist()) == [2, 2, 3]


def test_dataparser_transform_is_applied_to_the_mesh_and_handed_to_the_model(box_scene: Path):
    unscaled = make_datamanager(box_scene, box_scene / "mesh.ply")
    scaled = make_datamanager(box_scene, box_scene / "mesh.ply", scale=0.5)
    assert scaled.train_dataset.metadata[NeroKey.DATAPARSER_SCALE] == 0.5
    assert scaled.train_dataset.metadata[NeroKey.DATAPARSER_TRANSFORM].shape == (3, 4)
    # Same pixels hit in both frames; the hits scale with the scene.
    assert torch.equal(unscaled.hit_pool.indices, scaled.hit_pool.indices)
    assert torch.allclose(scaled.hit_pool.points, 0.5 * unscaled.hit_pool.points, atol=1e-5)


def test_load_mesh_applies_rotation_translation_and_scale(box_scene: Path):
    transform = torch.tensor([[0.0, -1.0, 0.0, 0.1], [1.0, 0.0, 0.0, 0.2], [0.0, 0.0, 1.0, 0.3]])
    vertices, faces = load_mesh_in_normalised_frame(box_scene / "mesh.ply", transform, 2.0)
    original = trimesh.load(box_scene / "mesh.ply", process=False)
    expected = 2.0 * (np.asarray(original.vertices) @ transform[:, :3].numpy().T + transform[:, 3].numpy())
    assert np.allclose(vertices, expected, atol=1e-6)
    assert np.array_equal(faces, original.faces)


def test_missing_or_broken_mesh_is_named(box_scene: Path, tmp_path: Path):
    with pytest.raises(NeroDataError, match="nowhere.ply"):
        make_datamanager(box_scene, tmp_path / "nowhere.ply")
    broken = tmp_path / "broken.ply"
    broken.write_text("ply\nthis is not a mesh\n")
    with pytest.raises(NeroDataError, match="broken.ply"):
        make_datamanager(box_scene, broken)


def test_mesh_far_from_the_cameras_views_is_an_error(box_scene: Path, tmp_path: Path):
    far_box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    far_box.apply_translation((0.0, 50.0, 0.0))
    far_box.export(tmp_path / "far.ply")
    with pytest.raises(NeroDataError, match="no training pixel"):
        make_datamanager(box_scene, tmp_path / "far.ply")


def test_model_mesh_is_traced_through_the_training_callbacks(box_scene: Path, datamanager: MeshRayDataManager):
    lazy = make_datamanager(box_scene, None)
    assert lazy.hit_pool is None
    with pytest.raises(RuntimeError, match="before the mesh was traced"):
        lazy.next_train(0)
    box = trimesh.creation.box(extents=(2 * BOX_HALF_SIZE,) * 3)
    model = SimpleNamespace(ray_caster=make_ray_caster(box.vertices, box.faces), config=SimpleNamespace(mesh_path=None))
    assert lazy.get_training_callbacks(SimpleNamespace(pipeline=SimpleNamespace(model=model))) == []
    assert torch.equal(lazy.hit_pool.indices, datamanager.hit_pool.indices)
    with pytest.raises(ValueError, match="needs a mesh"):
        make_datamanager(box_scene, None).get_training_callbacks(SimpleNamespace(pipeline=SimpleNamespace(model=None)))
