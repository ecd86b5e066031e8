"""Shared tiny data and a tiny trained model for the segmentation tests."""

from contextlib import contextmanager

import pytest
import torch

from blockrecon.seg import build_model, synthetic_cine, train_segmentation


@contextmanager
def one_thread():
    """Tiny convolutions train faster on one thread, and it is fair on shared CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_data():
    """(train images, train labels, test images, test labels) at 64x64."""
    train = synthetic_cine(6, 4, 64, seed=11, oversample=2)
    test = synthetic_cine(2, 4, 64, seed=12, oversample=2)
    return (*train, *test)


@pytest.fixture(scope="session")
def tiny_trained(tiny_data):
    """A base-4 depth-3 U-Net trained a few epochs, with its untrained copy."""
    torch.manual_seed(0)
    model = build_model(base_width=4, depth=3)
    untrained = build_model(base_width=4, depth=3)
    untrained.load_state_dict(model.state_dict())
    x, y = tiny_data[:2]
    with one_thread():
        history = train_segmentation(model, x, y, epochs=20, batch_size=4, lr=1e-2, progress=False)
    return model, untrained.eval(), history
