"""NeRO's validation and synthetic test splits."""

from nero_nerfstudio.core.splits import SYNTHETIC_TEST_IDS, nero_validation_split, synthetic_test_split


def test_validation_split_holds_out_11_of_128():
    ids = [str(k) for k in range(128)]
    train_ids, val_ids = nero_validation_split(ids)
    assert val_ids == ["11"]
    assert train_ids == [i for i in ids if i != "11"]
    assert ids == [str(k) for k in range(128)]  # the caller's list is not shuffled


def test_validation_split_depends_on_order_and_length_only():
    names = [f"IMG_{k:04d}.jpg" for k in range(128)]
    assert nero_validation_split(names)[1] == ["IMG_0011.jpg"]
    assert nero_validation_split([str(k) for k in range(40)])[1] != []


def test_synthetic_test_split_is_96_32():
    ids = [str(k) for k in range(128)]
    train_ids, test_ids = synthetic_test_split(ids)
    assert len(SYNTHETIC_TEST_IDS) == 32 and len(set(SYNTHETIC_TEST_IDS)) == 32
    assert len(train_ids) == 96 and test_ids == list(SYNTHETIC_TEST_IDS)
    assert "11" in test_ids and "1" in train_ids
