"""SVD clutter filter: remove slowly varying tissue signal from a block of IQ frames.

The block is reshaped into a Casorati matrix (voxels x frames); tissue, being strongly coherent
over time, occupies its first singular components, which are removed. Bubbles, moving and
sparse, live in the remaining ones.
"""

from __future__ import annotations

import torch

from blockrecon.ulm._checks import check_iq


def svd_clutter_filter(iq: torch.Tensor, n_components: int) -> torch.Tensor:
    """Remove the ``n_components`` largest singular components of the Casorati matrix.

    Args:
        iq: complex ``(frames, *spatial)`` (2 or 3 spatial axes).
        n_components: number of leading components to remove, ``0 <= n_components < frames``.

    Returns:
        complex64 tensor of the same shape: the filtered frames.
    """
    check_iq(iq)
    n_frames = iq.shape[0]
    if not isinstance(n_components, int) or not 0 <= n_components < n_frames:
        raise ValueError(f"n_components must be an int in [0, {n_frames}), got {n_components}")
    casorati = iq.detach().to(torch.complex64).reshape(n_frames, -1).T  # (voxels, frames)
    if n_components == 0:
        return casorati.T.reshape(iq.shape).clone()
    # Right singular vectors from the small frames x frames Gram matrix (voxels >> frames).
    gram = casorati.conj().T @ casorati
    _, vectors = torch.linalg.eigh(gram.to(torch.complex128))
    leading = vectors[:, -n_components:].to(torch.complex64)  # eigh sorts ascending
    filtered = casorati - (casorati @ leading) @ leading.conj().T
    return filtered.T.reshape(iq.shape).contiguous()
