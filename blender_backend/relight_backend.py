"""Relight a mesh with recovered materials in Blender (Cycles); runs only inside Blender (imports bpy).

Two ways to run it, both driven by a job file that :mod:`nero_nerfstudio.relight` writes::

    python blender_backend/relight_backend.py -- --job OUT/relight_job.json          # the bpy module
    blender --background --factory-startup --python-exit-code 1 \\
        --python blender_backend/relight_backend.py -- --job OUT/relight_job.json   # a Blender 4.2-5.0 binary

Only the standard library, numpy and bpy are used, so Blender's bundled Python is enough. The caller has already
read the mesh and decoded the materials into ``relight_mesh.npz`` (``vertices`` ``[V, 3]``, ``faces`` ``[F, 3]``,
and either linear ``albedo`` ``[V, 3]``, ``metallic`` ``[V]``, ``roughness`` ``[V]`` or ``uv`` ``[V, 2]``).

Material mapping onto Blender's Principled BSDF (v2, Blender 4.0+):

=====================  ===========================================================================
Principled input       value
=====================  ===========================================================================
Base Color             albedo, linear RGB (FLOAT_COLOR point attribute ``albedo`` -> Attribute node,
                       or glTF ``baseColorTexture`` (sRGB image) x ``baseColorFactor``)
Metallic               metallic (FLOAT attribute ``metallic``, or glTF B channel x ``metallicFactor``)
Roughness              NeRO's exported roughness sqrt(alpha) (FLOAT attribute ``roughness``, or glTF G
                       channel x ``roughnessFactor``); Blender's GGX uses alpha = roughness^2
IOR                    1.5
Specular IOR Level     0.5: with IOR 1.5, dielectric F0 = ((1.5 - 1) / (1.5 + 1))^2 = 0.04, as in NeRO
Distribution           GGX (single scattering, as NeRO; Blender's default is multiscatter GGX)
Coat / Sheen Weight    0 / 0; Emission Strength 0; everything else at Blender's defaults
=====================  ===========================================================================

Inputs are looked up by their identifier (never translated), nodes are created by type name, and the scene starts
from empty factory settings, so neither the UI language nor a startup file changes the result.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

import bpy

PROGRESS_PREFIX = "@@nero-relight"
"""Marks the lines the launcher parses: ``frame DONE TOTAL SECONDS PATH``, ``warning TEXT``, ``error TEXT``."""

GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")


class RelightJobError(Exception):
    """A job that cannot be rendered; reported as one ``error`` line."""


def report(kind: str, text: str) -> None:
    print(f"{PROGRESS_PREFIX} {kind} {text}", flush=True)


def socket(sockets: Any, identifier: str) -> Any:
    """The socket with this identifier (falling back to its untranslated name), with a clear error if absent."""
    for candidate in sockets:
        if candidate.identifier == identifier:
            return candidate
    for candidate in sockets:
        if candidate.name == identifier:
            return candidate
    names = ", ".join(candidate.identifier for candidate in sockets)
    raise RelightJobError(f"Blender {bpy.app.version_string}: no socket '{identifier}' (has {names})")


def node_tree(datablock: Any) -> Any:
    """The node tree of a material or world; 5.0 always has one, 4.x needs ``use_nodes``."""
    if datablock.node_tree is None:
        datablock.use_nodes = True
    return datablock.node_tree


def reset_scene() -> Any:
    """Empty factory scene, English data names whatever the user's preferences say."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    view = bpy.context.preferences.view
    for flag in ("use_translate_interface", "use_translate_tooltips", "use_translate_new_dataname"):
        if hasattr(view, flag):
            setattr(view, flag, False)
    scene = bpy.context.scene
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    return scene


def build_mesh_object(arrays: Dict[str, np.ndarray], rotation_deg_x: float) -> Any:
    """A smooth-shaded mesh object from numpy arrays: vertex ``i`` of Blender's mesh is row ``i`` of the arrays."""
    vertices, faces = arrays["vertices"], arrays["faces"]
    mesh = bpy.data.meshes.new("relight_mesh")
    mesh.from_pydata(vertices.astype(np.float64), [], faces.astype(np.int64))
    if len(mesh.vertices) != len(vertices) or len(mesh.polygons) != len(faces):
        raise RelightJobError(
            f"Blender built {len(mesh.vertices)} vertices / {len(mesh.polygons)} faces "
            f"from {len(vertices)} / {len(faces)}"
        )
    mesh.shade_smooth()
    if "albedo" in arrays:
        albedo = mesh.attributes.new("albedo", "FLOAT_COLOR", "POINT")
        rgba = np.concatenate([arrays["albedo"], np.ones((len(vertices), 1))], axis=1).astype(np.float32)
        albedo.data.foreach_set("color", rgba.ravel())
        for name in ("metallic", "roughness"):
            attribute = mesh.attributes.new(name, "FLOAT", "POINT")
            attribute.data.foreach_set("value", arrays[name].astype(np.float32).ravel())
    if "uv" in arrays:
        loop_vertices = np.empty(len(mesh.loops), dtype=np.int64)
        mesh.loops.foreach_get("vertex_index", loop_vertices)
        uv_layer = mesh.uv_layers.new(name="UVMap")
        uv_layer.data.foreach_set("uv", arrays["uv"][loop_vertices].astype(np.float32).ravel())
    mesh.update()
    obj = bpy.data.objects.new("relight_object", mesh)
    obj.rotation_euler = (math.radians(rotation_deg_x), 0.0, 0.0)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def principled_material(name: str) -> Any:
    """A material whose only nodes are a Principled BSDF (NeRO's fixed settings) and the output."""
    material = bpy.data.materials.new(name)
    tree = node_tree(material)
    tree.nodes.clear()
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(socket(bsdf.outputs, "BSDF"), socket(output.inputs, "Surface"))
    bsdf.distribution = "GGX"  # single-scattering GGX, the microfacet model NeRO shades with
    socket(bsdf.inputs, "IOR").default_value = 1.5
    socket(bsdf.inputs, "Specular IOR Level").default_value = 0.5
    socket(bsdf.inputs, "Coat Weight").default_value = 0.0
    socket(bsdf.inputs, "Sheen Weight").default_value = 0.0
    socket(bsdf.inputs, "Emission Strength").default_value = 0.0
    return material


def _bsdf(material: Any) -> Any:
    return next(node for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeBsdfPrincipled")


def vertex_attribute_material() -> Any:
    """Principled BSDF fed by the ``albedo``/``metallic``/``roughness`` point attributes (linear values)."""
    material = principled_material("relight_vertex_material")
    tree, bsdf = material.node_tree, _bsdf(material)
    for attribute_name, output_id, input_id in (
        ("albedo", "Color", "Base Color"),
        ("metallic", "Fac", "Metallic"),
        ("roughness", "Fac", "Roughness"),
    ):
        node = tree.nodes.new("ShaderNodeAttribute")
        node.attribute_type = "GEOMETRY"
        node.attribute_name = attribute_name
        tree.links.new(socket(node.outputs, output_id), socket(bsdf.inputs, input_id))
    return material


def texture_material(material_job: Dict[str, Any]) -> Any:
    """Principled BSDF fed by glTF metallic-roughness textures (base colour sRGB, G = roughness, B = metallic)."""
    material = principled_material("relight_texture_material")
    tree, bsdf = material.node_tree, _bsdf(material)
    factor = material_job["base_color_factor"]
    base_color = socket(bsdf.inputs, "Base Color")
    if material_job["base_color_image"]:
        texture = tree.nodes.new("ShaderNodeTexImage")
        texture.image = bpy.data.images.load(material_job["base_color_image"], check_existing=True)
        texture.image.colorspace_settings.name = "sRGB"
        multiply = tree.nodes.new("ShaderNodeVectorMath")
        multiply.operation = "MULTIPLY"
        multiply.inputs[1].default_value = factor[:3]
        tree.links.new(socket(texture.outputs, "Color"), multiply.inputs[0])
        tree.links.new(socket(multiply.outputs, "Vector"), base_color)
    else:
        base_color.default_value = (*factor[:3], 1.0)
    for input_id, channel, scale in (
        ("Roughness", "Green", material_job["roughness_factor"]),
        ("Metallic", "Blue", material_job["metallic_factor"]),
    ):
        if not material_job["metallic_roughness_image"]:
            socket(bsdf.inputs, input_id).default_value = scale
            continue
        if "metallic_roughness_texture" not in tree.nodes:
            texture = tree.nodes.new("ShaderNodeTexImage")
            texture.name = "metallic_roughness_texture"
            texture.image = bpy.data.images.load(material_job["metallic_roughness_image"], check_existing=True)
            texture.image.colorspace_settings.is_data = True  # linear data, whatever the colour-space names are
            separate = tree.nodes.new("ShaderNodeSeparateColor")
            separate.name = "metallic_roughness_channels"
            tree.links.new(socket(texture.outputs, "Color"), socket(separate.inputs, "Color"))
        separate = tree.nodes["metallic_roughness_channels"]
        multiply = tree.nodes.new("ShaderNodeMath")
        multiply.operation = "MULTIPLY"
        multiply.inputs[1].default_value = scale
        tree.links.new(socket(separate.outputs, channel), multiply.inputs[0])
        tree.links.new(socket(multiply.outputs, "Value"), socket(bsdf.inputs, input_id))
    return material


def set_world(environment: str, strength: float, rotation_deg: float) -> None:
    """Environment Texture (direction turned about +z by a Mapping node) -> Background -> World Output."""
    world = bpy.data.worlds.new("relight_environment")
    tree = node_tree(world)
    tree.nodes.clear()
    coordinates = tree.nodes.new("ShaderNodeTexCoord")
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.vector_type = "POINT"
    # Looking directions are turned by -angle, so the environment itself turns by +angle (counter-clockwise from above).
    socket(mapping.inputs, "Rotation").default_value = (0.0, 0.0, -math.radians(rotation_deg))
    texture = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(environment, check_existing=True)
    background = tree.nodes.new("ShaderNodeBackground")
    socket(background.inputs, "Strength").default_value = strength
    output = tree.nodes.new("ShaderNodeOutputWorld")
    tree.links.new(socket(coordinates.outputs, "Generated"), socket(mapping.inputs, "Vector"))
    tree.links.new(socket(mapping.outputs, "Vector"), socket(texture.inputs, "Vector"))
    tree.links.new(socket(texture.outputs, "Color"), socket(background.inputs, "Color"))
    tree.links.new(socket(background.outputs, "Background"), socket(output.inputs, "Surface"))
    bpy.context.scene.world = world


def use_gpu_if_available(scene: Any) -> Optional[str]:
    """Switch Cycles to the first GPU backend with a device; None (and a warning) when Blender sees none."""
    preferences = bpy.context.preferences.addons["cycles"].preferences
    available = {item.identifier for item in preferences.bl_rna.properties["compute_device_type"].enum_items}
    for backend in GPU_BACKENDS:
        if backend not in available:
            continue
        preferences.compute_device_type = backend
        preferences.get_devices()
        devices = [device for device in preferences.devices if device.type == backend]
        if devices:
            for device in devices:
                device.use = True
            scene.cycles.device = "GPU"
            return backend
    report("warning", "no GPU visible to Blender's Cycles; rendering on the CPU")
    return None


def set_render_settings(job: Dict[str, Any]) -> Any:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    if job["device"] == "gpu":
        use_gpu_if_available(scene)
    scene.cycles.samples = job["samples"]
    scene.cycles.use_denoising = job["denoise"]
    scene.cycles.seed = job["seed"]
    scene.render.use_persistent_data = True  # only the camera moves: keep BVH and textures between frames
    scene.render.film_transparent = job["transparent"]
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
    if hasattr(settings, "media_type"):  # 5.0: the media type comes before the file format
        settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGBA"
    settings.color_depth = "8"
    return scene


def add_camera(scene: Any) -> Any:
    camera_data = bpy.data.cameras.new("relight_camera")
    camera_data.sensor_fit = "HORIZONTAL"  # lens shift and focal length are in units of the image width
    camera_data.clip_start = 0.01
    camera_data.clip_end = 1000.0
    camera = bpy.data.objects.new("relight_camera", camera_data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def save_blend(path: Path) -> None:
    """Save the scene for artists, atomically (a temporary .blend in the same folder, then a rename)."""
    tmp_path = path.with_name(f".{path.stem}.tmp.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path), copy=True, check_existing=False)
    os.replace(tmp_path, path)


def apply_frame_camera(camera: Any, frame: Dict[str, Any]) -> None:
    """Pose and intrinsics of one frame (see ``blender_camera_parameters`` in nero_nerfstudio.relight.cameras)."""
    from mathutils import Matrix

    camera.matrix_world = Matrix(frame["camera_to_world"])
    camera.data.lens = frame["lens_mm"]
    camera.data.sensor_width = frame["sensor_width_mm"]
    camera.data.shift_x = frame["shift_x"]
    camera.data.shift_y = frame["shift_y"]


def render_frames(scene: Any, camera: Any, frames: list) -> None:
    total = len(frames)
    for index, frame in enumerate(frames):
        final_path = Path(frame["path"])
        if final_path.exists():  # resume: a finished frame is never rendered twice
            report("frame", f"{index + 1} {total} -1 {final_path}")
            continue
        start = time.perf_counter()
        apply_frame_camera(camera, frame)
        tmp_path = final_path.with_name(f".{final_path.stem}.tmp.png")
        scene.render.filepath = str(tmp_path)
        bpy.ops.render.render(write_still=True)
        os.replace(tmp_path, final_path)
        report("frame", f"{index + 1} {total} {time.perf_counter() - start:.3f} {final_path}")


def run(job_path: Path) -> None:
    job = json.loads(job_path.read_text())
    with np.load(job["mesh_npz"]) as npz:
        arrays = {name: npz[name] for name in npz.files}
    scene = reset_scene()
    obj = build_mesh_object(arrays, job["object_rotation_x_deg"])
    material_job = job["material"]
    if material_job["kind"] == "vertex":
        material = vertex_attribute_material()
    elif material_job["kind"] == "texture":
        material = texture_material(material_job)
    else:
        raise RelightJobError(f"{job_path}: unknown material kind '{material_job['kind']}'")
    obj.data.materials.append(material)
    set_world(job["environment"], job["environment_strength"], job["environment_rotation_deg"])
    scene = set_render_settings(job)
    camera = add_camera(scene)
    if job["frames"]:
        apply_frame_camera(camera, job["frames"][0])  # the saved .blend opens on the first view
    if job.get("blend_path"):
        save_blend(Path(job["blend_path"]))
    render_frames(scene, camera, job["frames"])


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description="Relight a mesh in Blender from a nero-relight job file.")
    parser.add_argument("--job", type=Path, required=True, help="relight_job.json written by nero-relight")
    args = parser.parse_args(argv)
    try:
        run(args.job)
    except Exception as error:  # the process boundary: every failure becomes one line for the launcher
        traceback.print_exc()
        report("error", f"{type(error).__name__}: {error}".replace("\n", " "))
        return 1
    return 0


if __name__ == "__main__":
    arguments = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    exit_code = main(arguments)
    if exit_code:
        sys.exit(exit_code)
