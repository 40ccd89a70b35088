"""``nero-relight``: relight a recovered mesh and its materials under an HDR environment with Blender (headless).

Example::

    nero-relight --mesh mesh.ply --material materials/ --hdr sunset --output-dir relit/ --up-axis y \\
        --resolution 256 --num-frames 8 --samples 64 --video relit/turntable.mp4
"""

from __future__ import annotations

import sys

import tyro
from rich.console import Console

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.relight.blender_launcher import BlenderNotFoundError, RelightRenderError
from nero_nerfstudio.relight.relight import RelightConfig, relight


def main(config: RelightConfig) -> None:
    console = Console()
    try:
        result = relight(config, console)
    except (NeroDataError, BlenderNotFoundError, RelightRenderError) as error:
        console.print(f"[bold red]nero-relight: {error}", markup=True, highlight=False)
        sys.exit(1)
    seconds = result.seconds_per_frame
    if len(seconds) == 1:
        console.print(f"1 frame rendered in {seconds[0]:.2f} s")
    elif seconds:
        # The first frame also builds the BVH and loads the environment; later ones reuse them (persistent data).
        later = sum(seconds[1:]) / len(seconds[1:])
        console.print(f"{len(seconds)} frames rendered: first {seconds[0]:.2f} s, then {later:.2f} s per frame")
    console.print(f"[green]Wrote {len(result.frame_paths)} frames and {result.blend_path} to {config.output_dir}")
    if result.video_path is not None:
        console.print(f"[green]Wrote {result.video_path}")


def entrypoint() -> None:
    """Console-script entry point."""
    tyro.extras.set_accent_color("bright_yellow")
    main(tyro.cli(RelightConfig))


if __name__ == "__main__":
    entrypoint()
