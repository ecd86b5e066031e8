"""Cardiac segmentation data: synthetic short-axis cine MRI (ACDC-style NIfTI files are read by
:mod:`blockrecon.io.acdc`)."""

from blockrecon.seg.data.synthetic import NUM_CLASSES, synthetic_cine

__all__ = ["NUM_CLASSES", "synthetic_cine"]
