"""Structure-from-motion with the ``colmap`` executable (a CUDA build finds and matches features on the GPU).

The same steps as the pycolmap path of :mod:`nero_nerfstudio.process_data.colmap_sfm`, as COLMAP's command-line
tools: ``feature_extractor``, ``exhaustive_matcher`` / ``sequential_matcher``, ``mapper`` and
``image_undistorter``. COLMAP 3.13 renamed the feature options (``SiftExtraction.*`` -> ``FeatureExtraction.*``,
``SiftMatching.*`` -> ``FeatureMatching.*``) without aliases: :func:`inspect_colmap` reads which ones the installed
build takes, and whether it was built with CUDA. Each tool's output goes to a log file; a failing tool is one error
line with the log's most telling line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from nero_nerfstudio.core.errors import NeroDataError

EXECUTABLE = "colmap"
_ERROR_LINE = re.compile(r"^(?:[EF]\d{4} |ERROR|Error|error:|Check failed)")
"""glog's error and fatal lines (``E1130 12:00:00 ...``), COLMAP's own error prints, failed CHECKs."""


@dataclass(frozen=True)
class ColmapBuild:
    """What the installed executable takes."""

    path: str
    extraction: str
    """Prefix of the feature-extraction options: ``SiftExtraction`` (up to 3.12) or ``FeatureExtraction``."""
    matching: str
    """Prefix of the feature-matching options: ``SiftMatching`` or ``FeatureMatching``."""
    cuda: bool
    """Built with CUDA: GPU feature extraction and matching. Without it COLMAP's "GPU" path needs an OpenGL display,
    so headless machines must ask for the CPU."""


def find_colmap() -> Optional[str]:
    """The ``colmap`` executable on ``PATH`` (``None`` when there is none)."""
    return shutil.which(EXECUTABLE)


def _help(executable: str, *command: str) -> str:
    completed = subprocess.run([executable, *command], capture_output=True, text=True, check=False, timeout=60)
    return completed.stdout + completed.stderr


def inspect_colmap(executable: str) -> ColmapBuild:
    """The option names and CUDA support of ``executable`` (from its help texts)."""
    extraction_help = _help(executable, "feature_extractor", "-h")
    new_names = "FeatureExtraction." in extraction_help
    banner = _help(executable, "-h")
    return ColmapBuild(
        path=executable,
        extraction="FeatureExtraction" if new_names else "SiftExtraction",
        matching="FeatureMatching" if new_names else "SiftMatching",
        cuda="with CUDA" in banner,
    )


def telling_line(log_text: str) -> str:
    """The line of a tool's output that says what went wrong: its last error line, else its last line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    return (errors or lines or ["no output"])[-1]


def run_colmap(executable: str, tool: str, options: Dict[str, object], log_path: Path) -> None:
    """``colmap TOOL --key value ...`` with its output appended to ``log_path``.

    Raises:
        NeroDataError: naming the log, with the tool's exit code and :func:`telling_line` of its output.
    """
    argv = [executable, tool] + [item for key, value in options.items() for item in (f"--{key}", str(value))]
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        completed = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        output = log_path.read_text().split("$ " + " ".join(argv), 1)[-1]
        raise NeroDataError(log_path, f"`colmap {tool}` failed (exit {completed.returncode}): {telling_line(output)}")


def _image_list(names: Sequence[str], path: Path) -> Path:
    path.write_text("".join(f"{name}\n" for name in names))
    return path


def reconstruct(
    build: ColmapBuild,
    database: Path,
    images_dir: Path,
    names: Sequence[str],
    sparse_dir: Path,
    matcher: str,
    max_image_size: int,
    num_threads: int,
    log_path: Path,
    announce: Callable[[str], None],
) -> List[Path]:
    """Features, matches and incremental mapping of ``names`` (one shared SIMPLE_RADIAL camera); the model folders
    the mapper wrote under ``sparse_dir`` (none when nothing registered)."""
    image_list = _image_list(names, sparse_dir.parent / "image_list.txt")
    use_gpu = int(build.cuda)
    extraction, matching = build.extraction, build.matching
    announce(f"Finding features in {len(names)} photos")
    run_colmap(build.path, "feature_extractor", {
        "database_path": database, "image_path": images_dir, "image_list_path": image_list,
        "ImageReader.camera_model": "SIMPLE_RADIAL", "ImageReader.single_camera": 1,
        f"{extraction}.max_image_size": max_image_size, f"{extraction}.num_threads": num_threads,
        f"{extraction}.use_gpu": use_gpu,
    }, log_path)  # fmt: skip
    announce(f"Matching features ({matcher})")
    run_colmap(build.path, f"{matcher}_matcher", {
        "database_path": database, f"{matching}.num_threads": num_threads, f"{matching}.use_gpu": use_gpu,
    }, log_path)  # fmt: skip
    sparse_dir.mkdir(parents=True, exist_ok=True)
    announce("Reconstructing the cameras (incremental mapping)")
    run_colmap(build.path, "mapper", {
        "database_path": database, "image_path": images_dir, "image_list_path": image_list,
        "output_path": sparse_dir, "Mapper.num_threads": num_threads, "random_seed": 0,
    }, log_path)  # fmt: skip
    return sorted(folder for folder in sparse_dir.iterdir() if (folder / "images.bin").is_file())


def undistort(
    build: ColmapBuild, model_folder: Path, images_dir: Path, names: Sequence[str], output_dir: Path, log_path: Path
) -> None:
    """COLMAP's undistortion to PINHOLE cameras: ``output_dir/images`` and ``output_dir/sparse``."""
    image_list = _image_list(names, output_dir.parent / "undistort_list.txt")
    run_colmap(build.path, "image_undistorter", {
        "image_path": images_dir, "input_path": model_folder, "output_path": output_dir,
        "image_list_path": image_list, "output_type": "COLMAP",
    }, log_path)  # fmt: skip
