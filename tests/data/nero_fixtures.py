"""Tiny NeRO datasets written with numpy for the parser tests."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
from nerfstudio.data.utils.colmap_parsing_utils import (
    Camera,
    Image as ColmapImage,
    rotmat2qvec,
    write_cameras_binary,
    write_images_binary,
)
from PIL import Image

WIDTH, HEIGHT = 32, 24


def look_at_w2c(center: np.ndarray, target: np.ndarray, world_up: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera ``[3, 4]`` of a camera at ``center`` looking at ``target``."""
    z_axis = (target - center) / np.linalg.norm(target - center)
    x_axis = np.cross(-world_up, z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    rotation = np.stack([x_axis, y_axis, z_axis])
    return np.concatenate([rotation, -(rotation @ center)[:, None]], axis=1)


def ring_centers(count: int, radius: float, height: float, up_axis: int) -> np.ndarray:
    """``[count, 3]`` camera centres on a horizontal ring around the origin (``up_axis`` 1 = y-up, 2 = z-up)."""
    angles = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False) + 0.3
    horizontal = [a for a in range(3) if a != up_axis]
    centers = np.zeros((count, 3))
    centers[:, horizontal[0]] = radius * np.cos(angles)
    centers[:, horizontal[1]] = radius * np.sin(angles)
    centers[:, up_axis] = height
    return centers


def intrinsics(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.array([[30.0, 0.0, width / 2.0], [0.0, 32.0, height / 2.0], [0.0, 0.0, 1.0]])


def write_rgb(path: Path, width: int = WIDTH, height: int = HEIGHT, channels: int = 3, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_synthetic_scene(folder: Path, count: int = 6) -> Dict[str, np.ndarray]:
    """GlossySynthetic layout, y-up, cameras on a ring looking at the origin. Returns the w2c and K per id."""
    folder.mkdir(parents=True, exist_ok=True)
    centers = ring_centers(count, radius=3.0, height=1.0, up_axis=1)
    poses = {}
    for k, center in enumerate(centers):
        w2c = look_at_w2c(center, np.zeros(3), np.array([0.0, 1.0, 0.0]))
        poses[str(k)] = w2c
        with open(folder / f"{k}-camera.pkl", "wb") as file:
            pickle.dump((w2c.astype(np.float32), intrinsics().astype(np.float32)), file)
        write_rgb(folder / f"{k}.png", seed=k)
        depth = np.full((HEIGHT, WIDTH), 65535, dtype=np.uint16)
        depth[8:16, 10:20] = int(3.0 / 15.0 * 65535)
        Image.fromarray(depth).save(folder / f"{k}-depth.png")
    return poses


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def write_ply_points(path: Path, points: np.ndarray) -> None:
    header = (
        f"ply\nformat ascii 1.0\nelement vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    path.write_text(header + "".join(f"{x} {y} {z}\n" for x, y, z in points))


def write_colmap_scene(
    folder: Path,
    count: int = 8,
    model: str = "PINHOLE",
    width: int = WIDTH,
    height: int = HEIGHT,
    model_folder: str = "colmap/sparse/0",
    seed: int = 0,
) -> Dict[str, object]:
    """GlossyReal/custom layout in a random COLMAP frame.

    The normalised frame is z-up with the object (cube corners and inner points, bounding sphere radius 1) at the
    origin and cameras on a ring of radius 3 at height 1. COLMAP coordinates are ``x_c = R0^T x_n / s0 + c0``.
    Returns the frame (``rotation``, ``center``, ``scale``) and the normalised w2c per image.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rotation0, center0, scale0 = random_rotation(rng), rng.normal(size=3), 0.5
    to_colmap = lambda x: x @ rotation0 / scale0 + center0  # noqa: E731  (row vectors: R0^T x)

    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float) / np.sqrt(3)
    points = np.concatenate([corners, rng.uniform(-0.5, 0.5, size=(50, 3))])
    write_ply_points(folder / "object_point_cloud.ply", to_colmap(points))

    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    model_dir = folder / model_folder
    model_dir.mkdir(parents=True, exist_ok=True)
    k = intrinsics(width, height)
    params = {
        "PINHOLE": [k[0, 0], k[1, 1], k[0, 2], k[1, 2]],
        "SIMPLE_PINHOLE": [k[0, 0], k[0, 2], k[1, 2]],
        "SIMPLE_RADIAL": [k[0, 0], k[0, 2], k[1, 2], 0.01],
        "OPENCV": [k[0, 0], k[1, 1], k[0, 2], k[1, 2], -0.05, 0.01, 0.002, -0.001],
        "FULL_OPENCV": [k[0, 0], k[1, 1], k[0, 2], k[1, 2]] + [0.0] * 8,
    }[model]
    write_cameras_binary({1: Camera(id=1, model=model, width=width, height=height, params=np.array(params))},
                         model_dir / "cameras.bin")

    normalised_w2c = {}
    images = {}
    centers = ring_centers(count, radius=3.0, height=1.0, up_axis=2)
    # COLMAP image ids deliberately not in file-name order.
    for index, center in enumerate(centers):
        image_id = 10 + count - 1 - index
        w2c = look_at_w2c(center, np.zeros(3), np.array([0.0, 0.0, 1.0]))
        normalised_w2c[str(image_id)] = w2c
        # x_cam = R x_n + t = R s0 R0 (x_c - c0) + t (camera units scaled by 1/s0, same image).
        rotation_c = w2c[:, :3] @ rotation0
        translation_c = (w2c[:, 3] - w2c[:, :3] @ rotation0 @ center0 * scale0) / scale0
        name = f"img_{index:03d}.png"
        write_rgb(images_dir / name, width, height, seed=index)
        images[image_id] = ColmapImage(
            id=image_id, qvec=rotmat2qvec(rotation_c), tvec=translation_c, camera_id=1, name=name,
            xys=np.zeros((0, 2)), point3D_ids=np.zeros(0, dtype=np.int64),
        )
    write_images_binary(images, model_dir / "images.bin")
    return {
        "rotation": rotation0, "center": center0, "scale": scale0, "w2c": normalised_w2c,
        "up": rotation0.T @ np.array([0.0, 0.0, 1.0]), "forward": rotation0.T @ np.array([1.0, 0.0, 0.0]),
    }


def write_meta_info(folder: Path, up: np.ndarray, forward: np.ndarray) -> None:
    folder.joinpath("meta_info.txt").write_text(" ".join(map(str, up)) + "\n" + " ".join(map(str, forward)) + "\n")


def projection(w2c: np.ndarray, k: np.ndarray, point: np.ndarray) -> Tuple[float, float]:
    """Continuous pixel ``(u, v)`` of a world point (pixel centres at i + 0.5)."""
    camera_point = w2c[:, :3] @ point + w2c[:, 3]
    uvw = k @ camera_point
    return uvw[0] / uvw[2], uvw[1] / uvw[2]


# A tabletop capture (table frame: the table is z = 0, the object a ball of radius 0.5 on it).
OBJECT_CENTER = np.array([0.0, 0.0, 0.5])
OBJECT_RADIUS = 0.5
SIZE = (320, 240)
"""Image size of :func:`tabletop_capture`."""


def tabletop_capture(seed: int, with_table: bool = True, with_object: bool = True):
    """Cameras on a handheld ring (elevation 15-55 deg, distance 3 +- 10 %) aimed near the object; sparse points on
    the object, the table, four props, two far walls and stray points; everything in a random similarity."""
    rng = np.random.default_rng(seed)
    count = 30
    azimuth = np.linspace(0, 2 * np.pi, count, endpoint=False) + rng.uniform(0, 0.1, count)
    elevation = np.radians(rng.uniform(15, 55, count))
    distance = 3.0 * rng.uniform(0.9, 1.1, count)
    centers = OBJECT_CENTER + distance[:, None] * np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], axis=-1
    )
    targets = OBJECT_CENTER + rng.normal(scale=0.05, size=(count, 3))
    w2c = np.stack([look_at_w2c(c, t, np.array([0.0, 0.0, 1.0])) for c, t in zip(centers, targets)])
    focal = 0.5 * SIZE[0] / np.tan(np.radians(25))
    intrinsics = np.tile(np.array([[focal, 0, SIZE[0] / 2], [0, focal, SIZE[1] / 2], [0, 0, 1]]), (count, 1, 1))

    parts = []
    if with_object:  # SfM points cover only some of a glossy surface: the upper, camera-facing side
        directions = rng.normal(size=(150, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        parts.append(OBJECT_CENTER + OBJECT_RADIUS * directions[directions[:, 2] > -0.6])
    if with_table:
        table = rng.uniform(-2.0, 2.0, size=(600, 2))
        table = table[np.linalg.norm(table, axis=1) > 0.45]  # the object hides the table under it
        parts.append(np.concatenate([table, rng.normal(scale=0.005, size=(len(table), 1))], axis=1))
        for angle in np.radians([20, 110, 200, 290]):  # props: small boxes 1.3 from the object
            prop = rng.uniform(-0.15, 0.15, size=(40, 3)) + [1.3 * np.cos(angle), 1.3 * np.sin(angle), 0.15]
            parts.append(prop)
    walls = [np.stack([np.full(200, 6.0), rng.uniform(-6, 6, 200), rng.uniform(-1, 3, 200)], axis=1)]
    walls.append(np.stack([rng.uniform(-6, 6, 200), np.full(200, -6.0), rng.uniform(-1, 3, 200)], axis=1))
    strays = rng.uniform(-4, 4, size=(15, 3))
    points = np.concatenate(parts + walls + [strays])

    # A random world frame (as SfM gives): x_world = s R x_table + t.
    rotation, scale, translation = random_rotation(rng), rng.uniform(0.3, 3.0), rng.normal(size=3) * 4

    def to_world(x):
        return scale * x @ rotation.T + translation

    world_w2c = np.concatenate(
        [w2c[:, :, :3] @ rotation.T, scale * w2c[:, :, 3:] - (w2c[:, :, :3] @ rotation.T @ translation)[:, :, None]],
        axis=-1,
    )
    truth = {"center": to_world(OBJECT_CENTER), "radius": scale * OBJECT_RADIUS, "up": rotation @ [0, 0, 1.0],
             "table_point": to_world(np.zeros(3)), "scale": scale}
    return world_w2c, intrinsics, [SIZE] * count, to_world(points), truth
