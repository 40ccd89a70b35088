"""``nero-process-data``: a folder of photos to NeRO's custom layout, with no manual step.

Example::

    nero-process-data --images photos/ --output-dir data/my-object
    ns-train nero-shape-fast nero-custom --data data/my-object

Structure-from-motion (pycolmap on the CPU, or the colmap executable when one is on PATH) registers the photos and undistorts them; the object's bounding sphere, up,
forward and table are estimated from the cameras and the sparse points and written to ``OUT/nero_frame.json`` (read
it, edit it if the estimate is off; training uses it). The photo folder is only read.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import tyro
from rich.console import Console

from nero_nerfstudio.core.errors import NeroDataError, NeroInputError
from nero_nerfstudio.data.object_frame import FRAME_FILE_NAME, describe, estimate_object_frame
from nero_nerfstudio.process_data.colmap_sfm import Matcher, SfmTool, choose_sfm_tool, list_photos, run_sfm
from nero_nerfstudio.utils.colmap_io import read_colmap_cameras, read_colmap_points

CONSOLE = Console()
ERROR_CONSOLE = Console(stderr=True)


@dataclass
class ProcessData:
    """Register a folder of photos with structure-from-motion and write NeRO's custom layout."""

    images: Path
    """Folder of photos (.jpg/.png) of one object from all around it, all from one camera at one size."""
    output_dir: Path
    """Folder to create (absent or empty, and not inside the photo folder)."""
    matcher: Matcher = "exhaustive"
    """exhaustive: every pair of photos (up to a few hundred); sequential: frames of a video, in order."""
    max_image_size: int = 1600
    """Long side the features are found at (the poses are for the full-size photos)."""
    threads: int = -1
    """CPU threads for structure-from-motion (-1: all)."""
    sfm_tool: SfmTool = "auto"
    """pycolmap (installed with this package, CPU), the colmap executable (a CUDA build uses the GPU), or auto: the
    executable when one is on PATH, else pycolmap."""

    def _check_output_dir(self) -> None:
        output_dir, images = self.output_dir.resolve(), self.images.resolve()
        if output_dir == images or images in output_dir.parents:
            raise NeroDataError(self.output_dir, "is inside the photo folder; nothing is written there, choose another")
        if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
            raise NeroDataError(self.output_dir, "output folder exists and is not empty; choose a new folder")

    def main(self) -> None:
        """Check the inputs, run SfM, estimate the object frame, and print what to run next."""
        if self.max_image_size < 64:
            raise NeroDataError(self.images, f"--max-image-size must be at least 64, got {self.max_image_size}")
        photos = list_photos(self.images)
        self._check_output_dir()
        choose_sfm_tool(self.sfm_tool)  # a missing executable is refused before anything is made
        created = not self.output_dir.exists()
        try:
            self._process(photos)
        except BaseException:
            # A failed run leaves the output folder as it found it (absent or empty), so the same command can run
            # again.
            if created:
                shutil.rmtree(self.output_dir, ignore_errors=True)
            elif self.output_dir.is_dir():
                for path in self.output_dir.iterdir():
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
            raise

    def _process(self, photos: List[Path]) -> None:
        """SfM into the output folder, then the object frame beside it."""
        start = time.perf_counter()
        with CONSOLE.status("Structure-from-motion") as status:
            result = run_sfm(
                photos,
                self.output_dir,
                matcher=self.matcher,
                max_image_size=self.max_image_size,
                num_threads=self.threads,
                tool=self.sfm_tool,
                stage=lambda text: status.update(f"[bold]{text}"),
            )
        CONSOLE.print(
            f"SfM registered {result.num_registered} of {result.num_images} photos, {result.num_points} sparse points "
            f"({result.tool}, {time.perf_counter() - start:.0f} s)",
            soft_wrap=True,
        )
        cameras = read_colmap_cameras(result.model_folder)
        frame = estimate_object_frame(
            cameras.w2c,
            cameras.intrinsics,
            cameras.sizes,
            read_colmap_points(result.model_folder),
            source=result.model_folder / "images.bin",
        )
        frame.write(self.output_dir / FRAME_FILE_NAME)
        CONSOLE.print("Estimated object frame (COLMAP coordinates):\n  " + "\n  ".join(describe(frame)), soft_wrap=True)
        CONSOLE.print(
            f"Wrote {self.output_dir} (images/, colmap/sparse/0, {FRAME_FILE_NAME}). Next:\n"
            f"  ns-train nero-shape-fast nero-custom --data {self.output_dir}",
            style="green",
            soft_wrap=True,
        )


def entrypoint() -> None:
    """Console-script entry point: bad input is one line and exit code 1."""
    tyro.extras.set_accent_color("bright_yellow")
    config = tyro.cli(ProcessData)
    try:
        config.main()
    except NeroInputError as error:
        ERROR_CONSOLE.print(f"nero-process-data: {error}", style="bold red", markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    entrypoint()
