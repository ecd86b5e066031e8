"""SparseTensor: validation, canonical order, from_dense selectors, to_dense round trip."""

import pytest
import torch

from blockrecon.sparse import SparseTensor


def _dense(seed=0, shape=(2, 3, 5, 6, 4)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_round_trip_mask():
    x = _dense()
    mask = torch.rand(2, 5, 6, 4, generator=torch.Generator().manual_seed(1)) < 0.3
    s = SparseTensor.from_dense(x, mask=mask)
    assert s.num_sites == int(mask.sum()) and s.num_channels == 3
    assert torch.equal(s.to_dense(), x * mask.unsqueeze(1))
    again = SparseTensor.from_dense(s.to_dense(), mask=mask)
    assert torch.equal(again.coords, s.coords) and torch.equal(again.feats, s.feats)


def test_threshold_and_topk_select_energy():
    x = _dense()
    energy = x.square().sum(1)
    s = SparseTensor.from_dense(x, threshold=2.0)
    assert torch.equal(s.to_dense().abs().sum(1) > 0, energy > 2.0)
    k = 7
    t = SparseTensor.from_dense(x, topk=k)
    for b in range(2):
        rows = t.coords[:, 0] == b
        assert int(rows.sum()) == k
        kept = energy[b][tuple(t.coords[rows, 1:].unbind(1))]
        assert kept.min() >= energy[b].flatten().topk(k).values.min()


def test_from_dense_is_differentiable_in_x():
    x = _dense().requires_grad_()
    s = SparseTensor.from_dense(x, threshold=1.0)
    (s.feats.sum()).backward()
    selected = x.detach().square().sum(1, keepdim=True) > 1.0
    assert torch.equal(x.grad, selected.expand_as(x).float())


def test_unsorted_coords_are_canonicalized():
    coords = torch.tensor([[1, 2, 0], [0, 3, 1], [0, 0, 2]], dtype=torch.int32)
    feats = torch.tensor([[1.0], [2.0], [3.0]])
    s = SparseTensor(coords, feats, (4, 3))
    assert s.coords.dtype == torch.int64
    assert s.coords.tolist() == [[0, 0, 2], [0, 3, 1], [1, 2, 0]]
    assert s.feats[:, 0].tolist() == [3.0, 2.0, 1.0]
    assert s.to_dense()[1, 0, 2, 0] == 1.0 and s.batch_size == 2


def test_empty_tensor():
    s = SparseTensor(torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0, 2), (3, 3, 3))
    assert s.num_sites == 0 and s.to_dense().shape == (1, 2, 3, 3, 3)


@pytest.mark.parametrize(
    "coords, feats, shape, match",
    [
        ([[0, 4, 0]], [[1.0]], (4, 3), "out of spatial_shape"),
        ([[0, -1, 0]], [[1.0]], (4, 3), "out of spatial_shape"),
        ([[0, 1]], [[1.0]], (4, 3), r"shape \(N, 3\)"),
        ([[0, 1, 1], [0, 2, 2]], [[1.0]], (4, 3), "rows"),
        ([[0, 1, 1], [0, 1, 1]], [[1.0], [2.0]], (4, 3), "duplicate"),
        ([[0, 1]], [[1.0]], (4,), "2, 3 or 4"),
    ],
)
def test_bad_input_raises(coords, feats, shape, match):
    with pytest.raises(ValueError, match=match):
        SparseTensor(torch.tensor(coords), torch.tensor(feats), shape)


def test_non_integer_coords_and_batch_range():
    with pytest.raises(ValueError, match="integer"):
        SparseTensor(torch.tensor([[0.0, 1.0, 1.0]]), torch.ones(1, 1), (4, 3))
    with pytest.raises(ValueError, match="batch index"):
        SparseTensor(torch.tensor([[2, 1, 1]]), torch.ones(1, 1), (4, 3), batch_size=2)
    with pytest.raises(ValueError, match="floating"):
        SparseTensor(torch.tensor([[0, 1, 1]]), torch.ones(1, 1, dtype=torch.int64), (4, 3))


def test_from_dense_bad_input():
    x = _dense()
    with pytest.raises(ValueError, match="exactly one"):
        SparseTensor.from_dense(x, threshold=1.0, topk=3)
    with pytest.raises(ValueError, match="topk"):
        SparseTensor.from_dense(x, topk=10**6)
    with pytest.raises(ValueError, match="mask has shape"):
        SparseTensor.from_dense(x, mask=torch.ones(2, 5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="spatial dims"):
        SparseTensor.from_dense(torch.ones(2, 3, 4), threshold=0.0)
    with pytest.raises(ValueError, match="real floating"):
        SparseTensor.from_dense(torch.ones(1, 1, 2, 2, dtype=torch.complex64), threshold=0.0)
