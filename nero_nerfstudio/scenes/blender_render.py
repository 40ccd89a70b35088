"""The Blender half of the scene generator, run in a child process.

``python -m nero_nerfstudio.scenes.blender_render JOB.json``.

Only this module imports bpy, and only inside :func:`main`, so a Blender crash ends the child, never the caller,
and importing the package never loads Blender. Works with the bpy 4.5 and 5.0 APIs.

The job file (written by :mod:`nero_nerfstudio.scenes.render_scene`) holds:
``mesh`` (``{"primitive": name}`` or ``{"npz": path}`` with Blender-frame ``vertices``/``faces``), ``mesh_radius``,
``environment`` (path), ``metallic``, ``roughness``, ``albedo``, ``width``, ``height``, ``fov_deg``,
``camera_to_world`` (``[N, 4, 4]`` Blender/OpenGL camera-to-world), ``image_paths`` (``N`` PNG paths),
``samples``, ``denoise``, ``threads``, ``seed`` and ``mesh_out`` (where to save the rendered mesh as .npz).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from nero_nerfstudio.scenes.similarity import normalise_to_radius

PROGRESS_PREFIX = "@@nero-progress"
"""Marks the lines the parent reads to drive its progress bar; everything else is Blender's log."""

SUBDIVISION_LEVELS = 2


def _primitive_triangles(bpy: Any, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Triangles of a Blender primitive (Suzanne subdivided), before normalisation."""
    if name == "sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(segments=96, ring_count=48, radius=1.0)
    elif name == "torus":
        bpy.ops.mesh.primitive_torus_add(major_radius=1.0, minor_radius=0.4, major_segments=96, minor_segments=48)
    elif name == "suzanne":
        bpy.ops.mesh.primitive_monkey_add(size=2.0)
        modifier = bpy.context.object.modifiers.new("subdivision", "SUBSURF")
        modifier.levels = SUBDIVISION_LEVELS
        modifier.render_levels = SUBDIVISION_LEVELS
    else:
        raise ValueError(f"unknown primitive '{name}'")
    obj = bpy.context.object
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    mesh.calc_loop_triangles()
    vertices = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", vertices)
    faces = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
    mesh.loop_triangles.foreach_get("vertices", faces)
    evaluated.to_mesh_clear()
    bpy.data.objects.remove(obj, do_unlink=True)
    return vertices.reshape(-1, 3), faces.reshape(-1, 3)


def _add_mesh_object(bpy: Any, vertices: np.ndarray, faces: np.ndarray) -> Any:
    """A smooth-shaded mesh object made of exactly these triangles (so the GT mesh is what was rendered)."""
    mesh = bpy.data.meshes.new("object")
    mesh.from_pydata(vertices.tolist(), [], faces.tolist())
    mesh.validate()
    mesh.shade_smooth()
    obj = bpy.data.objects.new("object", mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _vertex_normals(mesh: Any) -> np.ndarray:
    normals = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertex_normals.foreach_get("vector", normals)
    return normals.reshape(-1, 3)


def _node_tree(datablock: Any) -> Any:
    """The node tree of a material or world; 5.0 always has one, 4.5 needs ``use_nodes``."""
    if datablock.node_tree is None:
        datablock.use_nodes = True
    return datablock.node_tree


def _set_material(bpy: Any, obj: Any, job: Dict[str, Any]) -> None:
    material = bpy.data.materials.new("glossy")
    nodes = _node_tree(material).nodes
    bsdf = nodes.get("Principled BSDF")
    bsdf.distribution = "GGX"  # the single-scattering microfacet model NeRO's split-sum shading assumes
    bsdf.inputs["Base Color"].default_value = (*job["albedo"], 1.0)
    bsdf.inputs["Metallic"].default_value = job["metallic"]
    bsdf.inputs["Roughness"].default_value = job["roughness"]
    # Dielectric F0 = ((IOR - 1) / (IOR + 1))^2 * 2 * level = 0.04 for IOR 1.5 and level 0.5.
    bsdf.inputs["IOR"].default_value = 1.5
    bsdf.inputs["Specular IOR Level"].default_value = 0.5
    obj.data.materials.append(material)


def _set_world(bpy: Any, environment: str) -> None:
    world = bpy.data.worlds.new("environment")
    tree = _node_tree(world)
    tree.nodes.clear()
    texture = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(environment, check_existing=True)
    background = tree.nodes.new("ShaderNodeBackground")
    output = tree.nodes.new("ShaderNodeOutputWorld")
    tree.links.new(texture.outputs["Color"], background.inputs["Color"])
    tree.links.new(background.outputs["Background"], output.inputs["Surface"])
    bpy.context.scene.world = world


def _set_render_settings(bpy: Any, job: Dict[str, Any]) -> None:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = job["samples"]
    scene.cycles.use_denoising = job["denoise"]
    scene.cycles.seed = job["seed"]
    scene.render.use_persistent_data = True  # only the camera moves: keep BVH and textures between views
    scene.render.film_transparent = False  # the environment is the background (NeRO trains without masks)
    scene.render.resolution_x = job["width"]
    scene.render.resolution_y = job["height"]
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = 1.0
    scene.render.pixel_aspect_y = 1.0
    if job["threads"] > 0:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = job["threads"]
    scene.display_settings.display_device = "sRGB"
    scene.view_settings.view_transform = "Standard"  # plain sRGB curve of linear radiance (5.0 defaults to AgX)
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # bpy 5.0: pick the media type before the format
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGB"
    settings.color_depth = "8"


def _add_camera(bpy: Any, fov_deg: float) -> Any:
    camera_data = bpy.data.cameras.new("camera")
    camera_data.sensor_fit = "HORIZONTAL"
    camera_data.angle = math.radians(fov_deg)
    camera_data.clip_start = 0.01
    camera_data.clip_end = 1000.0
    camera = bpy.data.objects.new("camera", camera_data)
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.camera = camera
    return camera


def _save_npz_atomically(path: Path, **arrays: np.ndarray) -> None:
    tmp_path = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp_path, **arrays)
    os.replace(tmp_path, path)


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    import bpy  # only here: the parent process never loads Blender
    from mathutils import Matrix

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if "primitive" in job["mesh"]:
        vertices, faces = _primitive_triangles(bpy, job["mesh"]["primitive"])
    else:
        arrays = np.load(job["mesh"]["npz"])
        vertices, faces = arrays["vertices"], arrays["faces"]
    vertices = normalise_to_radius(vertices, job["mesh_radius"])
    obj = _add_mesh_object(bpy, vertices, faces)
    _set_material(bpy, obj, job)
    _set_world(bpy, job["environment"])
    _set_render_settings(bpy, job)
    camera = _add_camera(bpy, job["fov_deg"])

    mesh = obj.data
    mesh.calc_loop_triangles()
    triangles = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    _save_npz_atomically(
        Path(job["mesh_out"]),
        vertices=vertices,
        faces=triangles.reshape(-1, 3),
        vertex_normals=_vertex_normals(mesh),
    )

    num_views = len(job["image_paths"])
    for index, (camera_to_world, image_path) in enumerate(zip(job["camera_to_world"], job["image_paths"])):
        camera.matrix_world = Matrix(camera_to_world)
        final_path = Path(image_path)
        tmp_path = final_path.with_name(f".{final_path.stem}.tmp.png")
        bpy.context.scene.render.filepath = str(tmp_path)
        bpy.ops.render.render(write_still=True)
        os.replace(tmp_path, final_path)
        print(f"{PROGRESS_PREFIX} {index + 1} {num_views}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
