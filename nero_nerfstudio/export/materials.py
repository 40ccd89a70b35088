"""Stage II material export: NeRO's per-vertex ``.npy`` files, and baked PBR textures (glTF binary and OBJ + MTL).

Everything is written against a ``MaterialFn`` (points in the normalised frame -> linear metallic, perceptual
roughness ``sqrt(alpha)`` and albedo), so the export does not depend on how the Stage II model is built; the
``ExportMaterials`` command plugs in ``model.material_fn`` of a trained ``nero-material`` run.

Files written to the output folder:

* per vertex (NeRO-compatible, method.md §4.7): ``metallic.npy`` ``[V, 1]``, ``roughness.npy`` ``[V, 1]``,
  ``albedo.npy`` ``[V, 3]``, float32, **all three sRGB-encoded** (NeRO pre-encodes because Blender decodes vertex
  colours from sRGB), in the vertex order of ``mesh.ply`` (the mesh, copied; read it without merging vertices:
  ``trimesh.load(path, process=False)``, or open3d), plus ``materials.json`` describing this;
* textures (beyond NeRO): ``material.glb`` (glTF metallic-roughness material), ``material.obj`` + ``material.mtl``,
  ``albedo.png`` (sRGB), ``metallic.png`` and ``roughness.png`` (linear), ``materials_preview.png``, and
  ``textures.json``. The textured mesh may be decimated first, and a z-up frame is turned +y up for glTF/OBJ;
* the learned environment light (:mod:`~nero_nerfstudio.export.environment`): ``environment.hdr`` and
  ``environment.png``, for ``nero-relight --hdr``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Literal, Optional, Union

import numpy as np
import torch
import trimesh
from jaxtyping import Float
from PIL import Image, ImageDraw
from rich.console import Console

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.export.environment import DEFAULT_ENVIRONMENT_HEIGHT, EnvironmentFn, environment_map
from nero_nerfstudio.export.mesh import load_dataparser_transform, transform_to_normalized_frame
from nero_nerfstudio.export.material_query import DEFAULT_BATCH_SIZE, MaterialFn, MaterialFnError, query_materials
from nero_nerfstudio.export.uv_baking import BakedMaterials, bake_material_maps
from nero_nerfstudio.export.xatlas_unwrap import UnwrapError
from nero_nerfstudio.utils.color import linear_to_srgb
from nero_nerfstudio.utils.io import atomic_path, atomic_write_bytes
from nero_nerfstudio.utils.mesh_io import load_triangle_mesh

CONSOLE = Console()

MATERIAL_NAME = "nero_material"
PREVIEW_TILE_SIZE = 256
PREVIEW_LABEL_HEIGHT = 16
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation (-90 deg about x) taking a z-up frame to glTF's and OBJ's +y up: ``(x, y, z) -> (x, z, -y)``."""
DEFAULT_TEXTURE_MAX_FACES = 100_000
"""xatlas took about a minute on a 100k-face mesh on a shared 2-core machine, and over 15 minutes on 220k faces."""
NORMALIZED_FRAME_RADIUS = 1.01
"""Largest vertex radius accepted (the normalised frame puts the object inside the unit sphere; 1 % slack)."""


def decimate_mesh(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation (open3d) down to ``max_faces`` faces; ``mesh`` itself if it has no more than that."""
    if len(mesh.faces) <= max_faces:
        return mesh
    import open3d as o3d  # pylint: disable=import-outside-toplevel  # slow to import; only needed here

    dense = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.faces))
    decimated = dense.simplify_quadric_decimation(target_number_of_triangles=max_faces)
    return trimesh.Trimesh(np.asarray(decimated.vertices), np.asarray(decimated.triangles), process=False)


def check_in_normalized_frame(mesh: trimesh.Trimesh, path: Path) -> None:
    """Fail clearly on a mesh that sticks out of the unit sphere once in the run's normalised frame: the material
    function is only trained inside it, so the mesh belongs to another scene (or was exported with --frame
    normalized and then transformed a second time)."""
    radius = float(np.linalg.norm(np.asarray(mesh.vertices), axis=-1).max())
    if radius > NORMALIZED_FRAME_RADIUS:
        raise NeroDataError(
            path,
            f"in the run's normalised frame the mesh reaches radius {radius:.3f}, outside the unit sphere the "
            "materials live in; pass the dataset-frame mesh of this scene (nero-export mesh's default)",
        )


def _write_json(path: Path, content: dict) -> None:
    atomic_write_bytes(path, (json.dumps(content, indent=2) + "\n").encode())


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp_path:
        np.save(tmp_path, array)


def _save_png(path: Path, image: Image.Image) -> None:
    with atomic_path(path) as tmp_path:
        image.save(tmp_path, format="PNG")


def export_vertex_materials(
    mesh: trimesh.Trimesh,
    material_fn: MaterialFn,
    output_dir: Union[str, Path],
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Union[str, torch.device] = "cpu",
) -> Dict[str, Path]:
    """Write NeRO's per-vertex material files (method.md §4.7) and a copy of the mesh into ``output_dir``.

    ``metallic.npy`` ``[V, 1]``, ``roughness.npy`` ``[V, 1]`` (of ``sqrt(alpha)``) and ``albedo.npy`` ``[V, 3]`` are
    float32 and **sRGB-encoded** (``linear_to_srgb`` of the linear values, as NeRO writes them; decode with
    ``srgb_to_linear``). Row ``i`` belongs to vertex ``i`` of ``mesh.ply``, which must be read without merging
    vertices (``trimesh.load(path, process=False)``, or open3d). ``materials.json`` records this.

    Args:
        mesh: the Stage II mesh in the normalised frame (the frame ``material_fn`` expects), in the vertex order
            it was loaded with (``load_triangle_mesh``).
        material_fn: see ``MaterialFn``.
        output_dir: created if needed; files are written atomically.
        batch_size: vertices per ``material_fn`` call.
        device: where the points are sent.

    Returns:
        File role -> path.
    """
    output_dir = Path(output_dir)
    materials = query_materials(
        material_fn, np.asarray(mesh.vertices), batch_size=batch_size, device=device, description="Vertex materials"
    )
    paths = {}
    for name, values in materials.items():
        paths[name] = output_dir / f"{name}.npy"
        _save_npy(paths[name], linear_to_srgb(values).astype(np.float32))
    paths["mesh"] = output_dir / "mesh.ply"
    with atomic_path(paths["mesh"]) as tmp_path:
        mesh.export(tmp_path, file_type="ply")
    paths["description"] = output_dir / "materials.json"
    _write_json(
        paths["description"],
        {
            "encoding": "srgb",
            "encoding_note": "all three arrays hold linear_to_srgb(value), as NeRO's extract_materials.py writes them",
            "roughness": "sqrt(alpha)",
            "roughness_note": "perceptual roughness; the Stage II network predicts the GGX alpha",
            "vertex_count": int(len(mesh.vertices)),
            "face_count": int(len(mesh.faces)),
            "mesh": paths["mesh"].name,
            "vertex_order": "as stored in mesh.ply; load with trimesh.load(path, process=False) or open3d",
            "frame": "normalized",
            "files": {
                name: {"file": f"{name}.npy", "shape": [len(mesh.vertices), values.shape[1]], "dtype": "float32"}
                for name, values in materials.items()
            },
        },
    )
    return paths


def export_environment(
    output_dir: Path,
    environment_fn: EnvironmentFn,
    up_axis: str,
    height: int = DEFAULT_ENVIRONMENT_HEIGHT,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Union[str, torch.device] = "cpu",
) -> Dict[str, Path]:
    """Write ``environment.hdr`` (linear, Radiance RGBE) and ``environment.png`` (sRGB, clipped at 1) of the
    ``height x 2 height`` map of ``environment_fn`` (:func:`~nero_nerfstudio.export.environment.environment_map`)."""
    import cv2  # pylint: disable=import-outside-toplevel  # OpenCV writes Radiance .hdr; imported only here

    radiance = environment_map(environment_fn, up_axis, height, batch_size, device)
    paths = {"environment": output_dir / "environment.hdr", "environment_preview": output_dir / "environment.png"}
    with atomic_path(paths["environment"]) as tmp_path:
        if not cv2.imwrite(str(tmp_path), np.ascontiguousarray(radiance[..., ::-1])):  # OpenCV wants BGR
            raise NeroDataError(paths["environment"], "OpenCV could not write this Radiance .hdr file")
    _save_png(paths["environment_preview"], Image.fromarray(encode_8bit(linear_to_srgb(radiance)), mode="RGB"))
    return paths


def encode_8bit(values: Float[np.ndarray, "*batch"]) -> np.ndarray:
    """Values in [0, 1] -> uint8 with rounding."""
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def texture_images(baked: BakedMaterials) -> Dict[str, Image.Image]:
    """The 8-bit images written for ``baked``.

    * ``albedo``: sRGB-encoded RGB (glTF ``baseColorTexture`` and MTL ``map_Kd`` are sRGB);
    * ``metallic``, ``roughness``: linear greyscale (non-colour data);
    * ``metallic_roughness``: glTF packing, R = 255 (unused), G = roughness, B = metallic, linear.
    """
    albedo = encode_8bit(linear_to_srgb(baked.maps["albedo"]))
    metallic = encode_8bit(baked.maps["metallic"][..., 0])
    roughness = encode_8bit(baked.maps["roughness"][..., 0])
    packed = np.stack([np.full_like(metallic, 255), roughness, metallic], axis=-1)
    return {
        "albedo": Image.fromarray(albedo, mode="RGB"),
        "metallic": Image.fromarray(metallic, mode="L"),
        "roughness": Image.fromarray(roughness, mode="L"),
        "metallic_roughness": Image.fromarray(packed, mode="RGB"),
    }


def textured_mesh(
    mesh: trimesh.Trimesh, baked: BakedMaterials, images: Dict[str, Image.Image], up_axis: Literal["y", "z"] = "y"
) -> trimesh.Trimesh:
    """The mesh split along the UV seams, with uvs, smooth normals of the unsplit mesh and a PBR material.

    A z-up mesh is rotated by ``Z_UP_TO_Y_UP``, because glTF and OBJ viewers (and Blender's importers, which turn
    +y up into Blender's +z up) expect +y up.
    """
    material = trimesh.visual.material.PBRMaterial(
        name=MATERIAL_NAME,
        baseColorTexture=images["albedo"],
        metallicRoughnessTexture=images["metallic_roughness"],
        metallicFactor=1.0,
        roughnessFactor=1.0,
    )
    vertex_map = baked.atlas.vertex_map
    to_y_up = Z_UP_TO_Y_UP if up_axis == "z" else np.eye(3)
    return trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices)[vertex_map] @ to_y_up.T,
        faces=baked.atlas.faces,
        vertex_normals=np.asarray(mesh.vertex_normals)[vertex_map] @ to_y_up.T,
        visual=trimesh.visual.TextureVisuals(uv=baked.atlas.uv, material=material),
        process=False,
    )


def material_preview(images: Dict[str, Image.Image], tile_size: int = PREVIEW_TILE_SIZE) -> Image.Image:
    """Albedo, metallic and roughness maps side by side, labelled, each ``tile_size``² at most."""
    names = ("albedo", "metallic", "roughness")
    tile = min(tile_size, images["albedo"].width)
    preview = Image.new("RGB", (tile * len(names), tile + PREVIEW_LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(preview)
    for column, name in enumerate(names):
        preview.paste(images[name].convert("RGB").resize((tile, tile), Image.BILINEAR), (column * tile, 0))
        draw.text((column * tile + 4, tile + 2), name, fill=(0, 0, 0))
    return preview


def _mtl_text(images: Dict[str, str]) -> str:
    """MTL for the OBJ: ``map_Kd`` for every reader, and the PBR extension (``Pm``/``Pr``/``map_Pm``/``map_Pr``)
    read by Blender's OBJ importer. The factors are 1 because the maps hold the values."""
    return (
        "# nero-nerfstudio material export: albedo.png is sRGB, metallic.png and roughness.png are linear\n"
        f"newmtl {MATERIAL_NAME}\n"
        "Kd 1.0 1.0 1.0\n"
        "Pm 1.0\n"
        "Pr 1.0\n"
        f"map_Kd {images['albedo']}\n"
        f"map_Pm {images['metallic']}\n"
        f"map_Pr {images['roughness']}\n"
    )


def export_texture_materials(
    mesh: trimesh.Trimesh,
    material_fn: MaterialFn,
    output_dir: Union[str, Path],
    texture_size: int = 1024,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Union[str, torch.device] = "cpu",
    up_axis: Literal["y", "z"] = "y",
    max_faces: Optional[int] = None,
) -> Dict[str, Path]:
    """Bake ``material_fn`` into UV maps and write ``material.glb``, ``material.obj`` + ``.mtl`` and the PNGs.

    Args:
        mesh: the Stage II mesh in the normalised frame (the frame ``material_fn`` expects).
        material_fn: see ``MaterialFn``.
        output_dir: created if needed; files are written atomically.
        texture_size: width and height of every map.
        batch_size: texels per ``material_fn`` call.
        device: where the points are sent.
        up_axis: the normalised frame's up axis (metadata ``up_axis``); "z" rotates the .glb and .obj to +y up.
        max_faces: decimate the mesh to this many faces first (xatlas time grows fast with the face count, and
            viewers load light meshes faster); None keeps every face.

    Returns:
        File role -> path.
    """
    output_dir = Path(output_dir)
    if max_faces is not None and len(mesh.faces) > max_faces:
        with CONSOLE.status(f"Decimating {len(mesh.faces)} faces to {max_faces} for the textured mesh"):
            mesh = decimate_mesh(mesh, max_faces)
    baked = bake_material_maps(
        np.asarray(mesh.vertices), np.asarray(mesh.faces), material_fn, texture_size, batch_size, device
    )
    images = texture_images(baked)
    paths = {name: output_dir / f"{name}.png" for name in ("albedo", "metallic", "roughness")}
    for name, path in paths.items():
        _save_png(path, images[name])
    paths["preview"] = output_dir / "materials_preview.png"
    _save_png(paths["preview"], material_preview(images))

    textured = textured_mesh(mesh, baked, images, up_axis)
    paths["glb"] = output_dir / "material.glb"
    with atomic_path(paths["glb"]) as tmp_path:
        textured.export(tmp_path, file_type="glb", include_normals=True)
    paths["mtl"] = output_dir / "material.mtl"
    obj_text, _ = trimesh.exchange.obj.export_obj(
        textured, include_normals=True, include_texture=True, return_texture=True, mtl_name=paths["mtl"].name
    )
    map_names = {name: paths[name].name for name in ("albedo", "metallic", "roughness")}
    atomic_write_bytes(paths["mtl"], _mtl_text(map_names).encode())
    paths["obj"] = output_dir / "material.obj"
    atomic_write_bytes(paths["obj"], obj_text.encode())

    paths["description"] = output_dir / "textures.json"
    _write_json(
        paths["description"],
        {
            "texture_size": texture_size,
            "face_count": int(len(mesh.faces)),
            "chart_coverage": float(baked.chart_mask.mean()),
            "albedo.png": "sRGB-encoded 8-bit RGB (linear albedo passed through the sRGB curve)",
            "metallic.png": "linear 8-bit greyscale",
            "roughness.png": "linear 8-bit greyscale of sqrt(alpha) (perceptual roughness)",
            "material.glb": "glTF 2.0 metallic-roughness: baseColorTexture sRGB, metallicRoughnessTexture linear "
            "(G = roughness, B = metallic)",
            "material.obj": "OBJ + material.mtl (map_Kd albedo.png; map_Pm metallic.png, map_Pr roughness.png)",
            "frame": "normalized" if up_axis == "y" else "normalized, z-up turned +y up: (x, y, z) -> (x, z, -y)",
        },
    )
    return paths


@dataclass
class ExportMaterials:
    """Export the Stage II materials: NeRO's per-vertex .npy files, baked textures (glTF binary, OBJ, PNGs) and the
    learned environment light (.hdr, .png)."""

    load_config: Path
    """The nero-material run's config.yml (its latest checkpoint is used)."""
    output_dir: Path
    """Folder for every file (created if needed)."""
    mesh_path: Optional[Path] = None
    """Mesh to export on, in the dataset frame like nero-export mesh writes it. Default: the mesh the run was
    trained on (model.config.mesh_path). The export is written in the run's normalised frame."""
    texture_size: int = 1024
    """Width and height of the baked texture maps."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Points per material query (lower it if memory runs out)."""
    bake_textures: bool = True
    """Also UV-unwrap and bake textures (glb, obj, png). False: only NeRO's per-vertex .npy files."""
    texture_max_faces: Optional[int] = DEFAULT_TEXTURE_MAX_FACES
    """The textured mesh (glb, obj) is decimated to at most this many faces: xatlas needs minutes on meshes with
    hundreds of thousands of faces. None: keep every face. The .npy files always use the full mesh."""
    environment_height: int = DEFAULT_ENVIRONMENT_HEIGHT
    """Rows of ``environment.hdr``, the learned environment light as an equirectangular map in the frame
    ``nero-relight`` renders in (``--hdr environment.hdr`` relights under the light the materials were learned
    with); twice as many columns. 0: no environment files."""

    def main(self) -> None:
        """Load the run, export per-vertex materials and textures, print what was written."""
        max_faces_ok = self.texture_max_faces is None or self.texture_max_faces >= 1
        if self.texture_size < 8 or self.batch_size < 1 or not max_faces_ok or self.environment_height < 0:
            raise SystemExit(
                f"nero-export materials: --texture-size must be >= 8, --batch-size and --texture-max-faces >= 1, "
                f"--environment-height >= 0 (got {self.texture_size}, {self.batch_size}, {self.texture_max_faces} "
                f"and {self.environment_height})"
            )
        # nerfstudio is imported only once there is a run to load, so --help and input errors answer quickly.
        from nero_nerfstudio.utils import run_loading

        transform, scale = load_dataparser_transform(self.load_config.parent / "dataparser_transforms.json")
        pipeline, _, step = run_loading.load_pipeline(self.load_config)
        model = pipeline.model
        material_fn = getattr(model, "material_fn", None)
        if not callable(material_fn):
            raise NeroDataError(
                self.load_config,
                f"model {type(model).__name__} has no material_fn; material export needs a nero-material run",
            )
        up_axis = pipeline.datamanager.train_dataparser_outputs.metadata.get(NeroKey.UP_AXIS, "y")
        mesh_path = self.mesh_path if self.mesh_path is not None else Path(model.config.mesh_path)
        # Meshes are exchanged in the dataset frame (nero-export mesh's default); the materials live in the run's
        # normalised frame, where the export is written too (NeRO's relighting frame: object in the unit sphere).
        mesh = transform_to_normalized_frame(load_triangle_mesh(mesh_path), transform, scale)
        check_in_normalized_frame(mesh, mesh_path)
        try:
            paths = export_vertex_materials(mesh, material_fn, self.output_dir, self.batch_size, pipeline.device)
            if self.bake_textures:
                paths.update(
                    export_texture_materials(
                        mesh,
                        material_fn,
                        self.output_dir,
                        self.texture_size,
                        self.batch_size,
                        pipeline.device,
                        up_axis,
                        self.texture_max_faces,
                    )
                )
            environment_fn = getattr(model, "environment_fn", None)
            if callable(environment_fn) and self.environment_height > 0:
                paths.update(
                    export_environment(
                        self.output_dir, environment_fn, up_axis, self.environment_height, self.batch_size,
                        pipeline.device,
                    )  # fmt: skip
                )
        except MaterialFnError as error:
            raise NeroDataError(self.load_config, f"step {step}: {error}") from error
        except UnwrapError as error:
            raise NeroDataError(
                mesh_path, f"{error} (the per-vertex .npy files are written; --no-bake-textures skips textures)"
            ) from error
        CONSOLE.print(
            f"Saved materials of step {step} on {mesh_path} ({len(mesh.vertices)} vertices) to {self.output_dir}: "
            f"{', '.join(sorted(path.name for path in paths.values()))}",
            soft_wrap=True,
        )
