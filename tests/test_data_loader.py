"""DataLoader, TensorDataset, Subset and random_split: batches, shuffling, drop_last, collation."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import DataLoader, Dataset, TensorDataset, random_split


def _dataset(n=10):
    return TensorDataset(cr.tensor(np.arange(n * 2.0).reshape(n, 2)), cr.tensor(np.arange(n)))


def test_batches_cover_the_data_in_order_without_shuffle():
    batches = list(DataLoader(_dataset(), batch_size=4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([y.data for _, y in batches]), np.arange(10))
    np.testing.assert_array_equal(batches[0][0].data, np.arange(8.0).reshape(4, 2))
    assert len(DataLoader(_dataset(), batch_size=4)) == 3
    assert len(DataLoader(_dataset(), batch_size=4, drop_last=True)) == 2
    assert [len(y) for _, y in DataLoader(_dataset(), batch_size=4, drop_last=True)] == [4, 4]


def test_shuffle_is_a_seeded_permutation_each_epoch():
    loader = DataLoader(_dataset(), batch_size=3, shuffle=True, generator=np.random.default_rng(5))
    epoch1 = np.concatenate([y.data for _, y in loader])
    epoch2 = np.concatenate([y.data for _, y in loader])
    assert sorted(epoch1) == list(range(10)) and sorted(epoch2) == list(range(10))
    assert not np.array_equal(epoch1, epoch2)  # a new order every epoch
    again = DataLoader(_dataset(), batch_size=3, shuffle=True, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(np.concatenate([y.data for _, y in again]), epoch1)  # same seed, same batches
    cr.manual_seed(3)
    a = np.concatenate([y.data for _, y in DataLoader(_dataset(), batch_size=3, shuffle=True)])
    cr.manual_seed(3)
    b = np.concatenate([y.data for _, y in DataLoader(_dataset(), batch_size=3, shuffle=True)])
    np.testing.assert_array_equal(a, b)  # without generator=: the default one, reset by cr.manual_seed


def test_batches_of_a_tensor_that_requires_grad_stay_in_the_graph():
    w = cr.tensor(np.ones((4, 2)), requires_grad=True)
    for x, _ in DataLoader(TensorDataset(w, np.arange(4)), batch_size=2):
        cr.sum(x * 3.0).backward()
    np.testing.assert_array_equal(w.grad.data, np.full((4, 2), 3.0))


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": np.array([i, i * i], dtype=np.float32), "label": i}


class TensorPairs(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return cr.tensor(np.full(2, float(i))), i


def test_a_map_style_dataset_is_collated_item_by_item():
    batches = list(DataLoader(Squares(), batch_size=2))
    assert len(batches) == 3
    assert batches[0]["x"].shape == (2, 2) and batches[0]["x"].dtype == np.float32
    assert batches[0]["label"].dtype == np.int64  # Python ints become int64, as torch collates them
    np.testing.assert_array_equal(batches[2]["label"].data, [4])
    pairs = list(DataLoader(TensorPairs(), batch_size=2))
    assert isinstance(pairs[0], list) and pairs[0][1].data.tolist() == [0, 1]  # a tuple item batches to a list
    raw = list(DataLoader(Squares(), batch_size=2, collate_fn=lambda items: [it["label"] for it in items]))
    assert raw == [[0, 1], [2, 3], [4]]
    assert list(DataLoader(Squares(), batch_size=None))[1]["label"] == 1  # batch_size=None: single items


def test_random_split_and_utils_alias():
    a, b = random_split(_dataset(), [0.7, 0.3], generator=0)
    assert (len(a), len(b)) == (7, 3)
    assert {int(s[i][1].item()) for s in (a, b) for i in range(len(s))} == set(range(10))
    assert cr.utils.data.DataLoader is DataLoader and cr.utils.data.TensorDataset is TensorDataset
    with pytest.raises(ValueError, match="do not add up to the dataset's 10 items"):
        random_split(_dataset(), [3, 3])


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="same first dimension, got sizes \\[3, 2\\]"):
        TensorDataset(np.zeros((3, 1)), np.zeros(2))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(_dataset(), batch_size=0)
    with pytest.raises(TypeError, match="not torch.Generator"):
        DataLoader(_dataset(), shuffle=True, generator="seed")
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(_dataset(), sampler=[0, 1], shuffle=True)
    with pytest.raises(TypeError, match="must define __len__"):
        DataLoader(iter([1, 2]))
