"""Where a network beats conventional ULM, from the held-out table its model file carries.

``scripts/train_ulm_models.py`` scores each shipped network and conventional ULM on held-out
simulations (one per concentration, in bubbles per frame on the training field) and stores the
rows in the model file's ``extra["held_out"]``, with the field in ``extra["settings"]["shape"]``.
From that table this module tells which method scored the higher Jaccard at an acquisition's
bubble density (linear between the tabulated concentrations). The density is read from the
network's own detections: at concentration ``c`` the network makes about
``c * recall / precision`` detections per frame on the field, which the table also gives, so no
ground truth is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HeldOutTable:
    """Held-out scores of a network and of conventional ULM, per concentration.

    Attributes:
        concentrations: bubbles per frame on the field, increasing, float64 ``(k,)``.
        network_jaccard, conventional_jaccard: float64 ``(k,)``.
        network_precision, network_recall: float64 ``(k,)``.
        field_shape: grid (voxels per axis) of the field the concentrations refer to.
    """

    concentrations: np.ndarray
    network_jaccard: np.ndarray
    conventional_jaccard: np.ndarray
    network_precision: np.ndarray
    network_recall: np.ndarray
    field_shape: tuple[int, ...]

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> HeldOutTable | None:
        """The table of a model file's ``extra`` (None when it has none, e.g. a model from
        ``blockrecon ulm train``, or lacks one of the two methods at some concentration)."""
        rows = (extra.get("held_out") or {}).get("rows")
        shape = (extra.get("settings") or {}).get("shape")
        if not rows or not shape:
            return None
        by_method: dict[str, dict[float, Mapping[str, Any]]] = {}
        for row in rows:
            by_method.setdefault(row["method"], {})[float(row["concentration"])] = row
        network, conventional = by_method.get("network", {}), by_method.get("conventional", {})
        concentrations = sorted(set(network) & set(conventional))
        if not concentrations or len(concentrations) != len(network):
            return None

        def column(table: Mapping[float, Mapping[str, Any]], key: str) -> np.ndarray:
            return np.array([float(table[c][key]) for c in concentrations])

        return cls(
            np.array(concentrations),
            column(network, "jaccard"),
            column(conventional, "jaccard"),
            column(network, "precision"),
            column(network, "recall"),
            tuple(int(s) for s in shape),
        )

    def crossing(self) -> float | None:
        """The lowest concentration from which the network's Jaccard beats conventional ULM's
        from then on (None: not at the highest tabulated one): where the difference of the two,
        linear between the tabulated concentrations, last turns positive; the first tabulated
        concentration if the network wins at every one."""
        lead = self.network_jaccard - self.conventional_jaccard
        if lead[-1] <= 0:
            return None
        losses = np.flatnonzero(lead <= 0)
        if not len(losses):
            return float(self.concentrations[0])
        i = losses[-1]
        low, high = self.concentrations[i : i + 2]
        return float(low + (high - low) * -lead[i] / (lead[i + 1] - lead[i]))

    def detections_per_voxel(self) -> np.ndarray:
        """The network's detections per frame and voxel at each concentration, float64 ``(k,)``:
        ``c * recall / precision`` over the field's voxels."""
        ratio = self.network_recall / np.maximum(self.network_precision, 1e-12)
        return self.concentrations * ratio / math.prod(self.field_shape)

    def concentration_for(self, detections_per_voxel: float) -> float:
        """Concentration (bubbles per frame on the field) at which the network makes
        ``detections_per_voxel`` detections per frame and voxel, interpolated in the table
        (clamped to its ends)."""
        density = np.maximum.accumulate(self.detections_per_voxel())
        return float(np.interp(detections_per_voxel, density, self.concentrations))


def density_advice(
    table: HeldOutTable | None, n_detections: int, n_frames: int, spatial_shape: Sequence[int]
) -> str | None:
    """A one-line warning when an acquisition's detection density lies where conventional ULM
    scored the higher held-out Jaccard, else None (also without a table or frames).

    Args:
        table: the model's held-out table (:meth:`HeldOutTable.from_extra`).
        n_detections: the network's detections in the ``n_frames`` frames it scored.
        spatial_shape: the acquisition's grid (voxels per axis).
    """
    if table is None or n_frames <= 0:
        return None
    crossing = table.crossing()
    per_voxel = n_detections / (n_frames * math.prod(spatial_shape))
    estimate = table.concentration_for(per_voxel)
    if crossing is not None and estimate >= crossing:
        return None
    field = "x".join(map(str, table.field_shape))
    beaten = (
        "never beat it on held-out data"
        if crossing is None
        else f"beat it on held-out data only from about {crossing:.1f} bubbles/frame"
    )
    return (
        f"warning: {n_detections / n_frames:.0f} detections per frame suggest about "
        f"{estimate:.0f} bubbles/frame on a {field} field, where conventional ULM scored the "
        f"higher held-out Jaccard (the network {beaten}); --method conventional may give the "
        "better map"
    )
