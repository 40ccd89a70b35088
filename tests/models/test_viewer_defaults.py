"""The viewer's start for a NeRO run: a camera outside the unit sphere looking at the object, a CPU-sized frame.

nerfstudio's viewer finds the model's ``NeroViewerDefaults`` among the pipeline's ``ViewerControl`` objects (the same
lookup it runs at start-up) and hands it its state; here that state is a stand-in with the parts it touches."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from nerfstudio.viewer.utils import parse_object
from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO
from nerfstudio.viewer.viewer_elements import ViewerControl
from test_nero_shape import make_model

from nero_nerfstudio.models.viewer_defaults import CPU_MAX_RES, NeroViewerDefaults


class FakeClient:
    def __init__(self) -> None:
        self.camera = SimpleNamespace(position=(0.3, 0.3, 0.3), look_at=(1.0, 0.0, 0.0), up_direction=(0.0, 1.0, 0.0))

    def atomic(self):
        return self  # used as a context manager

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def fake_viewer(original_c2w=None, device: str = "cpu", up_axis: str = "z"):
    callbacks, output_changed = [], []
    outputs = SimpleNamespace(metadata={"up_axis": up_axis})
    return SimpleNamespace(
        pipeline=SimpleNamespace(
            device=torch.device(device), datamanager=SimpleNamespace(train_dataparser_outputs=outputs)
        ),
        viser_server=SimpleNamespace(on_client_connect=callbacks.append),
        control_panel=SimpleNamespace(
            _max_res=SimpleNamespace(value=512),
            _normalize=SimpleNamespace(value=True),
            _split_normalize=SimpleNamespace(value=True),
            _output_render=SimpleNamespace(gui_handle=SimpleNamespace(on_update=output_changed.append)),
            _split_output_render=SimpleNamespace(gui_handle=SimpleNamespace(on_update=output_changed.append)),
            output_render="rgb",
            split_output_render="rgb",
        ),
        original_c2w=original_c2w or {},
        connect=callbacks,
        output_changed=output_changed,
    )


def test_the_viewer_finds_the_model_s_defaults_and_starts_outside_the_sphere_at_a_training_camera():
    model = make_model()
    pipeline = SimpleNamespace(model=model)
    (control,) = [element for _, element in parse_object(pipeline, ViewerControl, "Custom Elements")]
    assert isinstance(control, NeroViewerDefaults)

    c2w = np.eye(4)[:3]
    c2w[:, 3] = (0.0, -2.8, 1.1)
    viewer = fake_viewer({7: c2w, 9: np.eye(4)[:3]})
    control._setup(viewer)
    assert viewer.control_panel._max_res.value == CPU_MAX_RES  # the test model is on the CPU
    client = FakeClient()
    for callback in viewer.connect:
        callback(client)
    position = np.asarray(client.camera.position) / VISER_NERFSTUDIO_SCALE_RATIO
    np.testing.assert_allclose(position, (0.0, -2.8, 1.1))
    assert np.linalg.norm(position) > 1.0
    assert tuple(client.camera.look_at) == (0.0, 0.0, 0.0) and tuple(client.camera.up_direction) == (0.0, 0.0, 1.0)


def test_without_training_cameras_on_a_gpu_and_y_up():
    """GlossySynthetic scenes stay y-up in the normalised frame: the viewer's up follows the dataparser."""
    control = NeroViewerDefaults()
    viewer = fake_viewer(device="cuda", up_axis="y")
    control._setup(viewer)
    assert viewer.control_panel._max_res.value == 512
    client = FakeClient()
    viewer.connect[0](client)
    position = np.asarray(client.camera.position) / VISER_NERFSTUDIO_SCALE_RATIO
    assert np.linalg.norm(position) > 1.5 and position[1] > 0.5  # above the object, y being up
    assert tuple(client.camera.up_direction) == (0.0, 1.0, 0.0)


def test_material_maps_are_shown_on_their_own_scale_and_depth_normalised():
    """A metallic of 0.3 must read as 0.3 on the colormap, not as the frame's maximum (nerfstudio normalises)."""
    control = NeroViewerDefaults()
    viewer = fake_viewer()
    control._setup(viewer)
    main_view, split_view = viewer.output_changed  # one callback on each output dropdown
    assert main_view == split_view
    panel = viewer.control_panel
    for output, normalize in (("metallic", False), ("depth", True), ("roughness", False), ("rgb", True),
                              ("occlusion_prob", False), ("accumulation", False)):  # fmt: skip
        panel.output_render = output
        main_view(None)
        assert panel._normalize.value is normalize and panel._split_normalize.value is True, output
    panel.split_output_render = "metallic"
    split_view(None)
    assert panel._split_normalize.value is False
