"""Relight a recovered mesh and materials under an HDR environment with Blender (Cycles), headless.

This side (the caller's Python) checks every input, reads the mesh and decodes the materials, computes the cameras,
and writes ``OUT/relight_job.json`` + ``OUT/relight_mesh.npz``; ``blender_backend/relight_backend.py`` builds the
scene from them in a Blender child process and writes ``OUT/<k>.png`` (RGBA) and ``OUT/scene.blend``. Frames whose
PNG already exists are skipped, so an interrupted run resumes; frames rendered with other settings or inputs (the
previous ``relight_job.json`` says which) are rendered again, with a line that says so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import numpy as np
from rich.console import Console

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.relight.blender_launcher import backend_command, run_backend
from nero_nerfstudio.relight.cameras import (
    RelightCameras,
    blender_camera_parameters,
    dataset_cameras,
    object_rotation,
    orbit_cameras,
)
from nero_nerfstudio.relight.material_inputs import (
    TexturedMesh,
    load_glb,
    load_mesh,
    load_nero_materials,
)
from nero_nerfstudio.relight.turntable import VIDEO_SUFFIXES, write_turntable
from nero_nerfstudio.scenes.assets import bundled_environments, environments_under, resolve_environment
from nero_nerfstudio.utils.io import atomic_path, atomic_write_bytes
from nero_nerfstudio.utils.setting_checks import SettingProblems

JOB_FILE = "relight_job.json"
MESH_FILE = "relight_mesh.npz"
BLEND_FILE = "scene.blend"
TEXTURE_DIR = "textures"
NOT_IN_THE_IMAGE = frozenset({"frames", "threads", "device", "mesh_npz", "blend_path"})
"""Job entries that change how or where a frame is rendered, not what it shows (frames are compared one by one)."""
GLB_IN_FOLDER = "material.glb"
"""What nero-export writes next to (or instead of) NeRO's .npy files."""


@dataclass
class RelightConfig:
    """``nero-relight``: render a mesh with recovered materials under an HDR environment (Blender Cycles)."""

    material: Path
    """NeRO material folder (metallic.npy, roughness.npy, albedo.npy; sRGB-encoded, one row per mesh vertex) or a
    textured glTF .glb (baseColorTexture, metallicRoughnessTexture: G = roughness, B = metallic); a folder with
    only material.glb uses that .glb."""
    output_dir: Path
    """Frames ``<k>.png`` (RGBA), ``scene.blend`` and the job files go here; existing frames made with the same
    settings and inputs are not re-rendered (an interrupted run resumes), others are."""
    mesh: Optional[Path] = None
    """Mesh (.ply/.obj) whose vertex order matches the .npy rows; not needed with a .glb (its own mesh is used)."""
    hdr: str = "sunset"
    """Environment: a Blender-bundled HDRI (city, courtyard, forest, interior, night, studio, sunrise, sunset) or an
    equirectangular .exr/.hdr file."""
    hdr_strength: float = 1.0
    """Multiplier of the environment's radiance (Background strength)."""
    hdr_rotation_deg: float = 0.0
    """Turns the environment about +z (counter-clockwise seen from above), in degrees."""
    up_axis: Literal["auto", "y", "z"] = "auto"
    """Up axis of the mesh file. y: rotate +90 deg about X into Blender's z-up (NeRO's --trans; GlossySynthetic).
    auto: from --run-config's dataparser (nero-synthetic: y, nero-real/custom: z), y with --cameras-from, else z."""
    trans: bool = False
    """NeRO's flag: same as --up-axis y."""
    run_config: Optional[Path] = None
    """config.yml of the training run the mesh comes from, to pick the up axis automatically."""
    cameras_from: Optional[Path] = None
    """GlossySynthetic folder (``<k>-camera.pkl``, ``<k>.png``): render its own views instead of the orbit
    (for comparisons with ground-truth relit images). Image size and intrinsics come from the dataset."""
    view_ids: Optional[Tuple[str, ...]] = None
    """With --cameras-from: the view ids to render (default: all)."""
    num_frames: int = 120
    """Orbit: number of frames on NeRO's half orbit (azimuth centre -/+ 90 deg)."""
    resolution: int = 512
    """Orbit: image width and height in pixels."""
    azimuth_center_deg: float = 0.0
    """Orbit: centre azimuth (0 = Blender's front view, camera on -y)."""
    elevation_deg: float = 45.0
    """Orbit: camera elevation."""
    radius: float = 3.0
    """Orbit: camera distance from the origin (Blender's default 50 mm lens on a 36 mm sensor)."""
    samples: int = 128
    """Cycles samples per pixel."""
    denoise: bool = True
    """OpenImageDenoise on every frame."""
    device: Literal["cpu", "gpu"] = "cpu"
    """gpu: the first GPU Cycles sees (OptiX, CUDA, HIP, Metal, oneAPI); falls back to the CPU with a warning."""
    transparent: bool = True
    """Transparent film (background alpha 0, as NeRO); --no-transparent shows the environment behind the object."""
    threads: int = 0
    """Cycles CPU threads (0: all cores)."""
    seed: int = 0
    """Cycles sampling seed."""
    video: Optional[Path] = None
    """Optional turntable video (.mp4 with imageio-ffmpeg installed, else written as .gif; or .gif)."""
    fps: int = 24
    blender: Optional[Path] = None
    """Blender executable (4.2 to 5.0); default: the bpy module of this Python, in a child process."""
    verbose: bool = False
    """Print Blender's log."""

    def validate(self) -> None:
        """Raise :class:`NeroDataError` (naming the output folder) for settings that cannot render."""
        problems = SettingProblems(self)
        problems.at_least(num_frames=1, resolution=4, samples=1, hdr_strength=0)
        problems.positive("radius")
        problems.at_least(fps=1)
        if self.trans and self.up_axis == "z":
            problems.add("--trans contradicts --up-axis z")
        if self.video is not None and self.video.suffix.lower() not in VIDEO_SUFFIXES:
            problems.add(f"video must end with one of {', '.join(VIDEO_SUFFIXES)}, got {self.video.name}")
        if self.view_ids is not None and self.cameras_from is None:
            problems.add("--view-ids needs --cameras-from")
        problems.raise_if_any(self.output_dir)


@dataclass(frozen=True)
class RelightResult:
    frame_paths: List[Path]
    blend_path: Path
    video_path: Optional[Path]
    seconds_per_frame: List[float]
    """Render time of each frame rendered in this call (skipped frames are not counted)."""


def up_axis_from_run_config(config_path: Path) -> str:
    """``"y"`` for a nero-synthetic run, ``"z"`` for nero-real/nero-custom (the parsers' ``up_axis`` metadata)."""
    import yaml

    from nero_nerfstudio.data.dataparsers.nero_colmap_dataparser import NeroColmapDataParserConfig
    from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig

    config_path = Path(config_path)
    if not config_path.is_file():
        raise NeroDataError(config_path, "run config.yml does not exist")
    try:
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
        dataparser = config.pipeline.datamanager.dataparser
    except Exception as error:  # yaml and nerfstudio raise many types for foreign files
        raise NeroDataError(config_path, f"cannot read the run's dataparser config ({error})") from error
    if isinstance(dataparser, NeroSyntheticDataParserConfig):
        return "y"
    if isinstance(dataparser, NeroColmapDataParserConfig):
        return "z"
    raise NeroDataError(config_path, f"dataparser {type(dataparser).__name__} is not a NeRO parser; pass --up-axis")


def resolve_up_axis(config: RelightConfig) -> str:
    """The mesh file's up axis, following the precedence documented on :attr:`RelightConfig.up_axis`."""
    if config.trans:
        return "y"
    if config.up_axis != "auto":
        return config.up_axis
    if config.run_config is not None:
        return up_axis_from_run_config(config.run_config)
    if config.cameras_from is not None:
        return "y"  # the GlossySynthetic layout is y-up by definition
    return "z"


def environments_next_to(blender: Path) -> Dict[str, Path]:
    """Bundled HDRI name -> .exr in a Blender installation (``<version>/datafiles/studiolights/world``)."""
    executable = shutil.which(str(blender))
    if executable is None:
        raise NeroDataError(blender, "Blender executable not found or not executable")
    return environments_under(Path(executable).resolve().parent)


def resolve_hdr(name_or_path: str, blender: Optional[Path]) -> Path:
    """A bundled HDRI name or an .exr/.hdr path; with ``--blender``, names come from that Blender's datafiles."""
    if blender is None or Path(name_or_path).suffix.lower() in (".exr", ".hdr"):
        return resolve_environment(name_or_path)
    return resolve_environment(name_or_path, environments_next_to(blender) or bundled_environments())


def material_source(material: Path) -> Path:
    """The .glb or NeRO folder to read: a folder without ``metallic.npy`` but with ``material.glb`` means the .glb."""
    if material.is_dir() and not (material / "metallic.npy").exists() and (material / GLB_IN_FOLDER).is_file():
        return material / GLB_IN_FOLDER
    return material


def _load_geometry(config: RelightConfig, console: Console) -> Tuple[Dict[str, np.ndarray], Dict[str, Any], Dict]:
    """Read and check the mesh and materials.

    Returns:
        the arrays for ``relight_mesh.npz``, the job's material entry, and the glTF textures to write
        (job key -> PIL image).
    """
    material_path = material_source(Path(config.material))
    if material_path.suffix.lower() == ".glb":
        if config.mesh is not None:
            console.print(f"[yellow]{config.mesh}: ignored, the .glb carries its own mesh")
        textured: TexturedMesh = load_glb(material_path)
        arrays = {"vertices": textured.vertices, "faces": textured.faces, "uv": textured.uv}
        material_job = {
            "kind": "texture",
            "base_color_image": None,
            "metallic_roughness_image": None,
            "base_color_factor": list(textured.base_color_factor),
            "metallic_factor": textured.metallic_factor,
            "roughness_factor": textured.roughness_factor,
        }
        textures = {"base_color_image": textured.base_color_texture}
        textures["metallic_roughness_image"] = textured.metallic_roughness_texture
        return arrays, material_job, {key: image for key, image in textures.items() if image is not None}
    if config.mesh is None:
        raise NeroDataError(material_path, "a NeRO material folder needs --mesh (the mesh its rows belong to)")
    vertices, faces = load_mesh(config.mesh)
    materials = load_nero_materials(material_path, len(vertices))
    arrays = {
        "vertices": vertices,
        "faces": faces,
        "albedo": materials.albedo,
        "metallic": materials.metallic,
        "roughness": materials.roughness,
    }
    return arrays, {"kind": "vertex"}, {}


def _cameras(config: RelightConfig, rotation: np.ndarray) -> RelightCameras:
    if config.cameras_from is not None:
        return dataset_cameras(config.cameras_from, rotation, config.view_ids)
    return orbit_cameras(
        config.num_frames, config.resolution, config.radius, config.elevation_deg, config.azimuth_center_deg
    )


def prepare_job(config: RelightConfig, console: Optional[Console] = None) -> Tuple[Path, int]:
    """Check the inputs and write the backend's job files; returns the job path and the number of frames."""
    console = console or Console()
    config.validate()
    environment = resolve_hdr(config.hdr, config.blender)
    up_axis = resolve_up_axis(config)
    rotation = object_rotation(up_axis)
    cameras = _cameras(config, rotation)
    arrays, material_job, textures = _load_geometry(config, console)
    # Every input is checked: only now is anything written.
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    digest = inputs_digest(arrays, textures)
    for key, image in textures.items():
        texture_path = output_dir / TEXTURE_DIR / f"{key.removesuffix('_image')}.png"
        with atomic_path(texture_path) as tmp_path:
            image.save(tmp_path)
        material_job[key] = str(texture_path.resolve())
    with atomic_path(output_dir / MESH_FILE) as tmp_path:
        np.savez(tmp_path, **arrays)
    frames = []
    for name, w2c, intrinsics in zip(cameras.names, cameras.w2c, cameras.intrinsics):
        frame = blender_camera_parameters(w2c, intrinsics, cameras.width, cameras.height)
        frame["path"] = str((output_dir / f"{name}.png").resolve())
        frames.append(frame)
    job = {
        "mesh_npz": str((output_dir / MESH_FILE).resolve()),
        "material": material_job,
        "up_axis": up_axis,
        "object_rotation_x_deg": 90.0 if up_axis == "y" else 0.0,
        "environment": str(environment),
        "environment_strength": config.hdr_strength,
        "environment_rotation_deg": config.hdr_rotation_deg,
        "width": cameras.width,
        "height": cameras.height,
        "samples": config.samples,
        "denoise": config.denoise,
        "device": config.device,
        "transparent": config.transparent,
        "threads": config.threads,
        "seed": config.seed,
        "blend_path": str((output_dir / BLEND_FILE).resolve()),
        "inputs_digest": digest,
        "frames": frames,
    }
    job_path = output_dir / JOB_FILE
    stale, changed = stale_frames(job_path, job)
    if stale:
        console.print(
            f"[yellow]{output_dir}: {len(stale)} frame(s) no longer match this job ({', '.join(changed)} changed): "
            "removed, and rendered again where it asks for them"
        )
        for path in stale:
            path.unlink()
    atomic_write_bytes(job_path, json.dumps(job, indent=1).encode())
    return job_path, len(frames)


def inputs_digest(arrays: Dict[str, np.ndarray], textures: Dict[str, Any]) -> str:
    """A fingerprint of the mesh, materials and textures a job renders (their file names stay the same)."""
    digest = hashlib.sha1()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    for name in sorted(textures):
        digest.update(name.encode())
        digest.update(np.asarray(textures[name]).tobytes())
    return digest.hexdigest()


def stale_frames(previous_job_path: Path, job: Dict[str, Any]) -> Tuple[List[Path], List[str]]:
    """The frames in the folder that ``job`` must not keep, and what changed.

    A frame of the previous job is stale when a setting that shows in the image changed (names, "inputs" for the
    mesh or materials), when its camera changed ("cameras"), or when the new job has no frame of that name
    ("frames asked for": ``nero-eval relight`` would score them). Frames are matched by file name and
    the job's own file paths are not compared, so a moved folder resumes. A setting the previous job lacks (written
    by an older version) counts as unchanged; a folder without a readable previous job keeps its frames.
    """
    try:
        previous = json.loads(previous_job_path.read_text())
    except (OSError, ValueError):
        return [], []
    if not isinstance(previous, dict) or not isinstance(previous.get("frames"), list):
        return [], []
    job = json.loads(json.dumps(job))  # as the previous one was read back: lists, not tuples
    labels = {"inputs_digest": "inputs (mesh or materials)", "environment": "environment (--hdr)"}
    changed = [
        labels.get(key, key)
        for key in job
        if key not in NOT_IN_THE_IMAGE and key in previous and previous[key] != job[key]
    ]

    def by_name(frames: List[Any]) -> Dict[str, Dict[str, Any]]:
        return {Path(frame["path"]).name: frame for frame in frames if isinstance(frame, dict) and "path" in frame}

    def camera(frame: Dict[str, Any]) -> Dict[str, Any]:
        return {key: value for key, value in frame.items() if key != "path"}

    previous_frames, new_frames = by_name(previous["frames"]), by_name(job["frames"])
    folder = previous_job_path.parent
    stale: List[Path] = []
    moved = dropped = False
    for name, old in previous_frames.items():
        path = folder / name
        if not path.exists():
            continue
        new = new_frames.get(name)
        if new is None:
            dropped = True
        elif camera(new) != camera(old):
            moved = True
        elif not changed:
            continue
        stale.append(path)
    return stale, changed + (["cameras"] if moved else []) + (["frames asked for"] if dropped else [])


def relight(config: RelightConfig, console: Optional[Console] = None) -> RelightResult:
    """Render the relit frames (and the optional turntable video) described by ``config``.

    Raises:
        NeroDataError: bad input (missing or malformed file, unknown environment, wrong .npy length).
        BlenderNotFoundError: neither bpy nor ``--blender``.
        RelightRenderError: Blender failed.
    """
    console = console or Console()
    config.validate()
    # Find Blender first: a missing Blender is reported before any file is read or written.
    command = backend_command((Path(config.output_dir) / JOB_FILE).resolve(), config.blender)
    _, num_frames = prepare_job(config, console)
    reports = run_backend(
        command,
        num_frames,
        description=f"Relighting under {config.hdr}",
        console=console,
        verbose=config.verbose,
    )
    frame_paths = [report.path for report in reports]
    seconds = [report.seconds for report in reports if report.seconds is not None]
    video_path = None
    if config.video is not None:
        video_path = write_turntable(frame_paths, config.video, config.fps)
        if video_path != config.video:
            console.print(f"[yellow]{config.video}: imageio-ffmpeg is not installed, wrote {video_path} instead")
    return RelightResult(frame_paths, Path(config.output_dir) / BLEND_FILE, video_path, seconds)
