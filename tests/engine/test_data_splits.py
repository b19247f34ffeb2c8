"""Splits by field: stratified, seeded, with a label fraction."""

import pytest

from engine.data import FieldSplit, split_fields
from engine.errors import EngineError

# class 1: 10 fields, class 2: 5, class 3: 3, class 4: 2, class 5: 1
FIELDS = {fid: cls for cls, count in ((1, 10), (2, 5), (3, 3), (4, 2), (5, 1))
          for fid in range(cls * 100, cls * 100 + count)}


def classes_of(ids):
    return {FIELDS[i] for i in ids}


def test_partition_and_stratification():
    split = split_fields(FIELDS, val_fraction=0.2, test_fraction=0.2, seed=0)
    everything = split.train + split.val + split.test
    assert sorted(everything) == sorted(FIELDS) and len(set(everything)) == len(FIELDS)
    for cls in (1, 2, 3):
        assert cls in classes_of(split.train) and cls in classes_of(split.val) and cls in classes_of(split.test)
    assert 4 in classes_of(split.train) and 4 in classes_of(split.test)  # two fields: one trains, one tests
    assert [i for i in everything if FIELDS[i] == 5] == [500] and 500 in split.train
    assert sum(FIELDS[i] == 1 for i in split.test) == 2


def test_seeded_and_deterministic():
    a = split_fields(FIELDS, seed=7)
    shuffled = dict(reversed(list(FIELDS.items())))
    assert split_fields(shuffled, seed=7) == a
    assert split_fields(FIELDS, seed=8) != a


def test_label_fraction_keeps_a_nested_share():
    full = split_fields(FIELDS, seed=2)
    half = split_fields(FIELDS, label_fraction=0.5, seed=2)
    tiny = split_fields(FIELDS, label_fraction=0.01, seed=2)
    assert half.val == full.val and half.test == full.test
    assert set(tiny.train) <= set(half.train) <= set(full.train)
    assert classes_of(tiny.train) == {1, 2, 3, 4, 5}  # at least one field per class
    assert len(tiny.train) == 5 and sorted(tiny.train + tiny.unused) == full.train
    assert len(half.train) == 3 + 2 + 1 + 1 + 1


def test_round_trip():
    split = split_fields(FIELDS, label_fraction=0.5, seed=3)
    assert FieldSplit.from_dict(split.to_dict()) == split


@pytest.mark.parametrize("kwargs", [dict(val_fraction=0.6, test_fraction=0.5), dict(label_fraction=0),
                                    dict(test_fraction=-0.1)])
def test_bad_fractions(kwargs):
    with pytest.raises(EngineError):
        split_fields(FIELDS, **kwargs)


def test_no_fields():
    with pytest.raises(EngineError, match="no labelled fields"):
        split_fields({})
