"""What nerfstudio's viewer starts with for a NeRO run: a camera outside the unit sphere that looks at the object, on
the CPU a render resolution that finishes a frame, and material maps on their own 0-1 scale.

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
FRACTION_CHANNELS = frozenset({"metallic", "roughness", "occlusion_prob", "accumulation", NeroKey.HIT_MASK.value})
"""One-channel outputs that are fractions in [0, 1]: shown on that fixed scale ("Normalize" off), so a metallic of 0.3
reads as 0.3 on the colormap, not as the frame's maximum. Other outputs (depth) keep nerfstudio's per-frame scale."""


class NeroViewerDefaults(ViewerControl):
    """Starts every browser's camera at the first training camera (else at :data:`FALLBACK_POSITION`), looking at
    the object's centre, the origin, with the dataset's up (z for photos, y for GlossySynthetic); on the CPU sets
    "Max res" to :data:`CPU_MAX_RES` and says so; turns "Normalize" off for :data:`FRACTION_CHANNELS` and on for
    the others whenever the output type changes."""

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
        # nerfstudio's output dropdowns take one callback, their own; the viser handles beneath take more.
        panel = viewer.control_panel
        for dropdown in (panel._output_render, panel._split_output_render):  # pylint: disable=protected-access
            dropdown.gui_handle.on_update(self.set_colormap_scale)

    def set_colormap_scale(self, _event: Any) -> None:
        """"Normalize" off for a fraction channel, on for any other output, in the main and the split view. Only a
        change is written: each write makes nerfstudio render the frame again."""
        panel = self.viewer.control_panel
        # pylint: disable-next=protected-access
        views = ((panel.output_render, panel._normalize), (panel.split_output_render, panel._split_normalize))
        for output, normalize in views:
            wanted = output not in FRACTION_CHANNELS
            if normalize.value != wanted:
                normalize.value = wanted

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
