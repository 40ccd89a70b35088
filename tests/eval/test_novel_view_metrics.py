"""Novel-view scores of a (fake) trained pipeline, and the nvs command around it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType

from nero_nerfstudio.eval.novel_view_metrics import evaluate_novel_views
from nero_nerfstudio.scripts import eval as eval_script
from nero_nerfstudio.scripts.eval import EvalNovelViews, run

HEIGHT, WIDTH = 12, 16


class FakeImages:
    """An eval dataset of three cameras; camera i sits at x = i so a fake model can tell them apart."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = [0.2 + 0.6 * torch.rand(HEIGHT, WIDTH, 3, generator=generator) for _ in range(3)]
        c2w = torch.eye(4)[:3].repeat(3, 1, 1)
        c2w[:, 0, 3] = torch.arange(3.0)
        self.cameras = Cameras(
            camera_to_worlds=c2w, fx=20.0, fy=20.0, cx=WIDTH / 2, cy=HEIGHT / 2, width=WIDTH, height=HEIGHT,
            camera_type=CameraType.PERSPECTIVE,
        )
        self.metadata = {"image_ids": ["3", "7", "11"]}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {"image": self.images[index], "image_idx": index}


class OffsetModel:
    """Renders each camera's image plus a per-image constant offset (PSNR = -20 log10(offset))."""

    def __init__(self, images: FakeImages, offsets: List[float]) -> None:
        self.images, self.offsets = images, offsets

    def get_outputs_for_camera(self, camera: Cameras) -> Dict[str, torch.Tensor]:
        assert camera.shape == (1,)
        index = int(round(float(camera.camera_to_worlds[0, 0, 3])))
        return {"rgb": self.images[index]["image"] + self.offsets[index], "depth": torch.zeros(HEIGHT, WIDTH, 1)}


def test_scores_of_known_offsets() -> None:
    images = FakeImages()
    result = evaluate_novel_views(OffsetModel(images, [0.1, 0.01, 0.1]), images)
    assert [view["name"] for view in result.per_view] == ["3", "7", "11"]
    assert [view["psnr"] for view in result.per_view] == pytest.approx([20.0, 40.0, 20.0], abs=1e-4)
    # The mean of per-image PSNRs, as nerfstudio reports.
    assert result.psnr == pytest.approx(80.0 / 3.0, abs=1e-4)
    assert 0.0 < result.ssim < 1.0 and result.lpips is None


def test_renders_are_clamped_to_the_unit_range() -> None:
    images = FakeImages()
    # +2 everywhere is clamped to 1, so the error is 1 - image, not 2.
    result = evaluate_novel_views(OffsetModel(images, [2.0, 2.0, 2.0]), images)
    expected = -10.0 * torch.log10(((1.0 - images.images[0]) ** 2).mean())
    assert result.per_view[0]["psnr"] == pytest.approx(float(expected), abs=1e-4)


def test_lpips_is_called_when_available() -> None:
    images = FakeImages()
    calls = []

    def fake_lpips(prediction: torch.Tensor, target: torch.Tensor) -> float:
        calls.append(prediction.shape)
        return 0.5

    result = evaluate_novel_views(OffsetModel(images, [0.1, 0.1, 0.1]), images, lpips=fake_lpips)
    assert result.lpips == 0.5 and calls == [(HEIGHT, WIDTH, 3)] * 3


def test_nvs_command_with_a_fake_pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    images = FakeImages()
    pipeline = SimpleNamespace(
        model=OffsetModel(images, [0.01, 0.01, 0.01]),
        datamanager=SimpleNamespace(
            eval_dataset=images, config=SimpleNamespace(dataparser=SimpleNamespace(split_mode="test"))
        ),
        device="cpu",
    )
    loaded = []
    monkeypatch.setattr(eval_script, "load_eval_pipeline", lambda path: loaded.append(path) or (pipeline, 1234))
    monkeypatch.setattr(eval_script, "load_lpips", lambda net: None)
    config_path = tmp_path / "run" / "config.yml"
    report = run(EvalNovelViews(config_path, output=tmp_path / "nvs.json"))
    written = json.loads((tmp_path / "nvs.json").read_text())
    assert loaded == [config_path]
    assert written["psnr"] == pytest.approx(40.0, abs=1e-4) == report["psnr"]
    assert written["num_images"] == 3 and written["step"] == 1234 and written["lpips"] is None


def test_nvs_command_without_a_run_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["nero-eval", "nvs", "--load-config", str(tmp_path / "missing.yml")])
    with pytest.raises(SystemExit) as exit_info:
        eval_script.entrypoint()
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip()
    assert "missing.yml: config file not found" in error and len(error.splitlines()) == 1
