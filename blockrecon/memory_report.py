"""Reporting memory measurements: the step-memory table of ``blockrecon bench memory`` and the one
memory-against-patch-size figure (used by the CLI and by ``benchmarks/bench_memory.py``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from blockrecon.atomic import atomic_path

MIB = 2**20

#: Columns of :func:`format_table` and lines of :func:`plot_step_memory`: (row key, header,
#: label).
COLUMNS = (
    ("estimate_bytes", "estimate MiB", "step, meta estimate"),
    ("patch_activation_bytes", "patch MiB", "one patch fwd+bwd (meta)"),
    ("saved_bytes", "saved MiB", "step, live tensor bytes"),
    ("rss_bytes", "RSS MiB", "step, peak RSS increase"),
    ("cuda_bytes", "CUDA MiB", "step, CUDA peak"),
)


@dataclass(frozen=True)
class PatchCurve:
    """One block-wise curve of memory against patch size, and its full-backprop level.

    Attributes:
        label: legend of the block-wise curve.
        patches: patch core sizes (voxels).
        mib: memory at each patch, MiB (None: not measured).
        full_label: legend of the full-backprop line.
        full_mib: full backpropagation's memory, MiB (None: no line).
    """

    label: str
    patches: Sequence[int]
    mib: Sequence[float | None]
    full_label: str = ""
    full_mib: float | None = None


def format_table(result: dict) -> str:
    """Plain-text table of :func:`blockrecon.step_memory.memory_table`'s result (MiB; ``-``
    where not measured)."""
    rows = result["rows"] + [result["full"]]
    columns = [(key, head) for key, head, _ in COLUMNS if any(key in r for r in rows)]
    header = f"{'patch':>6}" + "".join(f"{head:>14}" for _, head in columns) + f"{'time s':>9}"
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = [f"{row[key] / MIB:14.1f}" if key in row else f"{'-':>14}" for key, _ in columns]
        seconds = f"{row['seconds']:9.2f}" if "seconds" in row else f"{'-':>9}"
        lines.append(f"{row['patch'] or 'full':>6}" + "".join(cells) + seconds)
    data = sum(result["data_bytes"].values())
    lines.append(
        f"data kept for the whole run (k-space, trajectory, maps, Toeplitz kernel, "
        f"parameters + Adam): {data / MIB:.1f} MiB, not included above"
    )
    return "\n".join(lines)


def step_curves(result: dict) -> list[PatchCurve]:
    """The curves of :func:`blockrecon.step_memory.memory_table`'s result, one per measure."""
    patches = [row["patch"] for row in result["rows"]]
    curves = []
    for key, _, label in COLUMNS:
        values = [row.get(key) for row in result["rows"]]
        if all(v is None for v in values):
            continue
        full = result["full"].get(key)
        curves.append(
            PatchCurve(
                f"block-wise {label}",
                patches,
                [None if v is None else v / MIB for v in values],
                f"full backprop {label.removeprefix('step, ')}",
                None if full is None else full / MIB,
            )
        )
    return curves


def plot_patch_memory(
    curves: Sequence[PatchCurve], path: str | os.PathLike[str], ylabel: str, title: str = ""
) -> None:
    """PNG, written atomically: each curve against patch size (log y) with its full-backprop
    level as a dashed line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for curve, marker in zip(curves, "osx^v" * len(curves), strict=False):
        (line,) = ax.plot(curve.patches, curve.mib, marker=marker, label=curve.label)
        if curve.full_mib is not None:
            ax.axhline(curve.full_mib, ls="--", color=line.get_color(), label=curve.full_label)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xlabel("patch core (voxels)")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_step_memory(result: dict, path: str | os.PathLike[str]) -> None:
    """The figure of :func:`blockrecon.step_memory.memory_table`'s result."""
    problem = result["problem"]
    shape = "x".join(map(str, problem["shape"]))
    plot_patch_memory(
        step_curves(result),
        path,
        "step memory above data (MiB)",
        f"one training step, {shape}, {problem['coils']} coils, {problem['unrolls']} unrolls",
    )
