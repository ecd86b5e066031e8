"""The pulmonary angiography phantom: seeded, finite, bright connected vessels, smooth phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from blockrecon.physics import angio_phantom, simulate_acquisition
from blockrecon.physics.angio import ANGIO_INTENSITIES, angio_tree, angio_vessel_mask
from blockrecon.physics.trajectory import radial_3d

SHAPES = [(16, 16, 16), (12, 16, 20)]
FULL_CONNECTIVITY = np.ones((3, 3, 3))


def test_same_seed_same_volume_other_seed_other_tree():
    a = angio_phantom((16, 16, 16), seed=3)
    assert torch.equal(a, angio_phantom((16, 16, 16), seed=3))
    other = angio_tree(4)
    assert not (
        len(other.radii) == len(angio_tree(3).radii) and np.allclose(other.ends, angio_tree(3).ends)
    )
    assert (a - angio_phantom((16, 16, 16), seed=4)).abs().max() > 0.1


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_dtype_finite_and_magnitude_range(shape):
    image = angio_phantom(shape, seed=1)
    assert image.shape == shape and image.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(image)).all()
    magnitude = image.abs()
    assert magnitude.max() <= 1 + 1e-6
    assert magnitude[0, 0, 0] < 1e-3  # outside the thorax


@pytest.mark.parametrize("shape", [(64, 64, 64), (48, 64, 64)])
def test_vessels_are_brighter_than_every_other_tissue(shape):
    magnitude = angio_phantom(shape, seed=2).abs()
    vessels = angio_vessel_mask(shape, seed=2)
    core, elsewhere = magnitude[vessels > 0.9], magnitude[vessels < 1e-3]
    assert core.numel() > 100
    assert core.min() > 0.9 * ANGIO_INTENSITIES["vessel"]
    assert magnitude[vessels > 0.5].min() > elsewhere.max()
    assert elsewhere.max() < 1.01 * ANGIO_INTENSITIES["heart"]
    # three background classes: soft tissue, lung parenchyma, heart
    for level in (0.3, 0.06, 0.5):
        assert ((elsewhere - level).abs() < 0.02).sum() > 500


def test_phase_is_smooth_and_not_constant():
    image = angio_phantom((32, 32, 32), seed=5)
    magnitude = image.abs()
    assert torch.angle(image[magnitude > 0.05]).std() > 0.05
    for axis in range(3):
        first = image.narrow(axis, 0, 31)
        second = image.narrow(axis, 1, 31)
        present = (first.abs() > 0.05) & (second.abs() > 0.05)
        step = torch.angle(second * first.conj())[present].abs()
        # at most about 2.5 rad per normalized unit: 2.5 * 2 / 32 = 0.16 rad per voxel
        assert step.max() < 0.16


def test_tree_is_one_connected_vessel():
    tree = angio_tree(7)
    assert len(tree.roots()) == 1
    children = np.flatnonzero(tree.parents >= 0)
    assert np.allclose(tree.starts[children], tree.ends[tree.parents[children]])
    # Murray's law: no child is wider than its parent
    assert np.all(tree.radii[children] <= tree.radii[tree.parents[children]] + 1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_vessel_mask_is_one_component_at_low_resolution(shape):
    # thin vessels are dimmed by partial volume at 16^3: threshold below their peak
    _, n_components = ndimage.label(
        angio_vessel_mask(shape, seed=0).numpy() > 0.3, FULL_CONNECTIVITY
    )
    assert n_components == 1


def test_vessel_mask_is_one_component_where_every_vessel_is_resolved():
    labels, n_components = ndimage.label(angio_vessel_mask((128,) * 3, seed=0).numpy() > 0.5)
    assert n_components == 1 and (labels > 0).sum() > 5000


def test_oversampled_phantom_is_the_same_object():
    coarse = angio_phantom((16, 16, 16), seed=1)
    fine = angio_phantom((16, 16, 16), seed=1, oversample=2)
    assert fine.shape == (32, 32, 32)
    assert torch.allclose(fine[::2, ::2, ::2], coarse, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": (16, 16)}, "3D"),
        ({"shape": (16, 0, 16)}, "positive ints"),
        ({"shape": (16, 16.5, 16)}, "positive ints"),
        ({"shape": (16, 16, 16), "seed": -1}, "seed"),
        ({"shape": (16, 16, 16), "seed": 1.5}, "seed"),
        ({"shape": (16, 16, 16), "seed": True}, "seed"),
        ({"shape": (16, 16, 16), "oversample": 0}, "oversample"),
        ({"shape": (16, 16, 16), "edge_width": -1.0}, "edge_width"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        angio_phantom(**kwargs)


def test_simulated_acquisition_holds_the_phantom():
    acq = simulate_acquisition(
        radial_3d(40, 24, image_size=12), (12, 12, 12), n_coils=2, phantom="angio", seed=6
    )
    assert torch.equal(acq.image, angio_phantom((12, 12, 12), seed=6))
    assert torch.isfinite(torch.view_as_real(acq.kspace)).all()
