"""Loading nerfstudio checkpoints under torch >= 2.6, whose ``torch.load`` defaults to ``weights_only=True``.

nerfstudio checkpoints hold numpy scalars (optimizer ``lr`` and scheduler ``_last_lr`` from its exponential and
cosine schedulers), which the weights-only unpickler refuses. Instead of turning the safe loader off, allow exactly the
numpy types such checkpoints contain.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List

import numpy as np
import torch

_NUMPY_SCALAR_TYPES = (np.bool_, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64)


def numpy_checkpoint_globals() -> List[object]:
    """The numpy callables a checkpoint needs to rebuild numpy scalars and small arrays."""
    multiarray = np.core.multiarray  # numpy 1.x location (numpy 2 keeps an alias)
    return [
        multiarray.scalar,
        multiarray._reconstruct,  # pylint: disable=protected-access
        np.ndarray,
        np.dtype,
        *(type(np.dtype(scalar_type)) for scalar_type in _NUMPY_SCALAR_TYPES),
    ]


@contextlib.contextmanager
def allow_numpy_in_checkpoints() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` accepts the numpy scalars nerfstudio checkpoints hold."""
    with torch.serialization.safe_globals(numpy_checkpoint_globals()):
        yield
