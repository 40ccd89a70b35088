"""NeRO's train/validation/test image splits (method.md §2.4)."""

from __future__ import annotations

import random
from typing import List, Sequence, Tuple

# NeRO seeds Python's own Mersenne Twister with this before shuffling the id list.
VALIDATION_SEED = 6033

# The 32 GlossySynthetic evaluation views (NeRO's synthetic_split_128.pkl); the other 96 ids are its train views.
SYNTHETIC_TEST_IDS: Tuple[str, ...] = tuple(
    str(k)
    for k in (0, 2, 3, 4, 5, 7, 11, 14, 19, 29, 30, 31, 33, 49, 56, 57, 59, 61, 66, 68, 71, 73, 75, 91, 93, 95, 109,
              110, 111, 113, 120, 127)
)


def nero_validation_split(ids: Sequence[str]) -> Tuple[List[str], List[str]]:
    """One held-out validation image, as NeRO picks it.

    The held-out id depends only on the list order and length: shuffle a copy with ``random.seed(6033)`` and take the
    first id. A private ``random.Random`` gives the same sequence as the global seed without disturbing it.

    Args:
        ids: image ids in the dataset's order (synthetic: '0'..'127'; real: COLMAP image-id order).

    Returns:
        ``(train_ids, val_ids)``, train ids in the input order, ``val_ids`` a single id.
    """
    if len(ids) < 2:
        raise ValueError(f"need at least two images to hold one out, got {len(ids)}")
    shuffled = list(ids)
    random.Random(VALIDATION_SEED).shuffle(shuffled)
    held_out = shuffled[0]
    return [image_id for image_id in ids if image_id != held_out], [held_out]


def synthetic_test_split(ids: Sequence[str]) -> Tuple[List[str], List[str]]:
    """NeRO's 96/32 GlossySynthetic split: ``(train_ids, test_ids)``, both in the input order."""
    test_ids = set(SYNTHETIC_TEST_IDS)
    return [i for i in ids if i not in test_ids], [i for i in ids if i in test_ids]
