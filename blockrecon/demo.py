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
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from blockrecon.atomic import atomic_path
from blockrecon.inference import reconstruct_with_model
from blockrecon.memory import reset_rss_high_water_mark, rss_high_water_mark
from blockrecon.physics import (
    Acquisition,
    pipe_menon_dcf,
    radial_3d,
    simulate_acquisition,
)
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.progress import progress_bar
from blockrecon.recon import cg_sense, grid_recon, l1_wavelet, nrmse, psnr, ssim

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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


def simulate_demo(
    size: int = 48,
    n_coils: int = 8,
    acceleration: float = 8.0,
    snr_db: float | None = 40.0,
    seed: int = 0,
) -> Acquisition:
    """A ``size``^3 Shepp-Logan acquisition with ``n_coils`` coils on a golden-angle kooshball,
    ``acceleration``-fold angularly undersampled, complex noise at ``snr_db`` (k-space, dB)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    coord = radial_3d(radial_spokes(size, acceleration), size)
    return simulate_acquisition(
        coord, (size,) * 3, n_coils=n_coils, phantom="shepp_logan", snr_db=snr_db, seed=seed
    )


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


def classical_methods(
    acq: Acquisition, progress: bool = True, backend: str = "auto"
) -> dict[str, Callable[[], torch.Tensor]]:
    """Gridding, CG-SENSE and L1-wavelet CS (30 iterations) on the true coil maps, with NUFFT
    ``backend``.

    The density compensation is computed once and counted in the gridding time. L1-wavelet uses
    it as sample weights (faster convergence on radial data); CG-SENSE does not, because with
    noisy data the weights amplify high-frequency noise faster than CG converges."""
    dcf: dict[str, torch.Tensor] = {}

    def grid() -> torch.Tensor:
        dcf["w"] = pipe_menon_dcf(acq.coord, acq.image_shape, backend=backend, progress=progress)
        return grid_recon(
            acq.kspace, acq.coord, acq.maps, dcf=dcf["w"], backend=backend, progress=progress
        )

    def cg() -> torch.Tensor:
        return cg_sense(
            acq.kspace, acq.coord, acq.maps, n_iter=20, backend=backend, progress=progress
        )

    def l1() -> torch.Tensor:
        return l1_wavelet(
            acq.kspace,
            acq.coord,
            acq.maps,
            lamda=L1_LAMDA,
            n_iter=30,
            weights=dcf["w"],
            backend=backend,
            progress=progress,
        )

    return {"gridding": grid, "CG-SENSE": cg, "L1-wavelet CS": l1}


def mbdl_method(
    acq: Acquisition,
    model: torch.nn.Module | None = None,
    extra: dict | None = None,
    progress: bool = True,
    backend: str = "auto",
) -> dict[str, Callable[[], torch.Tensor]]:
    """The block-wise unrolled network on the true coil maps.

    Args:
        acq: the acquisition.
        model: an :class:`~blockrecon.unrolled.UnrolledNet` in eval mode; ``None`` loads the
            shipped pretrained model (:func:`blockrecon.models.load_pretrained`).
        extra: ``model``'s metadata (how it takes its data, see
            :func:`blockrecon.inference.reconstruct_with_model`); ``None``: data at the
            object's own scale, unweighted. Ignored when ``model`` is None.
        progress: progress bar while computing density weights (models that take them).
        backend: NUFFT backend.

    Building the operator (its Toeplitz kernel and density weights) is counted in the time.
    """
    if model is None:
        from blockrecon.models import load_pretrained

        model, _, extra = load_pretrained()

    def mbdl() -> torch.Tensor:
        return reconstruct_with_model(
            model, acq.kspace, acq.maps, acq.coord, extra or {}, backend=backend, progress=progress
        )

    return {MBDL_NAME: mbdl}


def run_demo(
    methods: dict[str, Callable[[], torch.Tensor]], progress: bool = True
) -> list[MethodResult]:
    """Run each method once, in order, with timing and memory; ``progress``: a bar over the
    methods that names the one under way (:func:`blockrecon.progress.progress_bar`)."""
    bar = progress_bar(methods.items(), "methods", progress)
    results = []
    for name, fn in bar:
        bar.set_postfix_str(name)
        results.append(timed(name, fn))
    return results


def file_stem(name: str) -> str:
    """A method's name as a file-name stem: lower case, every run of other characters one
    underscore (``"MBDL (block-wise)"`` -> ``"mbdl_block_wise"``)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def object_mask(reference: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """Boolean mask of voxels whose magnitude exceeds ``fraction`` of the maximum."""
    magnitude = reference.abs()
    return magnitude > fraction * magnitude.max()


def quality_rows(results: Sequence[MethodResult], reference: torch.Tensor) -> list[dict]:
    """Per method: PSNR (dB), SSIM, NRMSE inside the object, time (s), peak RSS increase (MiB)."""
    mask = object_mask(reference)
    rows = []
    for result in results:
        rows.append(
            {
                "method": result.name,
                "psnr_db": psnr(result.image, reference),
                "ssim": ssim(result.image, reference),
                "nrmse": nrmse(result.image, reference, mask=mask),
                "seconds": result.seconds,
                "peak_mib": None if result.peak_bytes is None else result.peak_bytes / 2**20,
            }
        )
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table of :func:`quality_rows`."""
    header = f"{'method':<18}{'PSNR dB':>9}{'SSIM':>8}{'NRMSE':>8}{'time s':>9}{'peak MiB':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        peak = "n/a" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        lines.append(
            f"{row['method']:<18}{row['psnr_db']:>9.2f}{row['ssim']:>8.3f}"
            f"{row['nrmse']:>8.3f}{row['seconds']:>9.2f}{peak:>10}"
        )
    return "\n".join(lines)


def _scaled_magnitude(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """|image| scaled by the least-squares factor to |reference| (the metrics' convention)."""
    a, r = image.abs().double(), reference.abs().double()
    return (a * (a * r).sum() / (a * a).sum().clamp_min(1e-30)).float()


def _orthogonal_slices(volume: torch.Tensor) -> list[torch.Tensor]:
    nz, ny, nx = volume.shape
    return [volume[nz // 2], volume[:, ny // 2], volume[:, :, nx // 2]]


def demo_figure(
    reference: torch.Tensor, results: Sequence[MethodResult], error_gain: float = 5.0
) -> Figure:
    """One row per method (reference first): three orthogonal slices of the magnitude and the
    three matching error maps ``|x| - |ref|``, drawn with an ``error_gain`` times narrower colour
    range than the images and with a colour bar of the error."""
    from matplotlib.figure import Figure

    rows = [("reference", reference.abs())] + [
        (r.name, _scaled_magnitude(r.image, reference)) for r in results
    ]
    vmax = float(reference.abs().max())
    fig = Figure(figsize=(12, 2.1 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 6, squeeze=False)
    for (name, magnitude), row_axes in zip(rows, axes, strict=True):
        for ax, panel in zip(row_axes[:3], _orthogonal_slices(magnitude), strict=True):
            ax.imshow(panel.cpu().numpy(), cmap="gray", vmin=0, vmax=vmax)
        error = magnitude - reference.abs()
        for ax, panel in zip(row_axes[3:], _orthogonal_slices(error), strict=True):
            errors = ax.imshow(
                panel.cpu().numpy(), cmap="RdBu_r", vmin=-vmax / error_gain, vmax=vmax / error_gain
            )
        row_axes[0].set_ylabel(name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(errors, ax=axes[:, 3:], label="|x| - |ref|")
    for ax, title in zip(
        axes[0], ["axial", "coronal", "sagittal", f"error x{error_gain:g}", "", ""], strict=True
    ):
        ax.set_title(title)
    return fig


def save_figure(
    path: str | os.PathLike[str],
    reference: torch.Tensor,
    results: Sequence[MethodResult],
    error_gain: float = 5.0,
) -> Path:
    """:func:`demo_figure` as a PNG, written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        demo_figure(reference, results, error_gain).savefig(tmp, format="png", dpi=80)
    return path
