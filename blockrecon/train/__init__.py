"""Training: training pairs (simulated or from files), objectives (supervised, or
self-supervised on k-space splits), gradient accumulation, evaluation, the training loop with
checkpoint/resume (:func:`fit`) and torch.distributed support."""

from blockrecon.train.cache import PairCache
from blockrecon.train.data import HeldOutSamples, TrainingPair, normalize_pair
from blockrecon.train.files import AcquisitionFiles
from blockrecon.train.kspace_split import KspaceSplits, split_pair
from blockrecon.train.loop import FitResult, fit
from blockrecon.train.objective import Objective, SelfSupervised, Supervised
from blockrecon.train.simulated import SimulatedRadialPairs
from blockrecon.train.step import accumulate_gradients, evaluate

__all__ = [
    "AcquisitionFiles",
    "FitResult",
    "HeldOutSamples",
    "KspaceSplits",
    "Objective",
    "PairCache",
    "SelfSupervised",
    "SimulatedRadialPairs",
    "Supervised",
    "TrainingPair",
    "accumulate_gradients",
    "evaluate",
    "fit",
    "normalize_pair",
    "split_pair",
]
