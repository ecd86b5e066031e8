"""Training: training pairs (simulated or from files), gradient accumulation, evaluation, the
training loop with checkpoint/resume (:func:`fit`) and torch.distributed support."""

from blockrecon.train.data import (
    AcquisitionFiles,
    TrainingPair,
    normalize_pair,
)
from blockrecon.train.loop import FitResult, fit
from blockrecon.train.simulated import SimulatedRadialPairs
from blockrecon.train.step import accumulate_gradients, evaluate

__all__ = [
    "AcquisitionFiles",
    "FitResult",
    "SimulatedRadialPairs",
    "TrainingPair",
    "accumulate_gradients",
    "evaluate",
    "fit",
    "normalize_pair",
]
