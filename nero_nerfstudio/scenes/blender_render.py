"""The Blender half of the scene generator, run in a child process.

``python -m nero_nerfstudio.scenes.blender_render JOB.json``.

Only this module imports bpy, and only inside :func:`main`, so a Blender crash ends the child, never the caller,
and importing the package never loads Blender. Works with the bpy 4.5 and 5.0 APIs.

The job file (written by :mod:`nero_nerfstudio.scenes.render_scene`) holds:
``mesh`` (``{"primitive": name}`` or ``{"npz": path}`` with Blender-frame ``vertices``/``faces``), ``mesh_radius``,
``environment`` (path), ``metallic``, ``roughness``, ``albedo``, ``width``, ``height``, ``fov_deg``,
``camera_to_world`` (``[N, 4, 4]`` Blender/OpenGL camera-to-world), ``image_paths`` (``N`` PNG paths),
``samples``, ``denoise``, ``threads``, ``seed``, ``mesh_out`` (where to save the rendered mesh as .npz) and
``tabletop`` (null, or ``half_size`` of the table and its ``props``, each a
:class:`~nero_nerfstudio.scenes.tabletop.TabletopProp` as a dict).
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

TABLE_CELLS_PER_RADIUS = 8.0
"""Texture cells across the object's radius on the table (0.1 units for the default radius 0.8: ~17 px at 320 px
from the default camera distance); the props' cells are half as big."""
TABLE_TINT = (0.85, 0.65, 0.45)


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


def _socket(sockets: Any, identifier: str) -> Any:
    """A socket by identifier: the Mix node has a float, a vector and a colour socket named ``A``."""
    return next(socket for socket in sockets if socket.identifier == identifier)


def _multiply(tree: Any, colour: Any, by: Any, factor: float = 1.0) -> Any:
    """``colour * (1 - factor + factor * by)``: ``by`` is a colour output or an RGB tuple; returns the output."""
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    _socket(mix.inputs, "Factor_Float").default_value = factor
    tree.links.new(colour, _socket(mix.inputs, "A_Color"))
    if isinstance(by, tuple):
        _socket(mix.inputs, "B_Color").default_value = (*by, 1.0)
    else:
        tree.links.new(by, _socket(mix.inputs, "B_Color"))
    return _socket(mix.outputs, "Result_Color")


def _textured_material(bpy: Any, name: str, pattern: str, cell: float, tint: Tuple[float, float, float]) -> Any:
    """A rough dielectric with texture at many scales, for feature matching (no image files).

    A brick or checker layout of random-colour Voronoi cells ``cell`` units across and multi-octave noise, shaded
    by patches four cells across (large features survive the foreshortening of views at grazing angles), tinted.
    The textures follow object coordinates, so they stick to the surface as the camera moves.
    """
    material = bpy.data.materials.new(name)
    tree = _node_tree(material)
    nodes, links = tree.nodes, tree.links
    coordinates = nodes.new("ShaderNodeTexCoord").outputs["Object"]
    cells = nodes.new("ShaderNodeTexVoronoi")
    cells.inputs["Scale"].default_value = 1.0 / cell
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 2.0 / cell
    # Octaves down to ~cell / 16, about a pixel at 320 px: finer ones would only add render noise.
    noise.inputs["Detail"].default_value = 3.0
    layout = nodes.new("ShaderNodeTexBrick" if pattern == "brick" else "ShaderNodeTexChecker")
    layout.inputs["Scale"].default_value = 0.25 / cell
    patches = nodes.new("ShaderNodeTexVoronoi")
    patches.inputs["Scale"].default_value = 0.25 / cell
    for texture in (cells, noise, layout, patches):
        links.new(coordinates, texture.inputs["Vector"])
    links.new(cells.outputs["Color"], layout.inputs["Color1"])
    links.new(noise.outputs["Color"], layout.inputs["Color2"])
    shaded = _multiply(tree, layout.outputs["Color"], patches.outputs["Color"], factor=0.6)
    bsdf = nodes.get("Principled BSDF")
    links.new(_multiply(tree, shaded, tint), bsdf.inputs["Base Color"])
    bsdf.inputs["Metallic"].default_value = 0.0
    bsdf.inputs["Roughness"].default_value = 0.7
    return material


def _add_tabletop(bpy: Any, tabletop: Dict[str, Any], table_height: float, mesh_radius: float) -> None:
    """A square table with its top at ``table_height`` and the props standing on it."""
    from mathutils import Matrix

    cell = mesh_radius / TABLE_CELLS_PER_RADIUS
    bpy.ops.mesh.primitive_plane_add(size=2.0 * tabletop["half_size"], location=(0.0, 0.0, table_height))
    bpy.context.object.data.materials.append(_textured_material(bpy, "table", "brick", cell, TABLE_TINT))
    for index, prop in enumerate(tabletop["props"]):
        half_width, height = prop["half_width"], prop["height"]
        # Sizes go into the mesh, not the object's scale, so object texture coordinates are in scene units.
        if prop["shape"] == "box":
            bpy.ops.mesh.primitive_cube_add(size=1.0)
            bpy.context.object.data.transform(Matrix.Diagonal((2.0 * half_width, 2.0 * half_width, height, 1.0)))
        elif prop["shape"] == "cylinder":
            bpy.ops.mesh.primitive_cylinder_add(vertices=48, radius=half_width, depth=height)
        else:
            bpy.ops.mesh.primitive_cone_add(vertices=48, radius1=half_width, radius2=0.0, depth=height)
        obj = bpy.context.object
        obj.location = (*prop["xy"], table_height + height / 2)
        obj.rotation_euler = (0.0, 0.0, prop["yaw"])
        obj.data.materials.append(
            _textured_material(bpy, f"prop{index}", prop["pattern"], cell / 2, tuple(prop["tint"]))
        )


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
    if job["tabletop"] is not None:
        # The object stands on the table: its top touches the lowest vertex.
        _add_tabletop(bpy, job["tabletop"], float(vertices[:, 2].min()), job["mesh_radius"])
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
