"""Glossy test scenes rendered with Blender (Cycles on CPU) in NeRO's dataset layouts, with exact ground truth.

A reflective object (Principled BSDF) under one of the HDR environments bundled with bpy, seen by cameras on a
sphere around it, or standing on a textured table among a few props and seen from a handheld-like ring above it.
Blender runs in a child process (:mod:`nero_nerfstudio.scenes.blender_render`); depth, normals and the COLMAP
model are computed here from the rendered mesh and the cameras. Layout contract:
docs/architecture.md, "Scenes rendered by nero-render-scene".
"""

from __future__ import annotations

import collections
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Tuple

import numpy as np

from nero_nerfstudio.core.camera_conventions import opencv_w2c_to_opengl_c2w
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.scenes.assets import load_mesh_file, resolve_environment, resolve_mesh
from nero_nerfstudio.scenes.blender_render import PROGRESS_PREFIX
from nero_nerfstudio.scenes.camera_rig import (
    fibonacci_sphere_directions,
    look_at_w2c,
    pinhole_intrinsics,
    tabletop_ring_centers,
)
from nero_nerfstudio.scenes.colmap_layout import write_colmap_model, write_meta_info, write_object_point_cloud
from nero_nerfstudio.scenes.ground_truth import GroundTruthCaster, GroundTruthMesh, sample_surface_points
from nero_nerfstudio.scenes.similarity import Similarity, blender_to_colmap, blender_to_synthetic
from nero_nerfstudio.scenes.synthetic_layout import write_synthetic_view
from nero_nerfstudio.scenes.tabletop import (
    TABLE_HALF_SIZE,
    TABLETOP_DISTANCE_JITTER,
    TabletopProp,
    tabletop_props,
    tabletop_scene_info,
)
from nero_nerfstudio.utils.io import atomic_path, atomic_write_bytes
from nero_nerfstudio.utils.progress import counting_progress
from nero_nerfstudio.utils.setting_checks import SettingProblems
from nero_nerfstudio.utils.synthetic_io import DEPTH_RANGE

Layout = Literal["synthetic", "real", "custom"]

class BlenderRenderError(RuntimeError):
    """The Blender child process failed; the message holds the end of its log."""


@dataclass
class RenderSceneConfig:
    """What to render and where (defaults: a small, quick scene for tests)."""

    output_dir: Path
    """Folder to create (must be absent or empty)."""
    layout: Layout = "synthetic"
    """``synthetic`` (GlossySynthetic), ``real`` (GlossyReal) or ``custom`` (NeRO's custom-object format)."""
    mesh: str = "bunny"
    """``bunny``, ``cow`` (thin legs, horns and tail), ``sphere``, ``torus``, ``suzanne``, or a path to a .ply/.obj
    file."""
    mesh_up_axis: Literal["y", "z"] = "y"
    """Up axis of a mesh file (the bunny and the cow are y-up); it stands upright in Blender's z-up frame."""
    environment: str = "courtyard"
    """A bpy-bundled HDRI (city, courtyard, forest, interior, night, studio, sunrise, sunset) or an .exr/.hdr path."""
    num_views: int = 32
    resolution: int = 64
    """Image width and height in pixels."""
    samples: int = 16
    """Cycles samples per pixel."""
    denoise: bool = False
    """OpenImageDenoise on the rendered images. Off by default: it adds ~0.5 s per view on CPU, and 16 spp of a
    metal under these environments is already nearly noise-free at 64 px; turn it on for large benchmark renders."""
    metallic: float = 1.0
    roughness: float = 0.2
    """Blender's perceptual roughness (GGX alpha = roughness^2)."""
    albedo: Tuple[float, float, float] = (0.8, 0.8, 0.8)
    """Linear RGB base colour."""
    mesh_radius: float = 0.8
    """The mesh is centred on its bounding box and scaled so its farthest vertex is at this radius."""
    camera_distance: float = 3.5
    """Radius of the camera sphere (Blender units); cameras cover both hemispheres and look at the origin."""
    fov_deg: float = 30.0
    """Horizontal field of view."""
    seed: int = 0
    """Seeds the camera spiral's azimuth, the COLMAP-frame rotation and the surface point sampling."""
    colmap_scale: float = 2.7
    """real/custom: scale of the Blender -> COLMAP similarity."""
    colmap_translation: Tuple[float, float, float] = (0.3, -1.2, 4.0)
    """real/custom: translation of the Blender -> COLMAP similarity."""
    num_surface_points: int = 4000
    """real/custom: points in ``object_point_cloud.ply`` and ``points3D.bin``."""
    threads: int = 0
    """Cycles CPU threads (0: all cores)."""
    tabletop: bool = False
    """real/custom: stand the object on a large textured table among a few textured props, with the cameras on a
    handheld-like ring above the table (elevations 10-60 degrees, distances within 10 % of ``camera_distance``), so
    that structure from motion has static texture to match. ``gt/`` still describes the object only;
    ``gt/scene.json`` adds the table plane and the props' bounding spheres."""

    def validate(self) -> None:
        """Raise :class:`NeroDataError` naming the output folder for settings that cannot make a scene."""
        problems = SettingProblems(self)
        problems.at_least(num_views=1, resolution=8, samples=1)
        problems.in_unit_interval("metallic", "roughness", "albedo")
        nearest_camera = self.camera_distance * (1.0 - TABLETOP_DISTANCE_JITTER if self.tabletop else 1.0)
        if not 0.0 < self.fov_deg < 170.0:
            problems.add(f"fov_deg must be in (0, 170), got {self.fov_deg}")
        elif nearest_camera * math.sin(math.radians(self.fov_deg) / 2) <= self.mesh_radius:
            problems.add("the object does not fit in the view: raise camera_distance or fov_deg")
        if self.tabletop and self.layout == "synthetic":
            problems.add("tabletop needs the real or custom layout (a scene for structure from motion)")
        if self.layout == "synthetic" and self.camera_distance + self.mesh_radius >= 0.95 * DEPTH_RANGE:
            problems.add(f"synthetic depth PNGs hold depths below {DEPTH_RANGE}: lower camera_distance")
        problems.positive("colmap_scale")
        problems.raise_if_any(self.output_dir)


def image_names(layout: Layout, num_views: int) -> List[str]:
    """Image stems: ``<k>`` for synthetic (as GlossySynthetic), zero-padded for the photo layouts."""
    if layout == "synthetic":
        return [str(index) for index in range(num_views)]
    width = max(3, len(str(num_views - 1)))
    return [f"{index:0{width}d}" for index in range(num_views)]


def camera_rig(config: RenderSceneConfig) -> Tuple[np.ndarray, np.ndarray]:
    """OpenCV world-to-camera ``[N, 3, 4]`` in the Blender frame and the shared intrinsics ``[3, 3]``."""
    if config.tabletop:
        centers = tabletop_ring_centers(
            config.num_views, config.camera_distance, config.seed, distance_jitter=TABLETOP_DISTANCE_JITTER
        )
    else:
        centers = config.camera_distance * fibonacci_sphere_directions(config.num_views, config.seed)
    return look_at_w2c(centers), pinhole_intrinsics(config.resolution, config.resolution, config.fov_deg)


def dataset_similarity(config: RenderSceneConfig) -> Similarity:
    """Blender frame -> dataset frame of the chosen layout."""
    if config.layout == "synthetic":
        return blender_to_synthetic()
    return blender_to_colmap(config.seed, config.colmap_scale, config.colmap_translation)


def run_blender_job(job_path: Path, num_views: int, description: str) -> None:
    """Run the Blender child, drive a progress bar from its progress lines, and keep its log tail for errors."""
    command = [sys.executable, "-m", "nero_nerfstudio.scenes.blender_render", str(job_path)]
    log_tail: collections.deque = collections.deque(maxlen=30)
    with counting_progress() as progress:
        task = progress.add_task(description, total=num_views)
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    progress.update(task, completed=int(line.split()[1]))
                else:
                    log_tail.append(line.rstrip())
            return_code = child.wait()
    if return_code != 0:
        log = "\n".join(log_tail)
        raise BlenderRenderError(f"Blender render process failed with exit code {return_code}; end of its log:\n{log}")


def _render_images(
    config: RenderSceneConfig, camera_to_world: np.ndarray, image_paths: List[Path], props: List[TabletopProp]
) -> GroundTruthMesh:
    """Render every view with Blender (with the table and ``props`` if ``config.tabletop``); return the rendered
    object mesh in the Blender frame."""
    environment = resolve_environment(config.environment)
    mesh_source = resolve_mesh(config.mesh)
    with tempfile.TemporaryDirectory(prefix="nero-render-") as work_name:
        work_dir = Path(work_name)
        if isinstance(mesh_source, Path):
            vertices, faces = load_mesh_file(mesh_source, config.mesh_up_axis)
            np.savez(work_dir / "input_mesh.npz", vertices=vertices, faces=faces)
            mesh_job: Dict[str, Any] = {"npz": str(work_dir / "input_mesh.npz")}
        else:
            mesh_job = {"primitive": mesh_source}
        job = {
            "mesh": mesh_job,
            "mesh_radius": config.mesh_radius,
            "environment": str(environment),
            "metallic": config.metallic,
            "roughness": config.roughness,
            "albedo": list(config.albedo),
            "width": config.resolution,
            "height": config.resolution,
            "fov_deg": config.fov_deg,
            "camera_to_world": camera_to_world.tolist(),
            "image_paths": [str(path) for path in image_paths],
            "samples": config.samples,
            "denoise": config.denoise,
            "threads": config.threads,
            "seed": config.seed,
            "mesh_out": str(work_dir / "rendered_mesh.npz"),
            "tabletop": (
                {"half_size": TABLE_HALF_SIZE * config.camera_distance, "props": [asdict(prop) for prop in props]}
                if config.tabletop
                else None
            ),
        }
        job_path = work_dir / "job.json"
        job_path.write_text(json.dumps(job))
        run_blender_job(job_path, config.num_views, f"Rendering {config.layout} scene ({config.mesh})")
        rendered = np.load(work_dir / "rendered_mesh.npz")
        return GroundTruthMesh(rendered["vertices"], rendered["faces"], rendered["vertex_normals"])


def _write_gt_mesh(path: Path, mesh: GroundTruthMesh) -> None:
    import trimesh

    with atomic_path(path) as tmp_path:
        trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=mesh.vertex_normals, process=False).export(tmp_path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp_path:
        np.save(tmp_path, array)


def render_scene(config: RenderSceneConfig) -> Path:
    """Render the scene and write it in ``config.layout`` with its ``gt/`` folder; returns the output folder."""
    config.validate()
    output_dir = Path(config.output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise NeroDataError(output_dir, "output folder already exists and is not empty; choose a new folder")
    # Check names before starting Blender, so a typo fails in a second with the list of valid names.
    resolve_environment(config.environment)
    resolve_mesh(config.mesh)

    names = image_names(config.layout, config.num_views)
    image_dir = output_dir if config.layout == "synthetic" else output_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    image_paths = [image_dir / f"{name}.png" for name in names]

    w2c_blender, intrinsics = camera_rig(config)
    bottom_row = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (config.num_views, 1, 4))
    camera_to_world = np.concatenate([opencv_w2c_to_opengl_c2w(w2c_blender), bottom_row], axis=1)
    props = tabletop_props(config.mesh_radius, config.seed) if config.tabletop else []
    mesh_blender = _render_images(config, camera_to_world, image_paths, props)

    similarity = dataset_similarity(config)
    mesh = GroundTruthMesh(
        vertices=similarity.apply_points(mesh_blender.vertices),
        faces=mesh_blender.faces,
        vertex_normals=similarity.apply_directions(mesh_blender.vertex_normals),
    )
    w2c = similarity.apply_w2c(w2c_blender)
    gt_dir = output_dir / "gt"
    gt_dir.mkdir(exist_ok=True)
    caster = GroundTruthCaster(mesh)
    for name, view_w2c in zip(names, w2c):
        depth, normals = caster.depth_and_normals(view_w2c, intrinsics, config.resolution, config.resolution)
        if config.layout == "synthetic":
            write_synthetic_view(output_dir, name, view_w2c, intrinsics, depth)
        _save_npy(gt_dir / f"{name}-normal.npy", normals.astype(np.float16))
        _save_npy(gt_dir / f"{name}-depth.npy", np.where(np.isfinite(depth), depth, 0.0).astype(np.float32))

    # The object's up (Blender +z) and forward (Blender +x) in the dataset frame.
    up = similarity.apply_directions(np.array([0.0, 0.0, 1.0]))
    forward = similarity.apply_directions(np.array([1.0, 0.0, 0.0]))
    if config.layout != "synthetic":
        points = sample_surface_points(mesh, config.num_surface_points, config.seed)
        from nero_nerfstudio.utils.color import linear_to_srgb  # imports torch: only for the photo layouts

        point_rgb = np.round(255 * linear_to_srgb(np.asarray(config.albedo))).astype(np.uint8)
        write_colmap_model(
            output_dir,
            [path.name for path in image_paths],
            w2c,
            intrinsics,
            config.resolution,
            config.resolution,
            points,
            point_rgb,
            shared_camera=config.layout == "real",
        )
        write_object_point_cloud(output_dir, points)
        if config.layout == "custom":
            write_meta_info(output_dir, up, forward)

    _write_gt_mesh(gt_dir / "mesh.ply", mesh)
    scene_info = {
        "layout": config.layout,
        "mesh": config.mesh,
        "environment": config.environment,
        "metallic": config.metallic,
        "roughness": config.roughness,
        "albedo": list(config.albedo),
        "up_axis": "y" if config.layout == "synthetic" else "z",
        "up": up.tolist(),
        "forward": forward.tolist(),
        "similarity": similarity.to_json(),
        "width": config.resolution,
        "height": config.resolution,
        "fov_deg": config.fov_deg,
        "camera_distance": config.camera_distance,
        "mesh_radius": config.mesh_radius,
        "samples": config.samples,
        "denoise": config.denoise,
        "image_names": [path.name for path in image_paths],
        "seed": config.seed,
        "tabletop": config.tabletop,
    }
    if config.tabletop:
        # The Blender child puts the table top at the object's lowest point.
        scene_info.update(tabletop_scene_info(similarity, float(mesh_blender.vertices[:, 2].min()), props))
    atomic_write_bytes(gt_dir / "scene.json", json.dumps(scene_info, indent=2).encode())
    return output_dir
