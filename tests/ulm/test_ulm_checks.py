"""Argument checks of the ULM functions (``blockrecon.ulm._checks``): good values pass through
converted, bad ones raise ValueError naming the argument."""

import numpy as np
import pytest
import torch

from blockrecon.ulm._checks import check_iq, check_per_axis, check_points

# check_iq


@pytest.mark.parametrize("shape", [(4, 3, 5), (4, 3, 2, 5)])
def test_iq_of_2_or_3_spatial_axes_is_accepted(shape):
    iq = torch.randn(shape, dtype=torch.complex64)
    array = check_iq(iq)
    assert isinstance(array, np.ndarray) and array.dtype == np.complex64
    assert array.shape == shape and np.shares_memory(array, iq.numpy())  # no copy
    np.testing.assert_array_equal(array, iq.numpy())


def test_iq_is_converted_to_complex64_with_conjugation_resolved():
    iq = torch.randn(2, 3, 4, dtype=torch.complex128)
    array = check_iq(iq)
    assert array.dtype == np.complex64
    np.testing.assert_allclose(array, iq.numpy(), rtol=1e-6)
    np.testing.assert_allclose(check_iq(iq.conj()), np.conj(iq.numpy()), rtol=1e-6)
    grad = torch.randn(2, 3, 4, dtype=torch.complex64, requires_grad=True)
    assert check_iq(grad).shape == (2, 3, 4)  # detached


@pytest.mark.parametrize(
    "iq, message",
    [
        (np.ones((2, 3, 4), np.complex64), "must be a torch.Tensor, got ndarray"),
        (torch.ones(2, 3, 4), "must be complex"),
        (torch.ones(3, 4, dtype=torch.complex64), r"must have shape .*got \(3, 4\)"),
        (torch.ones(1, 2, 3, 4, 5, dtype=torch.complex64), "must have shape"),
        (torch.ones(0, 3, 4, dtype=torch.complex64), r"is empty: shape \(0, 3, 4\)"),
        (torch.full((2, 3, 4), complex(float("nan"), 0)), "contains non-finite values"),
        (torch.full((2, 3, 4), complex(0, float("inf"))), "contains non-finite values"),
    ],
)
def test_bad_iq_is_refused_by_name(iq, message):
    with pytest.raises(ValueError, match=f"^iq {message}"):
        check_iq(iq)
    with pytest.raises(ValueError, match=f"^frames_iq {message}"):
        check_iq(iq, name="frames_iq")


# check_points


def test_points_are_returned_as_float64_and_int64():
    positions = torch.tensor([[0.5, 1.0], [2.0, 3.5]], dtype=torch.float32)
    frames = torch.tensor([0, 7], dtype=torch.int32)
    pos, frm = check_points(positions, frames, 2)
    assert pos.dtype == np.float64 and frm.dtype == np.int64
    np.testing.assert_array_equal(pos, [[0.5, 1.0], [2.0, 3.5]])
    np.testing.assert_array_equal(frm, [0, 7])


@pytest.mark.parametrize("ndim", [2, 3])
def test_points_of_any_dimension_pass_without_ndim(ndim):
    pos, frm = check_points(torch.zeros(3, ndim), torch.zeros(3, dtype=torch.long), None)
    assert pos.shape == (3, ndim) and frm.shape == (3,)
    pos, frm = check_points(torch.zeros(0, ndim), torch.zeros(0, dtype=torch.long), ndim)
    assert pos.shape == (0, ndim) and frm.shape == (0,)  # no points is a valid table


FRAMES = torch.zeros(2, dtype=torch.long)


@pytest.mark.parametrize(
    "positions, frames, ndim, message",
    [
        (np.zeros((2, 2)), FRAMES, 2, "^pts must be a torch.Tensor, got ndarray"),
        (torch.zeros(2, 2), [0, 0], 2, "^frames of pts must be a torch.Tensor, got list"),
        (torch.zeros(2, 2), FRAMES, 3, r"^pts must have shape \(n, 3\), got \(2, 2\)"),
        (torch.zeros(2, 4), FRAMES, None, r"^pts must have shape \(n, 2\) or \(n, 3\)"),
        (torch.zeros(2), FRAMES, None, r"^pts must have shape .*got \(2,\)"),
        (torch.zeros(2, 2, dtype=torch.complex64), FRAMES, 2, "^pts must be real and finite"),
        (torch.tensor([[0.0, float("nan")], [0, 0]]), FRAMES, 2, "^pts must be real and finite"),
        (torch.tensor([[0.0, float("inf")], [0, 0]]), FRAMES, 2, "^pts must be real and finite"),
        (
            torch.zeros(2, 2),
            torch.zeros(3, dtype=torch.long),
            2,
            r"^frames of pts must have shape \(2,\), got \(3,\)",
        ),
        (torch.zeros(2, 2), torch.zeros(2), 2, "^frames of pts must be non-negative integers"),
        (
            torch.zeros(2, 2),
            torch.tensor([0, -1]),
            2,
            "^frames of pts must be non-negative integers",
        ),
    ],
)
def test_bad_points_are_refused_by_name(positions, frames, ndim, message):
    with pytest.raises(ValueError, match=message):
        check_points(positions, frames, ndim, name="pts")


def test_points_name_defaults_to_positions():
    with pytest.raises(ValueError, match="^positions must be real and finite"):
        check_points(torch.full((1, 2), float("nan")), torch.zeros(1, dtype=torch.long), 2)


# check_per_axis


@pytest.mark.parametrize(
    "value, ndim, expected",
    [
        (0.5, 2, [0.5, 0.5]),
        (2, 3, [2.0, 2.0, 2.0]),
        ([0.25], 3, [0.25, 0.25, 0.25]),
        ((1.0, 2.0), 2, [1.0, 2.0]),
        (np.array([1.0, 2.0, 3.0]), 3, [1.0, 2.0, 3.0]),
    ],
)
def test_per_axis_values_are_expanded(value, ndim, expected):
    values = check_per_axis("pixel_size", value, ndim)
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize(
    "value, ndim",
    [
        ((1.0, 2.0), 3),
        ((1.0, 2.0, 3.0), 2),
        ([], 2),
        (0.0, 2),
        (-1.0, 2),
        ((1.0, -2.0), 2),
        (float("nan"), 2),
        ((1.0, float("inf")), 2),
    ],
)
def test_bad_per_axis_values_are_refused_by_name(value, ndim):
    with pytest.raises(ValueError, match=f"^psf_fwhm must be one positive number or {ndim} of"):
        check_per_axis("psf_fwhm", value, ndim)
