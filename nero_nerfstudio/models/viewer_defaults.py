"""What nerfstudio's viewer starts with for a NeRO run: a camera outside the unit sphere that looks at the object, and
on the CPU a render resolution that finishes a frame.

nerfstudio's viewer hands every ``ViewerControl`` it finds on the pipeline its own state when it starts, in
``ns-train`` and ``ns-viewer`` alike; :class:`NeroViewerDefaults` is one, held by the model. Without it the viewer
opens at viser's default camera, inside NeRO's unit sphere (a blurry close-up), and renders 512 px frames, which take
minutes each on a CPU.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import ViewerControl

from nero_nerfstudio.core.keys import NeroKey

CPU_MAX_RES = 128
"""The viewer's "Max res" on a CPU: a frame of the shape model in a few seconds."""
FALLBACK_POSITION = {"z": (2.5, -2.5, 1.5), "y": (2.5, 1.5, 2.5)}
"""Where the camera starts when no training camera is drawn, by the dataset's up axis (normalised frame)."""


class NeroViewerDefaults(ViewerControl):
    """Starts every browser's camera at the first training camera (else at :data:`FALLBACK_POSITION`), looking at
    the object's centre, the origin, with the dataset's up (z for photos, y for GlossySynthetic); on the CPU sets
    "Max res" to :data:`CPU_MAX_RES` and says so."""

    def _setup(self, viewer: Any) -> None:
        super()._setup(viewer)
        if torch.device(viewer.pipeline.device).type == "cpu":
            # ControlPanel keeps the slider private; there is no setter for it.
            viewer.control_panel._max_res.value = CPU_MAX_RES  # pylint: disable=protected-access
            CONSOLE.print(
                f"[bold yellow]Viewer on the CPU: 'Max res' set to {CPU_MAX_RES} px (Render tab) so frames finish in "
                "seconds; raise it for a sharper, slower view."
            )
        self.viser_server.on_client_connect(self.place_camera)

    def up_axis(self) -> str:
        """``"y"`` or ``"z"``: what the dataparser says is up."""
        outputs = getattr(self.viewer.pipeline.datamanager, "train_dataparser_outputs", None)
        return "y" if outputs is not None and outputs.metadata.get(NeroKey.UP_AXIS) == "y" else "z"

    def start_position(self) -> np.ndarray:
        """The first drawn training camera's centre (normalised frame), or the fallback."""
        cameras = getattr(self.viewer, "original_c2w", None) or {}
        if cameras:
            return np.asarray(cameras[min(cameras)], dtype=np.float64)[:3, 3]
        return np.asarray(FALLBACK_POSITION[self.up_axis()], dtype=np.float64)

    def place_camera(self, client: Any, position: Optional[np.ndarray] = None) -> None:
        """Put ``client``'s camera at ``position`` (default :meth:`start_position`), looking at the origin."""
        from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO  # pylint: disable=import-outside-toplevel

        position = self.start_position() if position is None else position
        with client.atomic():
            client.camera.up_direction = (0.0, 1.0, 0.0) if self.up_axis() == "y" else (0.0, 0.0, 1.0)
            client.camera.position = tuple(position * VISER_NERFSTUDIO_SCALE_RATIO)
            client.camera.look_at = (0.0, 0.0, 0.0)
