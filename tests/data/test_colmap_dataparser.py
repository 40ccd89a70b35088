"""nero-real / nero-custom on tiny numpy-written COLMAP folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.data.dataparsers.nero_colmap_dataparser import NeroCustomDataParserConfig, NeroRealDataParserConfig
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.colmap_io import read_point_cloud
from nero_fixtures import (
    HEIGHT,
    WIDTH,
    intrinsics,
    projection,
    write_colmap_scene,
    write_meta_info,
    write_ply_points,
    write_rgb,
)


def parse_custom(folder, split="train", **config):
    config.setdefault("max_resolution", None)
    return NeroCustomDataParserConfig(data=folder, **config).setup().get_dataparser_outputs(split)


def assert_normalised_frame(outputs, scene, folder):
    """The parsed cameras equal the scene's z-up normalised cameras; the object is in the unit sphere."""
    transform, scale = outputs.dataparser_transform.double().numpy(), outputs.dataparser_scale
    points = read_point_cloud(folder / "object_point_cloud.ply")
    normalised = scale * (points @ transform[:, :3].T + transform[:, 3])
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1).max(), 1.0, atol=1e-5)
    np.testing.assert_allclose((normalised.max(axis=0) + normalised.min(axis=0)) / 2, 0.0, atol=1e-5)
    # up -> +z, forward -> +x
    np.testing.assert_allclose(transform[:, :3] @ scene["up"], [0, 0, 1], atol=1e-5)
    forward = transform[:, :3] @ scene["forward"]
    np.testing.assert_allclose(forward / np.linalg.norm(forward), [1, 0, 0], atol=1e-5)
    for index, image_id in enumerate(outputs.metadata["image_ids"]):
        expected_center = camera_centers(scene["w2c"][image_id])
        np.testing.assert_allclose(outputs.cameras.camera_to_worlds[index, :, 3].numpy(), expected_center, atol=1e-4)


def test_custom_scene_with_meta_info(tmp_path):
    scene = write_colmap_scene(tmp_path, count=8)
    write_meta_info(tmp_path, scene["up"], scene["forward"] + 0.2 * scene["up"])
    outputs = parse_custom(tmp_path)
    val_outputs = parse_custom(tmp_path, "val")
    ids = outputs.metadata["image_ids"]
    assert ids == sorted(ids, key=int) and len(ids) == 7
    assert sorted(ids + val_outputs.metadata["image_ids"], key=int) == [str(i) for i in range(10, 18)]
    assert outputs.metadata["up_axis"] == "z" and outputs.metadata["dataset_format"] == "custom"
    assert outputs.metadata["photographer_light"] is True
    assert outputs.metadata["photographer_w2p"].shape == (7, 3, 4)
    assert torch.all(outputs.cameras.width == WIDTH) and outputs.cameras.width.dtype == torch.int64
    assert_normalised_frame(outputs, scene, tmp_path)

    # A known 3-D point is seen through nerfstudio's ray of the pixel it projects to.
    k = intrinsics()
    for index, image_id in enumerate(ids[:3]):
        w2c = scene["w2c"][image_id]
        row, col = 7, 20
        world_point = w2c[:, :3].T @ (2.0 * np.linalg.solve(k, [col + 0.5, row + 0.5, 1.0]) - w2c[:, 3])
        rays = outputs.cameras.generate_rays(camera_indices=index)
        to_point = world_point - rays.origins[row, col].numpy()
        assert np.linalg.norm(np.cross(rays.directions[row, col].numpy(), to_point)) < 1e-4
        # ... and the principal ray passes through the object centre.
        principal = outputs.cameras.generate_rays(index, coords=torch.tensor([[k[1, 2], k[0, 2]]], dtype=torch.float32))
        assert np.linalg.norm(np.cross(principal.directions[0].numpy(), -principal.origins[0].numpy())) < 1e-4


def test_custom_scene_estimates_up_forward_and_says_so(tmp_path, capsys):
    scene = write_colmap_scene(tmp_path, count=8, model="SIMPLE_RADIAL", model_folder="sparse/0")
    outputs = parse_custom(tmp_path, split_mode="all")
    log = capsys.readouterr().out
    assert "normal of the camera ring" in log and "were estimated" in log and "sparse/0" in log
    assert "SIMPLE_RADIAL" in log
    transform = outputs.dataparser_transform.double().numpy()
    np.testing.assert_allclose(transform[:, :3] @ scene["up"], [0, 0, 1], atol=1e-5)
    # forward points at the first camera (lowest COLMAP id): its centre has no normalised y component.
    first_center = outputs.cameras.camera_to_worlds[0, :, 3].numpy()
    assert abs(first_center[1]) < 1e-4 and first_center[0] > 0


def test_real_scene_uses_the_table_or_overrides(tmp_path):
    folder = tmp_path / "vase"
    scene = write_colmap_scene(folder, count=6, model="SIMPLE_PINHOLE", model_folder="sparse")
    table_outputs = NeroRealDataParserConfig(data=folder, max_resolution=None).setup().get_dataparser_outputs("train")
    assert table_outputs.metadata["dataset_format"] == "real"
    up = np.array([-0.01911, -0.738918, -0.673524])
    np.testing.assert_allclose(table_outputs.dataparser_transform[:, :3].double().numpy() @ up,
                               [0, 0, np.linalg.norm(up)], atol=1e-5)

    config = NeroRealDataParserConfig(data=folder, max_resolution=None, up=tuple(scene["up"]),
                                      forward=tuple(scene["forward"]))
    assert_normalised_frame(config.setup().get_dataparser_outputs("train"), scene, folder)

    other = tmp_path / "teapot"
    write_colmap_scene(other, count=6)
    with pytest.raises(NeroDataError, match="teapot: unknown GlossyReal object"):
        NeroRealDataParserConfig(data=other).setup().get_dataparser_outputs("train")


def test_raw_resolution_resizes_images_and_intrinsics(tmp_path):
    scene = write_colmap_scene(tmp_path, count=6, width=80, height=60)
    write_meta_info(tmp_path, scene["up"], scene["forward"])
    outputs = parse_custom(tmp_path, max_resolution=40)
    assert torch.all(outputs.cameras.width == 40) and torch.all(outputs.cameras.height == 30)
    for path in outputs.image_filenames:
        assert path.parent == tmp_path / "images_raw_40"
        with Image.open(path) as image:
            assert image.size == (40, 30) and image.mode == "RGB"
    index, image_id = 0, outputs.metadata["image_ids"][0]
    point = np.array([0.2, -0.3, 0.4])
    u, v = projection(scene["w2c"][image_id], intrinsics(80, 60), point)
    rays = outputs.cameras.generate_rays(index, coords=torch.tensor([[v / 2, u / 2]], dtype=torch.float32))
    to_point = point - rays.origins[0].numpy()
    assert np.linalg.norm(np.cross(rays.directions[0].numpy(), to_point)) < 1e-4


def test_rgba_photos_are_accepted(tmp_path, capsys):
    scene = write_colmap_scene(tmp_path, count=6)
    write_meta_info(tmp_path, scene["up"], scene["forward"])
    write_rgb(tmp_path / "images" / "img_001.png", channels=4)
    write_rgb(tmp_path / "images" / "img_002.png", channels=4)
    parse_custom(tmp_path, split_mode="all")
    assert capsys.readouterr().out.count("alpha channel") == 1


def _meta(scene, folder):
    write_meta_info(folder, scene["up"], scene["forward"])


@pytest.mark.parametrize(
    "damage, file_name, problem",
    [
        (lambda s, f: write_meta_info(f, s["up"], -2 * s["up"] + 0.01 * s["forward"]), "meta_info.txt", "parallel"),
        (lambda s, f: f.joinpath("meta_info.txt").write_text("0 0 1\n1 0\n"), "meta_info.txt", "three numbers"),
        (lambda s, f: (_meta(s, f), write_ply_points(f / "object_point_cloud.ply", np.zeros((0, 3)))),
         "object_point_cloud.ply", "no vertices"),
        (lambda s, f: (_meta(s, f), write_ply_points(f / "object_point_cloud.ply", np.eye(3))),
         "object_point_cloud.ply", "at least 4 points"),
        (lambda s, f: (_meta(s, f), f.joinpath("object_point_cloud.ply").write_text("ply\nnonsense\n")),
         "object_point_cloud.ply", "cannot read"),
        # a cloud of radius 4 leaves the cameras (at distance ~3.2) inside its bounding sphere
        (lambda s, f: (_meta(s, f), write_ply_points(f / "object_point_cloud.ply", _big_cloud(s))),
         "object_point_cloud.ply", "inside"),
        (lambda s, f: (_meta(s, f), (f / "images" / "img_003.png").unlink()), "img_003.png", "missing"),
        (lambda s, f: (_meta(s, f), write_rgb(f / "images" / "img_003.png", WIDTH + 2, HEIGHT)), "img_003.png",
         "differs from the size .* in .*cameras.bin"),
    ],
)
def test_bad_input_names_the_file(tmp_path, damage, file_name, problem):
    scene = write_colmap_scene(tmp_path, count=6)
    damage(scene, tmp_path)
    with pytest.raises(NeroDataError, match=f"{file_name}: .*{problem}"):
        parse_custom(tmp_path)


def _big_cloud(scene):
    """Cube corners of radius 4 in the normalised frame, written in COLMAP coordinates."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float) * 4 / np.sqrt(3)
    return corners @ scene["rotation"] / scene["scale"] + scene["center"]


def test_opencv_camera_photos_are_undistorted(tmp_path):
    """ns-process-data's COLMAP model (OPENCV, distorted photos) reads as is: the photos are undistorted once."""
    import cv2
    from PIL import Image

    write_colmap_scene(tmp_path, count=6, model="OPENCV")
    outputs = parse_custom(tmp_path, max_resolution=None, split_mode="all")
    assert all(path.parent == tmp_path / "images_undistorted" for path in outputs.image_filenames)
    k, coefficients = intrinsics(), np.array([-0.05, 0.01, 0.002, -0.001, 0.0])
    new_k, _ = cv2.getOptimalNewCameraMatrix(k, coefficients, (WIDTH, HEIGHT), 0.0, (WIDTH, HEIGHT))
    original = np.asarray(Image.open(tmp_path / "images" / outputs.image_filenames[0].name).convert("RGB"))
    expected = cv2.undistort(original, k, coefficients, None, new_k)
    np.testing.assert_array_equal(np.asarray(Image.open(outputs.image_filenames[0])), expected)
    np.testing.assert_allclose(outputs.cameras.fx[0].item(), new_k[0, 0], rtol=1e-5)


def test_unsupported_camera_model_and_missing_model(tmp_path):
    write_colmap_scene(tmp_path, count=6, model="FULL_OPENCV")
    with pytest.raises(NeroDataError, match="cameras.bin: .*FULL_OPENCV model"):
        parse_custom(tmp_path)
    with pytest.raises(NeroDataError, match="no COLMAP binary model"):
        parse_custom(tmp_path / "images")


def test_frame_precedence_flags_frame_file_nero_files_dataset_frame(tmp_path):
    """--frame-file beats NeRO's files, which beat the dataset's nero_frame.json; without any of them the frame is
    estimated (here from the cameras alone: the COLMAP model has no points) and saved for the run."""
    from nero_nerfstudio.core.keys import NeroKey
    from nero_nerfstudio.data.object_frame import ObjectFrame

    scene = write_colmap_scene(tmp_path / "obj", count=8)
    folder = tmp_path / "obj"
    write_meta_info(folder, scene["up"], scene["forward"])
    from_nero_files = parse_custom(folder, split_mode="all").metadata[NeroKey.OBJECT_FRAME]
    assert "object_point_cloud.ply" in from_nero_files.how["center"] and "meta_info.txt" in from_nero_files.how["up"]

    # A dataset nero_frame.json with another sphere and up loses to NeRO's files...
    other = ObjectFrame(center=from_nero_files.center + 0.1, radius=1.4 * from_nero_files.radius,
                        up=from_nero_files.forward, forward=from_nero_files.up)
    other.write(folder / "nero_frame.json")
    again = parse_custom(folder, split_mode="all").metadata[NeroKey.OBJECT_FRAME]
    np.testing.assert_allclose(again.center, from_nero_files.center)
    np.testing.assert_allclose(again.up, from_nero_files.up)
    # ... and --frame-file beats them (a broken object_point_cloud.ply is then not even read).
    other.write(tmp_path / "edited.json")
    (folder / "object_point_cloud.ply").write_text("ply\nnonsense\n")
    edited = parse_custom(folder, split_mode="all", frame_file=tmp_path / "edited.json")
    frame = edited.metadata[NeroKey.OBJECT_FRAME]
    np.testing.assert_allclose(frame.center, other.center)
    np.testing.assert_allclose(frame.up, other.up)
    assert edited.dataparser_scale == pytest.approx(1.0 / other.radius)

    # Without NeRO's files and a frame file: estimated from the cameras, said so.
    for name in ("object_point_cloud.ply", "meta_info.txt", "nero_frame.json"):
        (folder / name).unlink()
    estimated = parse_custom(folder, split_mode="all").metadata[NeroKey.OBJECT_FRAME]
    assert "a guess" in estimated.how["radius"] and "camera ring" in estimated.how["up"]
    np.testing.assert_allclose(np.abs(estimated.up @ scene["up"]), 1.0, atol=0.02)
