"""Ultrasound localization microscopy: simulation (random vessel trees; a canal pair for PALA's
gap), conventional localization and tracking, PALA metrics and scores, dense-to-sparse
conversion of IQ blocks (acquisition files: :mod:`blockrecon.io.ulm`).

Lengths are in wavelengths (lambda); IQ blocks are complex64 ``(frames, *spatial)`` with depth
as the first spatial axis; point tables are ``positions (n, ndim)`` with ``frames (n,)``.
"""

from blockrecon.ulm.acquisition import UlmAcquisition
from blockrecon.ulm.canals import CanalPair, simulate_canal_pair
from blockrecon.ulm.classic import ConventionalUlmResult, conventional_ulm
from blockrecon.ulm.clutter import svd_clutter_filter
from blockrecon.ulm.localize import detect_peaks, localize, noise_level
from blockrecon.ulm.maps import TrackMaps, track_maps
from blockrecon.ulm.metrics import LocalizationScores, localization_scores, pair_greedy
from blockrecon.ulm.pala_scores import PalaScores, pala_scores
from blockrecon.ulm.simulate import simulate_acquisition
from blockrecon.ulm.sparsify import (
    Retention,
    bubble_retention,
    threshold_mask,
    to_sparse,
    topk_mask,
)
from blockrecon.ulm.track import link_tracks

__all__ = [
    "CanalPair",
    "ConventionalUlmResult",
    "LocalizationScores",
    "PalaScores",
    "Retention",
    "TrackMaps",
    "UlmAcquisition",
    "bubble_retention",
    "conventional_ulm",
    "detect_peaks",
    "link_tracks",
    "localization_scores",
    "localize",
    "noise_level",
    "pair_greedy",
    "pala_scores",
    "simulate_acquisition",
    "simulate_canal_pair",
    "svd_clutter_filter",
    "threshold_mask",
    "to_sparse",
    "topk_mask",
    "track_maps",
]
