"""SVD clutter filter: remove slowly varying tissue signal from a block of IQ frames.

The block is reshaped into a Casorati matrix (voxels x frames); tissue, being strongly coherent
over time, occupies its first singular components, which are removed. Bubbles, moving and
sparse, live in the remaining ones.
"""

from __future__ import annotations

import numpy as np
import torch

from blockrecon.checks import check_positive_int
from blockrecon.ulm._checks import check_iq


def svd_clutter_filter(iq: torch.Tensor, n_components: int) -> torch.Tensor:
    """Remove the ``n_components`` largest singular components of the Casorati matrix.

    Args:
        iq: complex ``(frames, *spatial)`` (2 or 3 spatial axes).
        n_components: number of leading components to remove, ``0 <= n_components < frames``.

    Returns:
        complex64 tensor of the same shape: the filtered frames.
    """
    array = check_iq(iq)
    n_frames = array.shape[0]
    n_components = check_positive_int(n_components, "n_components", allow_zero=True)
    if n_components >= n_frames:
        raise ValueError(f"n_components must be below the {n_frames} frames, got {n_components}")
    if n_components == 0:
        return torch.from_numpy(array.copy())
    casorati = array.reshape(n_frames, -1).T  # (voxels, frames)
    # Right singular vectors from the small frames x frames Gram matrix (voxels >> frames).
    gram = (casorati.conj().T @ casorati).astype(np.complex128)
    _, vectors = np.linalg.eigh(gram)  # ascending eigenvalues
    leading = vectors[:, n_frames - n_components :].astype(np.complex64)
    filtered = casorati - (casorati @ leading) @ leading.conj().T
    return torch.from_numpy(np.ascontiguousarray(filtered.T).reshape(array.shape))
