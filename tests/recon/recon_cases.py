"""The radial test case of the reconstruction tests: a 32^3 phantom, 4 coils, noise-free."""

from blockrecon.physics.dcf import pipe_menon_dcf
from blockrecon.physics.simulate import simulate_acquisition
from blockrecon.physics.trajectory import radial_3d

N = 32
SHAPE = (N, N, N)


def radial_case(n_spokes):
    """Acquisition of ``n_spokes`` radial spokes (from a 64^3 grid) and its Pipe-Menon DCF."""
    coord = radial_3d(n_spokes, N)
    acquisition = simulate_acquisition(coord, SHAPE, n_coils=4)  # noise-free, from a 64^3 grid
    return acquisition, pipe_menon_dcf(coord, SHAPE, progress=False)
