"""Input dataset that always hands the models 3-channel RGB images."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.utils.rich_utils import CONSOLE


class NeroDataset(InputDataset):
    """:class:`InputDataset` whose images never carry alpha.

    NeRO trains without masks on whatever RGB was photographed or rendered, so an alpha channel is dropped rather than
    composited over a background colour.
    """

    def __init__(self, dataparser_outputs: DataparserOutputs, scale_factor: float = 1.0):
        super().__init__(dataparser_outputs, scale_factor)
        self._warned_about_alpha = False

    def get_numpy_image(self, image_idx: int) -> npt.NDArray[np.uint8]:
        """Returns the image ``[H, W, 3]`` uint8."""
        image = super().get_numpy_image(image_idx)
        if image.shape[2] == 4:
            if not self._warned_about_alpha:
                CONSOLE.print(
                    f"[yellow]{self._dataparser_outputs.image_filenames[image_idx]}: image has an alpha channel; "
                    "only its RGB channels are used (warned once)",
                    soft_wrap=True,
                )
                self._warned_about_alpha = True
            image = np.ascontiguousarray(image[:, :, :3])
        return image
