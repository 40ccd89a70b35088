"""Split-sum table: spot values, regeneration, file format, bilinear lookup and gradients."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.model_components import brdf_lut
from nero_nerfstudio.model_components.brdf_lut import (
    DEFAULT_LUT_PATH,
    DEFAULT_NUM_SAMPLES,
    SplitSumLUT,
    compute_split_sum_lut,
    integrate_split_sum,
    load_split_sum_lut,
    save_split_sum_lut,
    texel_centres,
)
from nero_nerfstudio.scripts import make_brdf_lut

# The reference values of method.md §5.3 are known to about 3 decimals.
SPOT_TOLERANCE = 3e-3
FIRST, LAST = 0.5 / 256, 255.5 / 256


@pytest.fixture(scope="module")
def shipped_table() -> torch.Tensor:
    assert DEFAULT_LUT_PATH.exists(), "run nero-make-brdf-lut to create assets/bsdf_256_256.bin"
    return load_split_sum_lut()


@pytest.fixture(scope="module")
def lut(shipped_table: torch.Tensor) -> SplitSumLUT:
    return SplitSumLUT(shipped_table)


def test_shipped_file_format(shipped_table: torch.Tensor) -> None:
    assert DEFAULT_LUT_PATH.stat().st_size == 524288
    assert shipped_table.shape == (256, 256, 2) and shipped_table.dtype == torch.float32
    raw = np.fromfile(DEFAULT_LUT_PATH, dtype="<f4").reshape(256, 256, 2)
    np.testing.assert_array_equal(raw, shipped_table.numpy())
    # Energy: the specular reflectance with F0 = 1 never exceeds 1.
    assert float(shipped_table.sum(-1).max()) <= 1.0 + 1e-3
    assert float(shipped_table.min()) >= 0.0


@pytest.mark.parametrize(
    "roughness, n_dot_v, expected",
    [
        (FIRST, LAST, (1.0, 0.0)),
        (FIRST, FIRST, (0.0097, 0.990)),
        (LAST, LAST, (0.309, 3.5e-5)),
        (0.5, 0.5, (0.834, 0.022)),
    ],
)
def test_spot_values(lut: SplitSumLUT, roughness: float, n_dot_v: float, expected: tuple) -> None:
    value = lut(torch.tensor([[n_dot_v]]), torch.tensor([[roughness]]))
    assert value.shape == (1, 2)
    np.testing.assert_allclose(value[0].numpy(), expected, atol=SPOT_TOLERANCE)


def test_shipped_file_matches_fresh_integration(shipped_table: torch.Tensor) -> None:
    centres = texel_centres(256)
    columns = np.array([0, 3, 64, 127, 200, 255])
    for row in (0, 31, 128, 255):
        fresh = integrate_split_sum(centres[columns], centres[row], DEFAULT_NUM_SAMPLES)
        np.testing.assert_allclose(shipped_table[row, columns].numpy(), fresh, atol=1e-6)


def test_low_resolution_table_matches_lookup(lut: SplitSumLUT) -> None:
    low_res = compute_split_sum_lut(resolution=8, num_samples=DEFAULT_NUM_SAMPLES, show_progress=False)
    centres = torch.from_numpy(texel_centres(8)).float()
    roughness, n_dot_v = torch.meshgrid(centres, centres, indexing="ij")  # rows = roughness
    looked_up = lut(n_dot_v.reshape(-1, 1), roughness.reshape(-1, 1)).reshape(8, 8, 2)
    # Same samples, so only the bilinear interpolation between 256 texels differs (measured <= 2e-4).
    np.testing.assert_allclose(looked_up.numpy(), low_res, atol=1e-3)


def test_lookup_is_bilinear(lut: SplitSumLUT, shipped_table: torch.Tensor) -> None:
    row, col = 100, 40
    centres = texel_centres(256)
    midpoint_in_x = lut(
        torch.tensor([[(centres[col] + centres[col + 1]) / 2]]), torch.tensor([[centres[row]]])
    )
    expected_x = (shipped_table[row, col] + shipped_table[row, col + 1]) / 2
    torch.testing.assert_close(midpoint_in_x[0], expected_x, atol=1e-6, rtol=0)
    midpoint_in_y = lut(
        torch.tensor([[centres[col]]]), torch.tensor([[(centres[row] + centres[row + 1]) / 2]])
    )
    expected_y = (shipped_table[row, col] + shipped_table[row + 1, col]) / 2
    torch.testing.assert_close(midpoint_in_y[0], expected_y, atol=1e-6, rtol=0)
    # Clamp to edge outside [0, 1].
    outside = lut(torch.tensor([[1.7], [-0.3]]), torch.tensor([[0.0], [2.0]]))
    torch.testing.assert_close(outside[0], shipped_table[0, 255], atol=1e-6, rtol=0)
    torch.testing.assert_close(outside[1], shipped_table[255, 0], atol=1e-6, rtol=0)


def test_lookup_gradients_match_texel_slopes(lut: SplitSumLUT, shipped_table: torch.Tensor) -> None:
    row, col = 60, 150
    centres = texel_centres(256)
    n_dot_v = torch.tensor([[float(centres[col]) + 0.3 / 256]], requires_grad=True)
    roughness = torch.tensor([[float(centres[row])]], requires_grad=True)
    lut(n_dot_v, roughness)[:, 0].sum().backward()
    slope_x = (shipped_table[row, col + 1, 0] - shipped_table[row, col, 0]) * 256
    torch.testing.assert_close(n_dot_v.grad[0, 0], slope_x, rtol=1e-3, atol=1e-4)
    assert roughness.grad is not None and torch.isfinite(roughness.grad).all()
    # A rougher surface reflects less at normal incidence: dA/dr < 0 here.
    assert float(roughness.grad) < 0


def test_load_rejects_wrong_size(tmp_path) -> None:
    bad = tmp_path / "lut.bin"
    bad.write_bytes(b"\0" * 1000)
    with pytest.raises(NeroDataError, match="lut.bin.*524288 bytes"):
        load_split_sum_lut(bad)


def test_load_computes_and_caches_missing_file(tmp_path, monkeypatch, caplog) -> None:
    real_compute = brdf_lut.compute_split_sum_lut
    monkeypatch.setattr(brdf_lut, "compute_split_sum_lut", lambda: real_compute(num_samples=8, show_progress=False))
    path = tmp_path / "cache" / "bsdf.bin"
    table = load_split_sum_lut(path)
    assert path.stat().st_size == 524288
    assert "missing" in caplog.text
    torch.testing.assert_close(load_split_sum_lut(path), table)
    assert sorted(p.name for p in path.parent.iterdir()) == ["bsdf.bin"]  # no temporary left behind


def test_save_rejects_wrong_shape(tmp_path) -> None:
    with pytest.raises(ValueError, match="shape"):
        save_split_sum_lut(np.zeros((8, 8, 2), np.float32), tmp_path / "x.bin")


def test_script_writes_table(tmp_path, monkeypatch) -> None:
    output = tmp_path / "out.bin"
    monkeypatch.setattr(sys, "argv", ["nero-make-brdf-lut", "--output", str(output), "--num-samples", "8"])
    make_brdf_lut.entrypoint()
    written = load_split_sum_lut(output).numpy()
    np.testing.assert_array_equal(written, compute_split_sum_lut(num_samples=8, show_progress=False))
