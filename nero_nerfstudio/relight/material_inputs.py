"""Meshes and materials handed to the Blender relighting backend, read and checked in the caller's Python.

Two inputs are accepted:

* a mesh (.ply/.obj) plus NeRO's per-vertex material folder (``metallic.npy`` ``[V, 1]``, ``roughness.npy``
  ``[V, 1]``, ``albedo.npy`` ``[V, 3]``, method.md §4.7). NeRO sRGB-encodes **all three** arrays before saving (its
  Blender script fed them through legacy vertex colours, which Blender decodes from sRGB), so they are decoded
  here: ``linear = srgb_to_linear(npy)``. The rows follow the PLY vertex order, so the mesh is read with
  ``process=False`` (no merging, no reordering) and Blender's mesh is built from these very arrays.
* a textured .glb (glTF 2.0 metallic-roughness): ``baseColorTexture`` (sRGB) times ``baseColorFactor``,
  ``metallicRoughnessTexture`` (linear; G = roughness, B = metallic) times ``roughnessFactor`` /
  ``metallicFactor``. Vertices are taken as stored (no glTF y-up -> z-up conversion; see ``--up-axis``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.color import srgb_to_linear

MESH_SUFFIXES = (".ply", ".obj")
NPY_CHANNELS = {"metallic": 1, "roughness": 1, "albedo": 3}
"""NeRO's material files and their number of columns."""


@dataclass(frozen=True)
class VertexMaterials:
    """Linear per-vertex materials, rows in the mesh's vertex order."""

    albedo: np.ndarray
    """``[num_vertices, 3]`` linear RGB base colour."""
    metallic: np.ndarray
    """``[num_vertices]``."""
    roughness: np.ndarray
    """``[num_vertices]`` Blender's (perceptual) roughness, i.e. sqrt of the GGX alpha."""


@dataclass(frozen=True)
class TexturedMesh:
    """A glTF metallic-roughness mesh, as stored in the .glb."""

    vertices: np.ndarray
    """``[num_vertices, 3]``."""
    faces: np.ndarray
    """``[num_faces, 3]``."""
    uv: np.ndarray
    """``[num_vertices, 2]`` texture coordinates, origin at the image's bottom-left (Blender/OpenGL)."""
    base_color_texture: Optional[Image.Image]
    """sRGB-encoded base colour, or None (factor only)."""
    metallic_roughness_texture: Optional[Image.Image]
    """Linear; G = roughness, B = metallic; or None (factors only)."""
    base_color_factor: Tuple[float, float, float, float]
    """Linear RGBA multiplier of the base colour."""
    metallic_factor: float
    roughness_factor: float


def load_mesh(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Vertices ``[V, 3]`` float64 and triangles ``[F, 3]`` int64 of a .ply/.obj, in the file's vertex order."""
    from nero_nerfstudio.utils.mesh_io import load_triangle_mesh

    path = Path(path)
    if not path.is_file():
        raise NeroDataError(path, "mesh file does not exist")
    # A .glb carries its own materials: relight takes it as --material, not as --mesh.
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise NeroDataError(path, f"mesh must be one of {', '.join(MESH_SUFFIXES)} (or pass a .glb as --material)")
    mesh = load_triangle_mesh(path)
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def decode_nero_materials(metallic: np.ndarray, roughness: np.ndarray, albedo: np.ndarray) -> VertexMaterials:
    """NeRO's sRGB-encoded exports (``[V, 1]``, ``[V, 1]``, ``[V, 3]``) -> linear values clipped to ``[0, 1]``."""

    def decode(values: np.ndarray) -> np.ndarray:
        return np.clip(srgb_to_linear(np.clip(values.astype(np.float64), 0.0, 1.0)), 0.0, 1.0)

    return VertexMaterials(
        albedo=decode(albedo), metallic=decode(metallic)[:, 0], roughness=decode(roughness)[:, 0]
    )


def load_nero_materials(folder: Path, num_vertices: int) -> VertexMaterials:
    """Read and decode ``metallic.npy``, ``roughness.npy`` and ``albedo.npy`` of a NeRO material folder.

    Raises:
        NeroDataError: a file is missing or unreadable, has the wrong shape, holds non-finite values, or its
            number of rows differs from the mesh's number of vertices.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NeroDataError(folder, "material folder does not exist (expected metallic.npy, roughness.npy, albedo.npy)")
    arrays = {}
    for name, channels in NPY_CHANNELS.items():
        path = folder / f"{name}.npy"
        if not path.is_file():
            raise NeroDataError(path, "material file is missing")
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise NeroDataError(path, f"cannot read .npy ({error})") from error
        if values.ndim == 1 and channels == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != channels:
            raise NeroDataError(path, f"expected shape [num_vertices, {channels}], got {list(values.shape)}")
        if values.shape[0] != num_vertices:
            raise NeroDataError(
                path, f"has {values.shape[0]} rows but the mesh has {num_vertices} vertices (one row per vertex)"
            )
        if not np.all(np.isfinite(values)):
            raise NeroDataError(path, "contains NaN or infinite values")
        arrays[name] = values
    return decode_nero_materials(arrays["metallic"], arrays["roughness"], arrays["albedo"])


def load_glb(path: Path) -> TexturedMesh:
    """The single textured mesh of a .glb with a glTF metallic-roughness material."""
    import trimesh
    from trimesh.visual.material import PBRMaterial

    path = Path(path)
    if not path.is_file():
        raise NeroDataError(path, "material .glb does not exist")
    try:
        scene = trimesh.load(path, force="scene", process=False)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise NeroDataError(path, f"cannot read glTF ({error})") from error
    meshes = [geometry for geometry in scene.dump() if isinstance(geometry, trimesh.Trimesh)]
    if len(meshes) != 1:
        raise NeroDataError(path, f"expected exactly one mesh, found {len(meshes)}")
    mesh = meshes[0]
    uv = getattr(mesh.visual, "uv", None)
    material = getattr(mesh.visual, "material", None)
    if not isinstance(material, PBRMaterial):
        raise NeroDataError(path, "the mesh has no glTF metallic-roughness (PBR) material")
    has_texture = material.baseColorTexture is not None or material.metallicRoughnessTexture is not None
    if uv is None and has_texture:
        raise NeroDataError(path, "the mesh has textures but no texture coordinates (TEXCOORD_0)")
    if uv is None:
        uv = np.zeros((len(mesh.vertices), 2))
    # trimesh stores baseColorFactor as uint8 RGBA; glTF defaults: factors 1.
    factor = material.baseColorFactor
    base_color_factor = (1.0, 1.0, 1.0, 1.0) if factor is None else tuple(float(c) / 255.0 for c in factor)
    return TexturedMesh(
        vertices=np.asarray(mesh.vertices, dtype=np.float64),
        faces=np.asarray(mesh.faces, dtype=np.int64),
        uv=np.asarray(uv, dtype=np.float64),
        base_color_texture=material.baseColorTexture,
        metallic_roughness_texture=material.metallicRoughnessTexture,
        base_color_factor=base_color_factor,  # type: ignore[arg-type]
        metallic_factor=1.0 if material.metallicFactor is None else float(material.metallicFactor),
        roughness_factor=1.0 if material.roughnessFactor is None else float(material.roughnessFactor),
    )
