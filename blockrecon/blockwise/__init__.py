"""Exact, checkpointed block-wise (patch-wise) application of tiling-capable networks.

Main names: :class:`BlockwiseRegularizer`, :func:`plan_patches`, :func:`apply_full`.
"""

from blockrecon.blockwise.contract import TilingContract, tiling_contract
from blockrecon.blockwise.plan import Patch, PatchPlan, plan_patches
from blockrecon.blockwise.regularizer import BlockwiseRegularizer, apply_full, pad_volume

__all__ = [
    "BlockwiseRegularizer",
    "Patch",
    "PatchPlan",
    "TilingContract",
    "apply_full",
    "pad_volume",
    "plan_patches",
    "tiling_contract",
]
