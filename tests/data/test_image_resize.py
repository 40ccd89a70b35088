"""NeRO's raw_<N> downscaling and the matching intrinsics."""

import numpy as np
from PIL import Image

from nero_nerfstudio.data.image_resize import (
    anti_alias_kernel,
    cached_downscaled_images,
    downscale_image,
    raw_target_size,
    scale_intrinsics,
)
from nero_fixtures import look_at_w2c, projection


def test_target_size_rounds_and_never_upsamples():
    assert raw_target_size(4032, 3024, 1024) == (1024, 768)
    assert raw_target_size(1001, 601, 500) == (500, 300)  # 300.2 -> 300
    assert raw_target_size(999, 603, 500) == (500, 302)  # 301.8 -> 302 (NeRO's K would use 301)
    assert raw_target_size(640, 480, 1024) == (640, 480)


def test_kernel_rule():
    sigma, size = anti_alias_kernel(0.25)
    assert abs(sigma - 4.0 / 3.0) < 1e-12 and size == 7  # ceil(((1.333-0.8)/0.3+1)*2+1) = 7
    assert anti_alias_kernel(0.5)[1] % 2 == 1


def test_scaled_intrinsics_project_onto_the_resized_dot():
    width, height, target = 160, 120, (40, 30)
    k = np.array([[150.0, 0.0, 77.3], [0.0, 150.0, 61.1], [0.0, 0.0, 1.0]])
    w2c = look_at_w2c(np.array([0.0, -4.0, 1.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    # The 3-D point seen at continuous pixel (62, 46), i.e. the corner shared by pixels 60..61 x 44..45 (centres at
    # i + 0.5), at depth 4.
    pixel = np.array([62.0, 46.0])
    camera_point = 4.0 * np.linalg.solve(k, [pixel[0], pixel[1], 1.0])
    point = w2c[:, :3].T @ (camera_point - w2c[:, 3])
    np.testing.assert_allclose(projection(w2c, k, point), pixel, atol=1e-9)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[44:48, 60:64] = 255  # a 4x4 white square centred on that point

    small = downscale_image(image, target).astype(np.float64)[..., 0]
    assert small.shape == (30, 40)
    rows, cols = np.mgrid[0:30, 0:40]
    weights = small / small.sum()
    found = np.array([(weights * (cols + 0.5)).sum(), (weights * (rows + 0.5)).sum()])

    k_small = scale_intrinsics(k, (width, height), target)
    np.testing.assert_allclose(projection(w2c, k_small, point), found, atol=0.05)
    np.testing.assert_allclose(found, pixel / 4.0, atol=0.05)


def test_cache_is_rgb_atomic_and_reused(tmp_path):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    rgba = np.random.default_rng(0).integers(0, 256, size=(60, 80, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(images_dir / "a.png")
    Image.fromarray(rgba[:20, :20, :3]).save(images_dir / "small.png")

    paths = cached_downscaled_images(images_dir, ["a.png", "small.png"], [(40, 30), (20, 20)], 40)
    assert paths == [tmp_path / "images_raw_40" / "a.png", images_dir / "small.png"]
    with Image.open(paths[0]) as cached:
        assert cached.size == (40, 30) and cached.mode == "RGB"
    assert sorted(p.name for p in (tmp_path / "images_raw_40").iterdir()) == ["a.png"]  # no temp files left

    stamp = paths[0].stat().st_mtime_ns
    assert cached_downscaled_images(images_dir, ["a.png"], [(40, 30)], 40) == paths[:1]
    assert paths[0].stat().st_mtime_ns == stamp
    # A cache file of the wrong size is rebuilt.
    Image.fromarray(rgba[:5, :5, :3]).save(paths[0])
    cached_downscaled_images(images_dir, ["a.png"], [(40, 30)], 40)
    with Image.open(paths[0]) as cached:
        assert cached.size == (40, 30)
