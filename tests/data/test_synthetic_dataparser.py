"""nero-synthetic on a tiny numpy-written GlossySynthetic folder."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.synthetic_io import load_depth_and_mask
from nero_fixtures import HEIGHT, WIDTH, intrinsics, write_rgb, write_synthetic_scene


def parse(folder, split="train", **config):
    return NeroSyntheticDataParserConfig(data=folder, **config).setup().get_dataparser_outputs(split)


def test_cameras_metadata_and_splits(tmp_path):
    poses = write_synthetic_scene(tmp_path, count=12)
    outputs = parse(tmp_path)
    val_outputs = parse(tmp_path, "val")
    ids = outputs.metadata["image_ids"]
    assert len(ids) == 11 and len(val_outputs.metadata["image_ids"]) == 1
    assert sorted(ids + val_outputs.metadata["image_ids"], key=int) == [str(k) for k in range(12)]
    assert ids == sorted(ids, key=int)

    cameras = outputs.cameras
    assert cameras.camera_to_worlds.shape == (11, 3, 4)
    assert cameras.width.dtype == torch.int64
    assert torch.all(cameras.width == WIDTH) and torch.all(cameras.height == HEIGHT)
    assert outputs.image_filenames[0] == tmp_path / f"{ids[0]}.png"
    assert outputs.metadata["depth_filenames"][0] == tmp_path / f"{ids[0]}-depth.png"
    assert outputs.metadata["up_axis"] == "y" and outputs.metadata["dataset_format"] == "synthetic"
    assert outputs.metadata["photographer_light"] is False
    assert outputs.metadata["photographer_w2p"].shape == (11, 3, 4)
    assert torch.equal(outputs.dataparser_transform, torch.eye(4)[:3]) and outputs.dataparser_scale == 1.0
    assert torch.equal(outputs.scene_box.aabb, torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))

    # nerfstudio's own pixel rays: pixel (row, col) passes through the 3-D point NeRO's K [R | t] maps to the pixel
    # centre (col + 0.5, row + 0.5).
    k = intrinsics()
    for index, image_id in enumerate(ids[:3]):
        w2c = poses[image_id]
        rays = cameras.generate_rays(camera_indices=index)
        np.testing.assert_allclose(rays.origins[0, 0].numpy(), camera_centers(w2c), atol=1e-5)
        row, col = 5, 23
        camera_point = 2.5 * np.linalg.solve(k, [col + 0.5, row + 0.5, 1.0])
        world_point = w2c[:, :3].T @ (camera_point - w2c[:, 3])
        to_point = world_point - rays.origins[row, col].numpy()
        direction = rays.directions[row, col].numpy()
        assert np.linalg.norm(np.cross(direction, to_point)) < 1e-4
        assert direction @ to_point > 0


def test_principal_ray_passes_through_the_object_centre(tmp_path):
    poses = write_synthetic_scene(tmp_path, count=4)
    outputs = parse(tmp_path)
    k = intrinsics()
    coords = torch.tensor([[k[1, 2], k[0, 2]]], dtype=torch.float32)  # (row, col) of the principal point
    for index, image_id in enumerate(outputs.metadata["image_ids"]):
        ray = outputs.cameras.generate_rays(camera_indices=index, coords=coords)
        origin, direction = ray.origins[0].numpy(), ray.directions[0].numpy()
        distance_to_centre = np.linalg.norm(np.cross(direction, -origin))
        assert distance_to_centre < 1e-5
        np.testing.assert_allclose(origin, camera_centers(poses[image_id]), atol=1e-5)


def test_scale_factor_and_test_split(tmp_path):
    write_synthetic_scene(tmp_path, count=8)
    outputs = parse(tmp_path, split_mode="test", scale_factor=0.5)
    assert outputs.metadata["image_ids"] == ["1", "6"]  # 0, 2, 3, 4, 5, 7 are NeRO test ids
    assert parse(tmp_path, "test", split_mode="test").metadata["image_ids"] == ["0", "2", "3", "4", "5", "7"]
    radii = outputs.cameras.camera_to_worlds[:, :, 3].norm(dim=-1)
    np.testing.assert_allclose(radii.numpy(), 0.5 * np.sqrt(10.0), atol=1e-5)
    assert outputs.dataparser_scale == 0.5


def test_depth_and_mask(tmp_path):
    write_synthetic_scene(tmp_path, count=1)
    depth, mask = load_depth_and_mask(tmp_path / "0-depth.png")
    assert depth.dtype == np.float32 and depth.shape == (HEIGHT, WIDTH)
    assert mask.sum() == 8 * 10 and np.allclose(depth[mask], 3.0, atol=1e-3) and np.allclose(depth[~mask], 15.0)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "bad-depth.png")
    with pytest.raises(NeroDataError, match="bad-depth.png: .*16-bit"):
        load_depth_and_mask(tmp_path / "bad-depth.png")


def test_rgba_images_are_accepted(tmp_path, capsys):
    write_synthetic_scene(tmp_path, count=4)
    write_rgb(tmp_path / "2.png", channels=4)
    write_rgb(tmp_path / "3.png", channels=4)
    outputs = parse(tmp_path, split_mode="test", split="test")
    assert outputs.metadata["image_ids"] == ["0", "2", "3"]
    assert capsys.readouterr().out.count("alpha channel") == 1  # two RGBA images, one warning


def _break_pickle(folder):
    (folder / "2-camera.pkl").write_bytes(b"not a pickle")


def _wrong_pickle_shapes(folder):
    with open(folder / "2-camera.pkl", "wb") as file:
        pickle.dump((np.eye(4), np.eye(3)), file)


def _single_array_pickle(folder):
    with open(folder / "2-camera.pkl", "wb") as file:
        pickle.dump(np.eye(3), file)


def _intrinsics(fx, cx):
    def damage(folder):
        with open(folder / "2-camera.pkl", "rb") as file:
            pose, intrinsics = pickle.load(file)
        intrinsics = np.array(intrinsics, dtype=np.float64)
        intrinsics[0, 0], intrinsics[0, 2] = fx, cx
        with open(folder / "2-camera.pkl", "wb") as file:
            pickle.dump((pose, intrinsics), file)

    return damage


def _missing_image(folder):
    (folder / "2.png").unlink()


def _corrupt_image(folder):
    (folder / "2.png").write_bytes(b"\x89PNG broken")


def _image_size(folder):
    Image.fromarray(np.zeros((HEIGHT + 2, WIDTH + 2, 3), dtype=np.uint8)).save(folder / "2.png")


def _depth_size(folder):
    Image.fromarray(np.zeros((HEIGHT + 1, WIDTH), dtype=np.uint16)).save(folder / "2-depth.png")


@pytest.mark.parametrize(
    "damage, file_name, problem",
    [
        (_break_pickle, "2-camera.pkl", "unpickle"),
        (_wrong_pickle_shapes, "2-camera.pkl", r"\(pose 3x4, K 3x3\)"),
        (_single_array_pickle, "2-camera.pkl", r"\(pose 3x4, K 3x3\)"),
        (_intrinsics(0.0, WIDTH / 2), "2-camera.pkl", r"focal length fx = 0, .*must be positive"),
        (_intrinsics(-50.0, WIDTH / 2), "2-camera.pkl", r"focal length fx = -50"),
        (_intrinsics(50.0, 3 * WIDTH), "2-camera.pkl", r"principal point .* far outside"),
        (_missing_image, "2.png", "missing"),
        (_corrupt_image, "2.png", "cannot read"),
        (_depth_size, "2-depth.png", "differs"),
        (_image_size, "2.png", r"image size .* differs from its depth map's and the other images'"),
    ],
)
def test_bad_input_names_the_file(tmp_path, damage, file_name, problem):
    write_synthetic_scene(tmp_path, count=4)
    damage(tmp_path)
    with pytest.raises(NeroDataError, match=f"{file_name}: .*{problem}"):
        parse(tmp_path, split_mode="test", split="test")  # ids 0, 2, 3


def test_folder_without_cameras_is_refused(tmp_path):
    with pytest.raises(NeroDataError, match="camera.pkl"):
        parse(tmp_path)
    with pytest.raises(NeroDataError, match="not found"):
        parse(tmp_path / "nope")
