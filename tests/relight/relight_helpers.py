"""Inputs for the relighting tests: meshes, NeRO material folders, glTF files, silhouettes."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Tuple

import numpy as np
import trimesh
from PIL import Image
from skimage.draw import polygon

from nero_nerfstudio.relight.cameras import project_points
from nero_nerfstudio.utils.color import linear_to_srgb

MaterialFn = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray, np.ndarray]]
"""uv ``[N, 2]`` -> linear albedo ``[N, 3]``, metallic ``[N]``, roughness ``[N]``."""


def offset_box() -> trimesh.Trimesh:
    """An elongated box away from the origin: a wrong axis, sign or lens shift moves its silhouette."""
    box = trimesh.creation.box(extents=(0.9, 0.35, 0.5))
    box.apply_translation((0.25, 0.15, -0.1))
    return box


def uv_sphere(radius: float = 0.8) -> Tuple[trimesh.Trimesh, np.ndarray]:
    """An icosphere with spherical texture coordinates ``[V, 2]`` (u along the longitude, v up the +z latitude)."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    vertices = np.asarray(sphere.vertices)
    u = 0.5 + np.arctan2(vertices[:, 1], vertices[:, 0]) / (2 * np.pi)
    v = 0.5 + np.arcsin(np.clip(vertices[:, 2] / radius, -1, 1)) / np.pi
    return sphere, np.stack([u, v], axis=-1)


def constant_material(albedo: Tuple[float, float, float], metallic: float, roughness: float) -> MaterialFn:
    def material(uv: np.ndarray):
        count = len(uv)
        return np.tile(np.asarray(albedo, float), (count, 1)), np.full(count, metallic), np.full(count, roughness)

    return material


def smooth_material(uv: np.ndarray):
    """Linear in uv, so per-vertex interpolation and texture lookups agree: metallic up v, roughness along u."""
    u, v = uv[:, 0], uv[:, 1]
    albedo = np.stack([0.2 + 0.6 * u, 0.3 + 0.5 * v, np.full_like(u, 0.6)], axis=-1)
    return albedo, v, 0.15 + 0.7 * u


def write_nero_materials(folder: Path, uv: np.ndarray, material: MaterialFn) -> Path:
    """Write ``metallic.npy`` ``[V, 1]``, ``roughness.npy`` ``[V, 1]``, ``albedo.npy`` ``[V, 3]``, sRGB-encoded as NeRO."""
    folder.mkdir(parents=True, exist_ok=True)
    albedo, metallic, roughness = material(uv)
    np.save(folder / "albedo.npy", linear_to_srgb(albedo).astype(np.float32))
    np.save(folder / "metallic.npy", linear_to_srgb(metallic[:, None]).astype(np.float32))
    np.save(folder / "roughness.npy", linear_to_srgb(roughness[:, None]).astype(np.float32))
    return folder


def write_glb(path: Path, mesh: trimesh.Trimesh, uv: np.ndarray, material: MaterialFn, size: int = 64) -> Path:
    """A .glb whose textures hold ``material`` as glTF defines: sRGB base colour, G = roughness, B = metallic."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    texel_uv = np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=-1).reshape(-1, 2)  # row 0 = top
    albedo, metallic, roughness = material(texel_uv)
    base_color = np.round(255 * linear_to_srgb(albedo)).reshape(size, size, 3).astype(np.uint8)
    metallic_roughness = np.stack(
        [np.zeros_like(metallic), roughness, metallic], axis=-1
    )  # R is glTF's occlusion slot: unused
    metallic_roughness = np.round(255 * metallic_roughness).reshape(size, size, 3).astype(np.uint8)
    pbr = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(base_color),
        metallicRoughnessTexture=Image.fromarray(metallic_roughness),
        metallicFactor=1.0,
        roughnessFactor=1.0,
    )
    textured = trimesh.Trimesh(
        mesh.vertices, mesh.faces, visual=trimesh.visual.TextureVisuals(uv=uv, material=pbr), process=False
    )
    textured.export(path)
    return path


def write_camera_folder(folder: Path, w2c: np.ndarray, intrinsics: np.ndarray, width: int, height: int) -> Path:
    """A GlossySynthetic-style folder of ``<k>-camera.pkl`` and blank ``<k>.png`` (for the image size)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, pose in enumerate(w2c):
        with open(folder / f"{index}-camera.pkl", "wb") as file:
            pickle.dump((pose.astype(np.float32), intrinsics.astype(np.float32)), file)
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(folder / f"{index}.png")
    return folder


def projected_silhouette(
    vertices: np.ndarray, faces: np.ndarray, w2c: np.ndarray, intrinsics: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Boolean ``[H, W]``: pixels whose centre lies inside a projected triangle."""
    pixels = project_points(vertices, w2c, intrinsics) - 0.5  # skimage puts pixel centres at integers
    mask = np.zeros((height, width), dtype=bool)
    for triangle in faces:
        rows, cols = polygon(pixels[triangle, 1], pixels[triangle, 0], shape=(height, width))
        mask[rows, cols] = True
    return mask


def read_rgba(path: Path) -> np.ndarray:
    """``[H, W, 4]`` float in ``[0, 1]``."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0


def iou(first: np.ndarray, second: np.ndarray) -> float:
    return float((first & second).sum() / max((first | second).sum(), 1))
