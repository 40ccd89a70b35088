"""NeroDataset always yields RGB."""

import numpy as np
import torch
from PIL import Image

from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig
from nero_nerfstudio.data.datasets.nero_dataset import NeroDataset
from nero_fixtures import HEIGHT, WIDTH, write_rgb, write_synthetic_scene


def test_alpha_is_dropped_with_one_warning(tmp_path, capsys):
    write_synthetic_scene(tmp_path, count=4)
    write_rgb(tmp_path / "2.png", channels=4, seed=9)
    write_rgb(tmp_path / "3.png", channels=4, seed=10)
    Image.fromarray(np.full((HEIGHT, WIDTH), 77, dtype=np.uint8)).save(tmp_path / "0.png")  # greyscale
    outputs = NeroSyntheticDataParserConfig(data=tmp_path, split_mode="test").setup().get_dataparser_outputs("test")
    capsys.readouterr()
    dataset = NeroDataset(outputs)

    images = [dataset[index]["image"] for index in range(len(dataset))]
    assert all(image.shape == (HEIGHT, WIDTH, 3) and image.dtype == torch.float32 for image in images)
    rgba = np.asarray(Image.open(tmp_path / "2.png"))
    torch.testing.assert_close(images[1], torch.from_numpy(rgba[..., :3].astype(np.float32) / 255.0))
    assert torch.all(images[0] == 77 / 255.0)
    assert dataset.get_data(2, image_type="uint8")["image"].shape == (HEIGHT, WIDTH, 3)
    assert capsys.readouterr().out.count("alpha channel") == 1
