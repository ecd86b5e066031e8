"""Structured L1 filter pruning: really smaller, still runs, exact at ratio 0."""

import pytest
import torch

from blockrecon.nn import UNet
from blockrecon.seg import (
    count_macs_params,
    load_model,
    predict,
    prune_filters,
    save_model,
)
from blockrecon.seg.figures import plot_first_layer
from blockrecon.seg.prune import fold_batchnorm, zero_filter_fraction
from blockrecon.seg.sparsity import filter_groups, shrink_filters
from blockrecon.seg.train import build_model, train_segmentation


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_pruning_shrinks_layers_and_exact_at_ratio_0(tiny_trained, tiny_data, tmp_path):
    model = tiny_trained[0]
    x = tiny_data[2]
    example = x[:1]
    same = prune_filters(model, 0.0, example)  # BatchNorm folded, nothing removed
    assert same.norm is None and same.widths == model.widths
    with torch.no_grad():
        torch.testing.assert_close(same(x[:4]), model(x[:4]), rtol=0, atol=1e-4)
    pruned = prune_filters(model, 0.25, example)
    assert model.widths == (4, 4, 8, 8, 16, 16, 8, 8, 8, 4, 4, 4)  # original untouched
    assert all(p < w for p, w in zip(pruned.widths, model.widths, strict=True))
    macs0, params0 = count_macs_params(model, example)
    macs1, params1 = count_macs_params(pruned, example)
    assert params1 == _n_params(pruned) < 0.7 * params0 and macs1 < 0.7 * macs0
    assert predict(pruned, x).shape == x[:, 0].shape
    # The pruned architecture survives a checkpoint round trip.
    loaded = load_model(save_model(tmp_path / "p.pt", pruned)).model
    assert torch.equal(predict(loaded, x), predict(pruned, x))


@pytest.mark.parametrize("global_ranking", [False, True])
def test_smallest_l1_filters_go_first_and_output_stays_close(global_ranking):
    """Zero 40% of every layer's filters: pruning 30% removes only those, so outputs agree."""
    torch.manual_seed(0)
    net = UNet(2, 1, 4, base_width=8, depth=4).eval()
    with torch.no_grad():
        for group in filter_groups(net):
            weight, axis = group[0]
            dead = torch.randperm(weight.shape[axis])[: int(0.4 * weight.shape[axis])]
            for p, a in group:
                p.index_fill_(a, dead, 0.0)
    x = torch.randn(2, 1, 32, 32)
    pruned = prune_filters(net, 0.3, x, global_ranking=global_ranking)
    assert _n_params(pruned) < 0.6 * _n_params(net)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), net(x), rtol=0, atol=1e-6)
    # Beyond the dead filters, outputs change.
    more = prune_filters(net, 0.6, x, global_ranking=global_ranking)
    with torch.no_grad():
        assert (more(x) - net(x)).abs().max() > 1e-4


def test_pruning_a_valid_3d_unet_keeps_the_tiling_contract():
    torch.manual_seed(0)
    net = UNet(3, 2, 2, base_width=4, depth=2, valid=True)
    x = torch.randn(1, 2, *(net.input_size(4),) * 3)
    pruned = prune_filters(net, 0.5, x)
    assert _n_params(pruned) < 0.5 * _n_params(net)
    assert pruned(x).shape == (1, 2, 4, 4, 4) and pruned.margin == net.margin


def test_fold_batchnorm_keeps_eval_outputs():
    torch.manual_seed(0)
    net = UNet(2, 1, 3, base_width=4, depth=3, norm="batch")
    net(torch.randn(8, 1, 16, 16))  # train-mode pass: non-trivial running statistics
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    net.eval()
    folded = fold_batchnorm(net)
    x = torch.randn(2, 1, 16, 16)
    assert folded.norm is None and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()
    )
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=0, atol=1e-5)


def test_group_lasso_step_zeroes_weak_filters_and_shrinks_the_rest():
    model = build_model(base_width=2, depth=2)
    groups = filter_groups(model)  # BatchNorm (weight, bias) pairs, up-conv kernels
    bn_weight, bn_bias = (p for p, _ in groups[0])
    with torch.no_grad():
        bn_weight.copy_(torch.tensor([0.3, 3.0]))
        bn_bias.copy_(torch.tensor([0.4, 4.0]))  # filter norms 0.5 and 5
    shrink_filters(groups, threshold=1.0)
    torch.testing.assert_close(bn_weight.detach(), torch.tensor([0.0, 2.4]))
    torch.testing.assert_close(bn_bias.detach(), torch.tensor([0.0, 3.2]))
    assert 0 < zero_filter_fraction(model) < 1


def test_sparsity_training_leaves_exactly_zero_filters(tiny_data, single_thread):
    torch.manual_seed(0)
    x, y = tiny_data[0][:8, :, 16:48, 16:48], tiny_data[1][:8, 16:48, 16:48]
    model = build_model(base_width=4, depth=3)
    train_segmentation(
        model, x, y, epochs=10, batch_size=2, lr=5e-2, filter_sparsity=1.2, progress=False
    )
    assert zero_filter_fraction(model) > 0.1
    assert zero_filter_fraction(build_model(base_width=4, depth=3)) == 0


def test_pruning_ratio_validated(tiny_trained, tiny_data):
    with pytest.raises(ValueError, match="ratio"):
        prune_filters(tiny_trained[0], 1.0, tiny_data[2][:1])


def test_first_layer_figure(tiny_trained, tiny_data, tmp_path):
    path = plot_first_layer(tiny_trained[0], tiny_data[2][:1], tmp_path / "filters.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["filters.png"]
