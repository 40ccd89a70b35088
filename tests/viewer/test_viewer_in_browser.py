"""nerfstudio's viewer on a trained nero-shape run, seen in a real browser.

``ns-viewer`` serves the ``trained_shape_run`` fixture on the CPU; headless Chromium (Debian's, installed by
.ci/setup), driven by Playwright over the DevTools protocol, opens it as a user would. The first frame must show the
object, the output dropdown must list NeRO's channels, normals, depth and metallic must be flat off the object, and
metallic must be shown on its own 0-1 scale. The screenshots are kept in
``$NERO_TEST_ARTIFACTS/viewer`` (default ``test-artifacts/viewer`` at the repository root).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from nero_nerfstudio.models.viewer_defaults import CPU_MAX_RES

pytestmark = pytest.mark.slow

CHROMIUM = next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
ARTIFACTS = Path(os.environ.get("NERO_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
NERO_CHANNELS = ("rgb", "accumulation", "depth", "normals", "metallic", "roughness", "albedo", "occlusion_prob",
                 "diffuse_light", "specular_light")  # fmt: skip
SHOWN_CHANNELS = ("normals", "depth", "metallic")
"""Each costs a small and a 128 px frame, a few seconds on the CPU."""
TIME_LIMIT_S = 300.0
"""For everything from starting ns-viewer to the last frame (about 40 s on 2 CPU cores)."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def check(self, waiting_for: str) -> None:
        if time.monotonic() > self.end:
            pytest.fail(f"gave up after {TIME_LIMIT_S:.0f} s waiting for {waiting_for}")


@pytest.fixture()
def viewer(trained_shape_run, tmp_path: Path) -> Iterator[Tuple[str, Deadline]]:
    """``ns-viewer`` on the trained run, started from another folder on the CPU; its URL once it serves."""
    deadline = Deadline(TIME_LIMIT_S)
    # The CPU's "Max res" (128 px) is what the frames are recognised by; one OpenMP thread leaves a core to Chromium.
    environment = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200", CUDA_VISIBLE_DEVICES="")
    command = [str(Path(sys.executable).parent / "ns-viewer"), "--load-config", str(trained_shape_run.config_path),
               "--viewer.websocket-host", "127.0.0.1"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )
    output: List[str] = []

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=read_output, daemon=True).start()
    try:
        # The run loaded, viser serving, and the viewer's controls set up (NeroViewerDefaults says so on the CPU).
        while not any("'Max res' set to" in line for line in output):
            if process.poll() is not None:
                pytest.fail("ns-viewer stopped:\n" + "".join(output[-40:]))
            deadline.check("ns-viewer to load the run:\n" + "".join(output[-40:]))
            time.sleep(0.5)
        port = next(match.group(1) for line in output if (match := re.search(r"ws://[\d.]+:(\d+)", line)))
        yield f"http://127.0.0.1:{port}", deadline
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


class ViewerFrames:
    """The sizes of the images the viewer has sent to the browser, with their arrival times: the JPEGs in viser's
    websocket messages (nerfstudio renders a small frame first, then one at "Max res")."""

    def __init__(self, page) -> None:
        self.page = page
        self.frames: List[Tuple[float, Tuple[int, int]]] = []
        page.on("websocket", lambda websocket: websocket.on("framereceived", self._received))

    def _received(self, payload) -> None:
        if not isinstance(payload, bytes):
            return
        # One message can hold several (camera thumbnails and the frame); a stray marker is no image.
        for start in (match.start() for match in re.finditer(b"\xff\xd8\xff", payload)):
            try:
                self.frames.append((time.monotonic(), Image.open(io.BytesIO(payload[start:])).size))
            except Exception:  # pylint: disable=broad-except
                continue

    def wait_for_full_resolution(self, after: int, deadline: Deadline) -> None:
        """Waits until, after the first ``after`` frames, the newest frame is at "Max res" and the viewer has sent
        nothing for 1.5 s (the finished frame, not one from before the last change)."""
        while True:
            new = self.frames[after:]
            if new and max(new[-1][1]) == CPU_MAX_RES and time.monotonic() - new[-1][0] > 1.5:
                return
            deadline.check(f"a {CPU_MAX_RES} px frame; frames so far: {[size for _, size in self.frames]}")
            self.page.wait_for_timeout(200)  # Playwright's sync API delivers events only while it waits


def _screenshot(page, canvas) -> np.ndarray:
    """The part of the 3-D canvas left of the control panel, ``[H, W, 3]`` uint8."""
    shot = iio.imread(io.BytesIO(canvas.screenshot()))[..., :3]
    panel_left = page.get_by_role("button", name=re.compile("Train Cams")).bounding_box()["x"] - 12
    return shot[:, : int(panel_left - canvas.bounding_box()["x"])]


def _choose_output(
    page, frames: ViewerFrames, canvas, name: str, deadline: Deadline
) -> Tuple[List[str], np.ndarray, bool]:
    """Picks ``name`` in the "Output type" dropdown as a user does; returns the dropdown's options, the finished frame
    and whether "Normalize" is ticked."""
    page.get_by_text("Output type").locator("xpath=following::input[1]").click()
    choice = page.get_by_role("option", name=name, exact=True)
    choice.wait_for()
    options = [text.strip() for text in page.get_by_role("option").all_inner_texts()]
    seen = len(frames.frames)
    choice.click()
    frames.wait_for_full_resolution(seen, deadline)
    normalize = page.get_by_text("Normalize", exact=True).locator("xpath=following::input[@type='checkbox'][1]")
    return options, _screenshot(page, canvas), normalize.is_checked()


def _object_mask(normals: np.ndarray) -> np.ndarray:
    """Pixels of the normals view that differ from its background (the colour of its border)."""
    border = np.concatenate([normals[:4].reshape(-1, 3), normals[-4:].reshape(-1, 3)])
    return np.abs(normals.astype(np.int16) - np.median(border, axis=0)).max(axis=-1) > 40


def _flat_background(view: np.ndarray, off_object: np.ndarray) -> bool:
    """Off the object one flat colour: JPEG leaves a few levels of noise (each of a 128 px frame's pixels is about
    6 screen pixels wide, its 8x8 blocks 48) but no more than 30 levels on more than 0.2 % of the pixels. A map that
    paints the unit sphere fails on percents."""
    deviation = np.abs(view[off_object].astype(np.int16) - np.median(view[off_object], axis=0)).max(axis=-1)
    return float(np.percentile(deviation, 99)) < 20 and float(np.mean(deviation > 30)) < 0.002


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (.ci/setup installs Debian's chromium)")
def test_the_viewer_shows_the_object_nero_s_channels_and_flat_backgrounds(viewer: Tuple[str, Deadline]):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright drives the browser (.[test] installs it)")
    url, deadline = viewer
    artifacts = ARTIFACTS / "viewer"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    views: Dict[str, np.ndarray] = {}
    normalized: Dict[str, bool] = {}
    options: Dict[str, List[str]] = {}
    with sync_api.sync_playwright() as playwright:
        # SwiftShader: WebGL on the CPU, as on a machine without a GPU.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        try:
            # Only the viewer itself: the page's logo and links point to the internet, which a test must not wait on.
            page.route(re.compile(r"^(?!http://127\.0\.0\.1[:/])"), lambda route: route.abort())
            frames = ViewerFrames(page)
            page.goto(url, wait_until="domcontentloaded")
            canvas = page.locator("canvas").first
            frames.wait_for_full_resolution(0, deadline)
            # The training cameras' frustums would cover the background; a user hides them the same way.
            page.get_by_role("button", name="Hide Train Cams").click()
            page.wait_for_timeout(500)
            views["rgb"] = _screenshot(page, canvas)
            for channel in SHOWN_CHANNELS:
                options[channel], views[channel], normalized[channel] = _choose_output(
                    page, frames, canvas, channel, deadline
                )
        finally:
            page.screenshot(path=str(artifacts / "page.png"))
            browser.close()
            for channel, view in views.items():
                iio.imwrite(artifacts / f"{channel}.png", view)

    assert set(NERO_CHANNELS) <= set(options["normals"]), options["normals"]
    # A fraction (metallic) on its own 0-1 scale; depth keeps nerfstudio's per-frame normalisation. (Three-channel
    # outputs such as normals ignore the box; it follows the rule.)
    assert normalized == {"normals": True, "depth": True, "metallic": False}

    normals = views["normals"]
    height, width = normals.shape[:2]
    gizmo = np.zeros((height, width), dtype=bool)
    gizmo[int(0.8 * height) :, : int(0.15 * width)] = True  # the axes in the corner
    on_object = _object_mask(normals) & ~gizmo
    assert 0.005 < on_object.mean() < 0.5, on_object.mean()
    # The camera starts looking at the object: it is near the middle of the canvas.
    rows, columns = np.nonzero(on_object)
    assert abs(rows.mean() / height - 0.5) < 0.15 and abs(columns.mean() / width - 0.5) < 0.15
    # Off the object every map is one flat colour, not the whole unit sphere.
    off_object = ~ndimage.binary_dilation(on_object, iterations=6) & ~gizmo
    for channel in SHOWN_CHANNELS:
        assert _flat_background(views[channel], off_object), channel
    # In the RGB frame the object's pixels differ from the background around it.
    box = np.zeros_like(on_object)
    box[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1] = True
    ring = ndimage.binary_dilation(box, iterations=20) & ~box & off_object
    background_color = np.median(views["rgb"][ring], axis=0)
    object_colors = views["rgb"][box & on_object].astype(np.float64)
    assert np.abs(object_colors - background_color).max(axis=-1).mean() > 25
