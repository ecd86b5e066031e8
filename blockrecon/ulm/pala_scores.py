"""PALA's evaluation scores of a ULM method and the global score that combines them.

Heiles, Chavignon, Hingot, Lopez, Teston and Couture, "Performance benchmarking of
microbubble-localization algorithms for ultrasound localization microscopy", Nature Biomedical
Engineering 6, 605-616 (2022), doi:10.1038/s41551-021-00824-8; code
github.com/AChavignon/PALA (``PALA/PALA_scripts``). Read there, written here:

- Localization (in silico, ``PALA_PairingAlgorithm.m``, ``PALA_SilicoFlow_fig.m``): detections
  paired with true bubbles within lambda/2, true positives within lambda/4; precision
  TP / (TP + FP), recall TP / (TP + FN), Jaccard index TP / (TP + FP + FN), and the localization
  error of the pairs. These are :func:`blockrecon.ulm.metrics.localization_scores` (which pools
  the counts over all frames; PALA averages the ratios over its acquisition buffers, equal for
  equally filled buffers). PALA's "RMSE" is the mean of the pairs' Euclidean errors
  (``mean(ErrList(:, 1))``; ``PALA_SilicoPSF.m`` also removes a per-algorithm static bias measured
  at -60 dB, which needs that dataset and is not done here): ``mean_error`` below, next to the
  root-mean-square ``rmse``.
- Saturation (in vivo, ``PALA_VivoBrain.m``: ``nnz(MatOut > 0) / numel(MatOut)``): the fraction
  of the pixels of the density map (rendered from interpolated tracks on the fine grid) that at
  least one track crossed; :func:`saturation`.
- Gap (in silico flow, ``PALA_SilicoFlow_fig.m``, figure 2): two canals run side by side with a
  separation that grows along them; across each section, the density profile is cut to the span
  between its first and last sample above a threshold (3 % of the ground-truth map's maximum),
  and the section is resolved when a sample of that span falls below the threshold. The gap is
  the canal separation of the first section after the last unresolved one (sections in
  increasing separation), PALA's smallest separation a method resolves; :func:`canal_gap`. The
  separation is wall to wall, as PALA measured it (the empty width of the ground-truth map);
  the canal phantom and its sections are :mod:`blockrecon.ulm.canals`.
- Global score (``PALA_GlobalScore.m``): each metric mapped to a score, 1 best:
  ``1 - mean_error / (lambda/2)``, Jaccard, precision, ``1 - gap / lambda`` (PALA: 0 at 100 um,
  lambda at 15 MHz), saturation; then ``100 * sum(w_i s_i) / sum(w_i)`` with PALA's weights
  RMSE 2, Jaccard 2, precision 1, gap 1, saturation 1 (:data:`PALA_WEIGHTS`). PALA's score also
  weighs processing time (2, relative to the fastest method of the comparison) and the gridding
  index (1, from the in vivo data); neither is computed here, so the weights are renormalized
  over the scores available (:func:`global_score`), and a score that is unavailable (no canal
  pair for the gap, no pairs for the error) is left out the same way, named in
  :attr:`PalaScores.components`. Recall is reported but, as in PALA, not weighed. Component
  scores are clipped to [0, 1] (a never-resolved pair, gap = inf, scores 0, not -inf; PALA's
  values never left that range).

3D: every definition above is a count or a distance and carries over unchanged (Euclidean
distances in 3D, pairs and true positives at the same lambda/2 and lambda/4). Saturation is the
fraction of fine *voxels* of the 3D density map: a maximum-intensity projection would count a
pixel hit at any depth along the projection and depend on the projection axis. The gap is
measured in the plane of the canal pair, on the density summed over the fine slices that the
canals' thickness covers (:func:`blockrecon.ulm.canals.canal_profiles`), since slices outside the
canals hold only false detections.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from blockrecon.ulm.metrics import LocalizationScores

#: PALA's weights of the global score, for the metrics computed here (``PALA_GlobalScore.m``;
#: its processing time (2) and gridding index (1) are not).
PALA_WEIGHTS: dict[str, float] = {
    "rmse": 2.0,
    "jaccard": 2.0,
    "precision": 1.0,
    "gap": 1.0,
    "saturation": 1.0,
}
#: Localization error (lambda) that scores 0: lambda/2, the pairing distance.
ERROR_AT_ZERO_SCORE = 0.5
#: Gap (lambda) that scores 0: PALA's 100 um, one wavelength at 15 MHz.
GAP_AT_ZERO_SCORE = 1.0
#: Threshold of the gap, as a fraction of the ground-truth map's maximum (PALA: 3 %).
GAP_THRESHOLD_FRACTION = 0.03


def saturation(density: torch.Tensor) -> float:
    """Fraction of the pixels (voxels) of a density map holding at least one count.

    Args:
        density: real ``(*fine_shape)`` map, 2 or 3 axes (e.g. :attr:`TrackMaps.density`).

    Returns:
        float in [0, 1].
    """
    if not isinstance(density, torch.Tensor) or density.is_complex() or density.ndim not in (2, 3):
        raise ValueError("density must be a real tensor with 2 or 3 axes")
    if density.numel() == 0 or not bool(torch.isfinite(density).all()):
        raise ValueError(f"density must be non-empty and finite, got shape {tuple(density.shape)}")
    return float(torch.count_nonzero(density > 0)) / density.numel()


def resolved_sections(profiles: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each density profile across a canal pair shows the two canals apart.

    Args:
        profiles: float ``(n_sections, n_samples)``: density along a line across both canals.
        threshold: density below which a sample is empty (> 0).

    Returns:
        bool ``(n_sections,)``: a sample below ``threshold`` lies between the first and the last
        sample above it (a profile with fewer than two samples above it is not resolved).
    """
    profiles = np.asarray(profiles, dtype=np.float64)
    if profiles.ndim != 2 or profiles.shape[1] < 1:
        raise ValueError(f"profiles must have shape (n_sections, n_samples), got {profiles.shape}")
    if not threshold > 0 or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a positive number, got {threshold}")
    above = profiles >= threshold
    n = profiles.shape[1]
    first = np.argmax(above, axis=1)
    last = n - 1 - np.argmax(above[:, ::-1], axis=1)
    index = np.arange(n)
    inside = (index >= first[:, None]) & (index <= last[:, None]) & above.any(1)[:, None]
    return np.any(inside & ~above, axis=1)


def canal_gap(profiles: np.ndarray, separations: np.ndarray, threshold: float) -> float:
    """PALA's gap: the smallest canal separation from which on every section is resolved.

    Args:
        profiles: float ``(n_sections, n_samples)`` density profiles across the canal pair.
        separations: float ``(n_sections,)`` true wall-to-wall separation of each section,
            lambda.
        threshold: see :func:`resolved_sections`.

    Returns:
        The separation (lambda) of the first section after the last unresolved one, in order of
        increasing separation; the smallest separation if every section is resolved; ``inf`` if
        the widest section is not.
    """
    separations = np.asarray(separations, dtype=np.float64)
    resolved = resolved_sections(profiles, threshold)
    if separations.shape != resolved.shape or not np.all(np.isfinite(separations)):
        raise ValueError(
            f"separations must be {len(resolved)} finite values (one per profile), "
            f"got shape {separations.shape}"
        )
    order = np.argsort(separations, kind="stable")
    resolved, separations = resolved[order], separations[order]
    if not resolved[-1]:
        return math.inf
    unresolved = np.flatnonzero(~resolved)
    return float(separations[unresolved[-1] + 1 if len(unresolved) else 0])


def component_scores(values: Mapping[str, float | None]) -> dict[str, float]:
    """PALA's score (in [0, 1], 1 best) of each available metric.

    Args:
        values: any of ``rmse`` (PALA's, i.e. the mean localization error, lambda), ``jaccard``,
            ``precision``, ``gap`` (lambda) and ``saturation``; None or NaN means unavailable
            and is left out.
    """
    unknown = set(values) - set(PALA_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {sorted(PALA_WEIGHTS)}")
    scores = {}
    for name, value in values.items():
        if value is None or math.isnan(value):
            continue
        if name == "rmse":
            value = 1.0 - value / ERROR_AT_ZERO_SCORE
        elif name == "gap":
            value = 1.0 - value / GAP_AT_ZERO_SCORE
        scores[name] = min(max(float(value), 0.0), 1.0)
    return scores


def global_score(scores: Mapping[str, float], weights: Mapping[str, float] = PALA_WEIGHTS) -> float:
    """``100 * sum(w_i s_i) / sum(w_i)`` over the component ``scores`` given (from
    :func:`component_scores`); NaN when none is."""
    missing = set(scores) - set(weights)
    if missing:
        raise ValueError(f"no weight for {sorted(missing)}")
    if any(weights[name] < 0 for name in scores):
        raise ValueError("weights must be >= 0")
    total = sum(weights[name] for name in scores)
    if not total:
        return float("nan")
    return 100.0 * sum(weights[name] * s for name, s in scores.items()) / total


@dataclass(frozen=True)
class PalaScores:
    """PALA's metrics of one method on one acquisition, and its global score.

    Attributes:
        rmse: root-mean-square localization error over the pairs, lambda.
        mean_error: mean localization error over the pairs, lambda (PALA's "RMSE").
        jaccard, precision, recall: detection rates (NaN when undefined).
        gap: smallest canal separation resolved, lambda (NaN without a canal pair, inf when
            never resolved).
        saturation: fraction of the fine pixels (voxels) of the density map that are non-zero.
        global_score: PALA's global score (0..100) over ``components``.
        components: the component scores (0..1) the global score combines.
    """

    rmse: float
    mean_error: float
    jaccard: float
    precision: float
    recall: float
    gap: float
    saturation: float
    global_score: float
    components: dict[str, float] = field(default_factory=dict)


def pala_scores(
    localization: LocalizationScores, density: torch.Tensor, gap: float | None = None
) -> PalaScores:
    """PALA's scores from a method's localization scores, its density map and (for a canal
    pair) its gap in lambda (None: not measured)."""
    if not isinstance(localization, LocalizationScores):
        raise ValueError("localization must be LocalizationScores")
    sat = saturation(density)
    gap = float("nan") if gap is None else float(gap)
    components = component_scores(
        {
            "rmse": localization.mean_error,
            "jaccard": localization.jaccard,
            "precision": localization.precision,
            "gap": gap,
            "saturation": sat,
        }
    )
    return PalaScores(
        rmse=localization.rmse,
        mean_error=localization.mean_error,
        jaccard=localization.jaccard,
        precision=localization.precision,
        recall=localization.recall,
        gap=gap,
        saturation=sat,
        global_score=global_score(components),
        components=components,
    )
