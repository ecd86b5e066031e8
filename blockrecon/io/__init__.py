"""File formats: the blockrecon HDF5 acquisition file, ISMRMRD import/export, NIfTI export; a
scan to reconstruct read by content (:func:`read_scan`), coil maps from a file, images written.

Everything read is validated (shapes, dtypes, coordinate ranges, finite values) and every error
names the file; everything written goes through :mod:`blockrecon.atomic`, so a failed write
leaves no partial file.
"""

from blockrecon.atomic import atomic_path, atomic_write
from blockrecon.io.hdf5 import FORMAT_VERSION, read_acquisition, write_acquisition
from blockrecon.io.image import IMAGE_SUFFIXES, write_image
from blockrecon.io.ismrmrd import read_ismrmrd, write_ismrmrd
from blockrecon.io.nifti import nifti_affine, write_nifti
from blockrecon.io.scan import read_maps, read_scan
from blockrecon.physics.acquisition import Acquisition, check_acquisition, standard_dtypes

__all__ = [
    "Acquisition",
    "check_acquisition",
    "standard_dtypes",
    "atomic_path",
    "atomic_write",
    "FORMAT_VERSION",
    "read_acquisition",
    "write_acquisition",
    "read_ismrmrd",
    "write_ismrmrd",
    "nifti_affine",
    "write_nifti",
    "read_scan",
    "read_maps",
    "IMAGE_SUFFIXES",
    "write_image",
]
