"""The embedded demonstration: simulate a multi-coil 3D radial acquisition and compare methods.

No download: a phantom, birdcage coil maps and a golden-angle 3D radial trajectory are simulated
(from a 2x finer grid, so the comparison avoids the inverse crime), then every method
reconstructs the same data. :func:`run_demo` returns the images with their wall time and peak
memory; :func:`quality_rows` scores them against the reference (metrics convention of
:mod:`blockrecon.recon.metrics`); :func:`save_figure` draws three orthogonal slices per method
with error maps.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from blockrecon.atomic import atomic_path
from blockrecon.memory import reset_rss_high_water_mark, rss_high_water_mark
from blockrecon.physics import (
    Acquisition,
    pipe_menon_dcf,
    radial_3d,
    simulate_acquisition,
)
from blockrecon.physics.simulate import radial_spokes
from blockrecon.recon import cg_sense, grid_recon, l1_wavelet, nrmse, psnr, ssim
from blockrecon.train.data import reconstruct_with_model

#: Name of the learned method in tables and figures.
MBDL_NAME = "MBDL (block-wise)"

#: Default L1-wavelet weight for data at the object's scale (image magnitude about 1).
L1_LAMDA = 1e-2


@dataclass(frozen=True)
class MethodResult:
    """One reconstruction: complex64 ``image`` (nz, ny, nx), wall time in seconds, and the
    increase of the process's peak resident memory during the run in bytes (None where the
    platform cannot reset the high-water mark)."""

    name: str
    image: torch.Tensor
    seconds: float
    peak_bytes: int | None


def simulate_demo(size: int = 48, n_coils: int = 8, acceleration: float = 8.0,
                  snr_db: float | None = 40.0, seed: int = 0) -> Acquisition:
    """A ``size``^3 Shepp-Logan acquisition with ``n_coils`` coils on a golden-angle kooshball,
    ``acceleration``-fold angularly undersampled, complex noise at ``snr_db`` (k-space, dB)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    coord = radial_3d(radial_spokes(size, acceleration), size)
    return simulate_acquisition(coord, (size,) * 3, n_coils=n_coils, phantom="shepp_logan",
                                snr_db=snr_db, seed=seed)


def timed(name: str, fn: Callable[[], torch.Tensor]) -> MethodResult:
    """Run ``fn`` once, measuring wall time and the increase of peak RSS."""
    gc.collect()
    baseline = reset_rss_high_water_mark()
    start = time.perf_counter()
    with torch.no_grad():
        image = fn()
    seconds = time.perf_counter() - start
    peak = None if baseline is None else rss_high_water_mark() - baseline
    return MethodResult(name, image.detach(), seconds, peak)


def classical_methods(acq: Acquisition, progress: bool = True
                      ) -> dict[str, Callable[[], torch.Tensor]]:
    """Gridding, CG-SENSE and L1-wavelet CS (30 iterations) on the true coil maps.

    The density compensation is computed once and counted in the gridding time. L1-wavelet uses
    it as sample weights (faster convergence on radial data); CG-SENSE does not, because with
    noisy data the weights amplify high-frequency noise faster than CG converges."""
    dcf: dict[str, torch.Tensor] = {}

    def grid() -> torch.Tensor:
        dcf["w"] = pipe_menon_dcf(acq.coord, acq.image_shape, progress=progress)
        return grid_recon(acq.kspace, acq.coord, acq.maps, dcf=dcf["w"], progress=progress)

    def cg() -> torch.Tensor:
        return cg_sense(acq.kspace, acq.coord, acq.maps, n_iter=20, progress=progress)

    def l1() -> torch.Tensor:
        return l1_wavelet(acq.kspace, acq.coord, acq.maps, lamda=L1_LAMDA, n_iter=30,
                          weights=dcf["w"], progress=progress)

    return {"gridding": grid, "CG-SENSE": cg, "L1-wavelet CS": l1}


def mbdl_method(acq: Acquisition, model: torch.nn.Module | None = None,
                extra: dict | None = None) -> dict[str, Callable[[], torch.Tensor]]:
    """The block-wise unrolled network on the true coil maps.

    Args:
        acq: the acquisition.
        model: an :class:`~blockrecon.unrolled.UnrolledNet` in eval mode; ``None`` loads the
            shipped pretrained model (:func:`blockrecon.models.load_pretrained`).
        extra: ``model``'s metadata (how it takes its data, see
            :func:`blockrecon.train.data.reconstruct_with_model`); ``None``: data at the
            object's own scale, unweighted. Ignored when ``model`` is None.

    Building the operator (its Toeplitz kernel and density weights) is counted in the time.
    """
    if model is None:
        from blockrecon.models import load_pretrained

        model, _, extra = load_pretrained()

    def mbdl() -> torch.Tensor:
        return reconstruct_with_model(model, acq.kspace, acq.maps, acq.coord, extra or {})

    return {MBDL_NAME: mbdl}


def run_demo(acq: Acquisition,
             methods: dict[str, Callable[[], torch.Tensor]]) -> list[MethodResult]:
    """Run each method once, in order, with timing and memory."""
    return [timed(name, fn) for name, fn in methods.items()]


def object_mask(reference: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """Boolean mask of voxels whose magnitude exceeds ``fraction`` of the maximum."""
    magnitude = reference.abs()
    return magnitude > fraction * magnitude.max()


def quality_rows(results: Sequence[MethodResult], reference: torch.Tensor) -> list[dict]:
    """Per method: PSNR (dB), SSIM, NRMSE inside the object, time (s), peak RSS increase (MiB)."""
    mask = object_mask(reference)
    rows = []
    for result in results:
        rows.append({
            "method": result.name,
            "psnr_db": psnr(result.image, reference),
            "ssim": ssim(result.image, reference),
            "nrmse": nrmse(result.image, reference, mask=mask),
            "seconds": result.seconds,
            "peak_mib": None if result.peak_bytes is None else result.peak_bytes / 2**20,
        })
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table of :func:`quality_rows`."""
    header = f"{'method':<18}{'PSNR dB':>9}{'SSIM':>8}{'NRMSE':>8}{'time s':>9}{'peak MiB':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        peak = "n/a" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        lines.append(f"{row['method']:<18}{row['psnr_db']:>9.2f}{row['ssim']:>8.3f}"
                     f"{row['nrmse']:>8.3f}{row['seconds']:>9.2f}{peak:>10}")
    return "\n".join(lines)


def _scaled_magnitude(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """|image| scaled by the least-squares factor to |reference| (the metrics' convention)."""
    a, r = image.abs().double(), reference.abs().double()
    return (a * (a * r).sum() / (a * a).sum().clamp_min(1e-30)).float()


def _orthogonal_slices(volume: torch.Tensor) -> list[torch.Tensor]:
    nz, ny, nx = volume.shape
    return [volume[nz // 2], volume[:, ny // 2], volume[:, :, nx // 2]]


def save_figure(path: str | os.PathLike[str], reference: torch.Tensor,
                results: Sequence[MethodResult], error_gain: float = 5.0) -> Path:
    """PNG: one row per method (reference first), three orthogonal slices of the magnitude and
    the three matching error maps ``|x| - |ref|`` amplified by ``error_gain``. Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("reference", reference.abs())] + [
        (r.name, _scaled_magnitude(r.image, reference)) for r in results]
    vmax = float(reference.abs().max())
    fig, axes = plt.subplots(len(rows), 6, figsize=(12, 2.1 * len(rows)), squeeze=False)
    for (name, magnitude), row_axes in zip(rows, axes, strict=True):
        error = magnitude - reference.abs()
        panels = _orthogonal_slices(magnitude) + _orthogonal_slices(error * error_gain)
        for k, (ax, panel) in enumerate(zip(row_axes, panels, strict=True)):
            if k < 3:
                ax.imshow(panel.cpu(), cmap="gray", vmin=0, vmax=vmax)
            else:
                ax.imshow(panel.cpu(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
        row_axes[0].set_ylabel(name)
    for ax, title in zip(axes[0], ["axial", "coronal", "sagittal",
                                   f"error x{error_gain:g}", "", ""], strict=True):
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return path
