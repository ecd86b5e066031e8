"""Cardiac segmentation data: synthetic short-axis cine MRI and ACDC-style NIfTI files."""

from blockrecon.seg.data.acdc import (
    find_acdc_pairs,
    load_acdc_folder,
    load_acdc_pair,
    read_nifti_volume,
    save_label_volume,
)
from blockrecon.seg.data.synthetic import NUM_CLASSES, synthetic_cine

__all__ = [
    "NUM_CLASSES",
    "find_acdc_pairs",
    "load_acdc_folder",
    "load_acdc_pair",
    "read_nifti_volume",
    "save_label_volume",
    "synthetic_cine",
]
