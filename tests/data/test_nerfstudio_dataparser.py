"""nero-nerfstudio: transforms.json as ns-process-data writes it (with and without applied_transform, the sparse
points in sparse_pc.ply or only in the COLMAP model), distorted photos, and the bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from nerfstudio.data.utils.colmap_parsing_utils import Point3D, write_points3D_binary
from nero_fixtures import OBJECT_RADIUS, SIZE, random_rotation, tabletop_capture, write_ply_points, write_rgb
from PIL import Image

from nero_nerfstudio.core.camera_conventions import opencv_w2c_to_opengl_c2w
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.data.dataparsers.nero_nerfstudio_dataparser import (
    LEGACY_APPLIED_TRANSFORM,
    NeroNerfstudioDataParserConfig,
)
from nero_nerfstudio.data.undistortion import UNDISTORTED_FOLDER

# ns-process-data's default: COLMAP (x, y, z) -> (x, z, -y).
NS_APPLIED_TRANSFORM = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0]])


def _write_capture(folder: Path, applied: str, points_in: str, seed: int = 0, distortion=None, count=None):
    """A tabletop capture (COLMAP world) written as transforms.json; returns the truth in the file's world."""
    w2c, intrinsics, sizes, points, truth = tabletop_capture(seed)
    if count is not None:
        w2c, intrinsics, sizes = w2c[:count], intrinsics[:count], sizes[:count]
    transform = {
        "ns": NS_APPLIED_TRANSFORM,
        "none": np.eye(4)[:3],
        "legacy": LEGACY_APPLIED_TRANSFORM,
        "random": np.concatenate([random_rotation(np.random.default_rng(7)), [[1.0], [-2.0], [0.5]]], axis=1),
    }[applied]
    to_file = lambda x: x @ transform[:, :3].T + transform[:, 3]

    (folder / "images").mkdir(parents=True)
    frames = []
    for index, pose in enumerate(w2c):
        c2w = opencv_w2c_to_opengl_c2w(pose)  # COLMAP world, OpenGL axes
        c2w_file = np.concatenate([transform[:, :3] @ c2w[:, :3], to_file(c2w[:, 3])[:, None]], axis=1)
        name = f"images/frame_{index + 1:05d}.png"
        write_rgb(folder / name, *SIZE, seed=index)
        frames.append({"file_path": name, "transform_matrix": np.concatenate([c2w_file, [[0, 0, 0, 1]]]).tolist()})
    k = intrinsics[0]
    meta = {"w": SIZE[0], "h": SIZE[1], "fl_x": k[0, 0], "fl_y": k[1, 1], "cx": k[0, 2], "cy": k[1, 2],
            "camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames}
    if distortion is not None:
        meta.update(distortion)
    if applied in ("ns", "random"):
        meta["applied_transform"] = transform.tolist()
    if points_in == "ply":
        write_ply_points(folder / "sparse_pc.ply", to_file(points))
        meta["ply_file_path"] = "sparse_pc.ply"
    elif points_in == "colmap":
        (folder / "colmap" / "sparse" / "0").mkdir(parents=True)
        write_points3D_binary(
            {i + 1: Point3D(id=i + 1, xyz=p, rgb=np.zeros(3, dtype=np.uint8), error=0.0,
                            image_ids=np.zeros(0, dtype=np.int64), point2D_idxs=np.zeros(0, dtype=np.int64))
             for i, p in enumerate(points)},
            folder / "colmap" / "sparse" / "0" / "points3D.bin",
        )
    (folder / "transforms.json").write_text(json.dumps(meta))
    return {"center": to_file(truth["center"]), "up": transform[:, :3] @ truth["up"], "radius": truth["radius"]}


def _parse(folder: Path, **options):
    config = NeroNerfstudioDataParserConfig(data=folder, max_resolution=None, split_mode="all", **options)
    return config.setup().get_dataparser_outputs("train")


@pytest.mark.parametrize("applied, points_in", [("ns", "ply"), ("none", "ply"), ("random", "colmap"),
                                                ("legacy", "colmap")])
def test_transforms_capture_gets_its_object_frame(tmp_path, applied, points_in):
    truth = _write_capture(tmp_path, applied, points_in)
    outputs = _parse(tmp_path)
    transform = outputs.dataparser_transform.double().numpy()
    scale = outputs.dataparser_scale
    center = scale * (transform[:, :3] @ truth["center"] + transform[:, 3])
    # The object's sphere holds the object, at most 1.5x its size; the table normal is +z.
    assert np.linalg.norm(center) + scale * truth["radius"] <= 1.0 + 1e-6
    assert scale * truth["radius"] >= 1.0 / 1.5
    up = transform[:, :3] @ truth["up"]
    assert np.degrees(np.arccos(np.clip(up[2], -1, 1))) < 2.0
    frame = outputs.metadata[NeroKey.OBJECT_FRAME]
    assert frame.table_plane is not None and outputs.metadata[NeroKey.DATASET_FORMAT] == "custom"
    # Every camera sees the object's centre in front of it, near the middle of the image.
    cameras = outputs.cameras
    for index in range(len(cameras)):
        c2w = cameras.camera_to_worlds[index].double().numpy()
        to_center = center - c2w[:, 3]
        assert to_center @ -c2w[:, 2] > 0.9 * np.linalg.norm(to_center)


def test_without_points_the_cameras_place_the_object(tmp_path, capsys):
    truth = _write_capture(tmp_path, "ns", "none")
    outputs = _parse(tmp_path)
    assert "a guess" in capsys.readouterr().out
    transform, scale = outputs.dataparser_transform.double().numpy(), outputs.dataparser_scale
    center = scale * (transform[:, :3] @ truth["center"] + transform[:, 3])
    assert np.linalg.norm(center) < 0.2


def test_distorted_photos_are_undistorted_once(tmp_path):
    distortion = {"k1": -0.08, "k2": 0.01, "p1": 0.001, "p2": -0.0005}
    _write_capture(tmp_path, "ns", "ply", distortion=distortion, count=8)
    frame_options = dict(object_center=(0.0, 0.0, 0.0), object_radius=0.5, up=(0.0, 1.0, 0.0), forward=(1.0, 0.0, 0.0))
    outputs = _parse(tmp_path, **frame_options)
    paths = outputs.image_filenames
    assert all(path.parent == tmp_path / UNDISTORTED_FOLDER for path in paths)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    k = np.array([[meta["fl_x"], 0, meta["cx"]], [0, meta["fl_y"], meta["cy"]], [0, 0, 1]])
    coefficients = np.array([-0.08, 0.01, 0.001, -0.0005, 0.0])
    # Cropped to the largest pinhole view with no empty corner; the cameras get that view's matrix.
    new_k, _ = cv2.getOptimalNewCameraMatrix(k, coefficients, SIZE, 0.0, SIZE)
    original = np.asarray(Image.open(tmp_path / "images" / paths[0].name).convert("RGB"))
    undistorted = np.asarray(Image.open(paths[0]))
    np.testing.assert_array_equal(undistorted, cv2.undistort(original, k, coefficients, None, new_k))
    assert not np.array_equal(undistorted, original)
    assert undistorted[[0, 0, -1, -1], [0, -1, 0, -1]].min() > 0  # no black corner
    np.testing.assert_allclose(outputs.cameras.fx[0].item(), new_k[0, 0], rtol=1e-5)
    np.testing.assert_allclose(outputs.cameras.cy[0].item(), new_k[1, 2], rtol=1e-5)
    mtime = paths[0].stat().st_mtime_ns
    _parse(tmp_path, **frame_options)
    assert paths[0].stat().st_mtime_ns == mtime  # reused, not rewritten
    # Other coefficients (SfM run again): the copies are made again.
    meta["k1"] = -0.02
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    _parse(tmp_path, **frame_options)
    assert paths[0].stat().st_mtime_ns != mtime


def _edit(key, value):
    def edit(folder: Path):
        meta = json.loads((folder / "transforms.json").read_text())
        meta[key] = value
        (folder / "transforms.json").write_text(json.dumps(meta))
    return edit


def _edit_frame(key, value):
    def edit(folder: Path):
        meta = json.loads((folder / "transforms.json").read_text())
        meta["frames"][2][key] = value
        (folder / "transforms.json").write_text(json.dumps(meta))
    return edit


@pytest.mark.parametrize(
    "damage, file_name, problem",
    [
        (lambda f: (f / "transforms.json").unlink(), "transforms.json", "not found"),
        (lambda f: (f / "transforms.json").write_text("{"), "transforms.json", "not a readable JSON"),
        (_edit("frames", []), "transforms.json", "non-empty 'frames'"),
        (_edit("camera_model", "OPENCV_FISHEYE"), "transforms.json", "OPENCV_FISHEYE is not supported"),
        (_edit("fl_x", None), "transforms.json", "'fl_x' is missing"),
        (_edit("fl_y", -3.0), "transforms.json", "must be positive"),
        (_edit("cx", 5000.0), "transforms.json", "outside the image"),
        (_edit_frame("transform_matrix", [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]), "transforms.json",
         "frame 2 .*no rotation"),
        (_edit_frame("transform_matrix", [[1, 0]]), "transforms.json", "frame 2 .*4x4"),
        (lambda f: (f / "images" / "frame_00004.png").unlink(), "frame_00004.png", "missing"),
        (lambda f: write_rgb(f / "images" / "frame_00004.png", 40, 30), "frame_00004.png", "differs from the size"),
        (_edit("applied_transform", [[1, 0, 0]]), "transforms.json", "'applied_transform' must be a 3x4"),
    ],
)
def test_bad_transforms_input_names_the_file(tmp_path, damage, file_name, problem):
    _write_capture(tmp_path, "random", "colmap")
    damage(tmp_path)
    with pytest.raises(NeroDataError, match=f"{file_name}: .*{problem}"):
        _parse(tmp_path)


def test_frame_file_and_flags_win_over_the_estimate(tmp_path):
    truth = _write_capture(tmp_path, "ns", "ply")
    estimated = _parse(tmp_path).metadata[NeroKey.OBJECT_FRAME]
    # An edited frame file in the dataset folder: a bigger sphere.
    edited = estimated.to_json() | {"radius": 2.0 * estimated.radius}
    (tmp_path / "nero_frame.json").write_text(json.dumps(edited))
    outputs = _parse(tmp_path)
    assert outputs.dataparser_scale == pytest.approx(1.0 / (2.0 * estimated.radius))
    assert "nero_frame.json" in outputs.metadata[NeroKey.OBJECT_FRAME].how["center"]
    # Flags win over the file.
    outputs = _parse(tmp_path, object_center=tuple(truth["center"]), object_radius=3.0 * OBJECT_RADIUS)
    assert outputs.dataparser_scale == pytest.approx(1.0 / (3.0 * OBJECT_RADIUS))
    with pytest.raises(NeroDataError, match="both --object-center and --object-radius"):
        _parse(tmp_path, object_radius=1.0)
