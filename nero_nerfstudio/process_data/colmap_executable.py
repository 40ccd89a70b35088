"""Structure-from-motion with the ``colmap`` executable (a CUDA build finds and matches features on the GPU).

The same steps as the pycolmap path of :mod:`nero_nerfstudio.process_data.colmap_sfm`, as COLMAP's command-line
tools: ``feature_extractor``, ``exhaustive_matcher`` / ``sequential_matcher``, ``mapper`` and
``image_undistorter``. Options are the ones COLMAP 3.8 and later share. Each tool's output goes to a log file; a
failing tool is one error line with the log's last line.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from nero_nerfstudio.core.errors import NeroDataError

EXECUTABLE = "colmap"


def find_colmap() -> Optional[str]:
    """The ``colmap`` executable on ``PATH`` (``None`` when there is none)."""
    return shutil.which(EXECUTABLE)


def run_colmap(executable: str, tool: str, options: Dict[str, object], log_path: Path) -> None:
    """``colmap TOOL --key value ...`` with its output appended to ``log_path``.

    Raises:
        NeroDataError: naming the log, with the tool's exit code and its last line of output.
    """
    argv = [executable, tool] + [item for key, value in options.items() for item in (f"--{key}", str(value))]
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        completed = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        raise NeroDataError(log_path, f"`colmap {tool}` failed (exit {completed.returncode}): {lines[-1].strip()}")


def _image_list(names: Sequence[str], path: Path) -> Path:
    path.write_text("".join(f"{name}\n" for name in names))
    return path


def reconstruct(
    executable: str,
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
    import torch  # pylint: disable=import-outside-toplevel

    image_list = _image_list(names, sparse_dir.parent / "image_list.txt")
    # Without CUDA, COLMAP's "GPU" SIFT needs an OpenGL display: headless machines must ask for the CPU.
    use_gpu = int(torch.cuda.is_available())
    announce(f"Finding features in {len(names)} photos")
    run_colmap(executable, "feature_extractor", {
        "database_path": database, "image_path": images_dir, "image_list_path": image_list,
        "ImageReader.camera_model": "SIMPLE_RADIAL", "ImageReader.single_camera": 1,
        "SiftExtraction.max_image_size": max_image_size, "SiftExtraction.num_threads": num_threads,
        "SiftExtraction.use_gpu": use_gpu,
    }, log_path)  # fmt: skip
    announce(f"Matching features ({matcher})")
    run_colmap(executable, f"{matcher}_matcher", {
        "database_path": database, "SiftMatching.num_threads": num_threads, "SiftMatching.use_gpu": use_gpu,
    }, log_path)  # fmt: skip
    sparse_dir.mkdir(parents=True, exist_ok=True)
    announce("Reconstructing the cameras (incremental mapping)")
    run_colmap(executable, "mapper", {
        "database_path": database, "image_path": images_dir, "image_list_path": image_list,
        "output_path": sparse_dir, "Mapper.num_threads": num_threads, "random_seed": 0,
    }, log_path)  # fmt: skip
    return sorted(folder for folder in sparse_dir.iterdir() if (folder / "images.bin").is_file())


def undistort(
    executable: str, model_folder: Path, images_dir: Path, names: Sequence[str], output_dir: Path, log_path: Path
) -> None:
    """COLMAP's undistortion to PINHOLE cameras: ``output_dir/images`` and ``output_dir/sparse``."""
    image_list = _image_list(names, output_dir.parent / "undistort_list.txt")
    run_colmap(executable, "image_undistorter", {
        "image_path": images_dir, "input_path": model_folder, "output_path": output_dir,
        "image_list_path": image_list, "output_type": "COLMAP",
    }, log_path)  # fmt: skip
