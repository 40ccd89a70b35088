"""``nero-render-scene``: render a glossy test scene with Blender in NeRO's dataset layouts.

Example::

    nero-render-scene --output-dir data/bunny-synthetic --layout synthetic --mesh bunny --environment courtyard
"""

from __future__ import annotations

import sys

import tyro
from rich.console import Console

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.scenes.render_scene import BlenderRenderError, RenderSceneConfig, render_scene


def main(config: RenderSceneConfig) -> None:
    try:
        output_dir = render_scene(config)
    except (NeroDataError, BlenderRenderError) as error:
        Console(stderr=True).print(f"nero-render-scene: {error}", style="bold red", markup=False, soft_wrap=True)
        sys.exit(1)
    Console().print(f"Wrote {config.layout} scene to {output_dir}", style="green", markup=False, soft_wrap=True)


def entrypoint() -> None:
    """Console-script entry point."""
    tyro.extras.set_accent_color("bright_yellow")
    main(tyro.cli(RenderSceneConfig))


if __name__ == "__main__":
    entrypoint()
