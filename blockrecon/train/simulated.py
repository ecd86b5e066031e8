"""A dataset of simulated training pairs: phantom -> multi-coil 3D radial k-space -> target."""

from __future__ import annotations

from torch.utils.data import Dataset

from blockrecon.checks import check_positive_int
from blockrecon.physics import Sense, compress_acquisition, pipe_menon_dcf
from blockrecon.physics.simulate import simulate_acquisition
from blockrecon.physics.trajectory import radial_3d
from blockrecon.train.data import TrainingPair, normalize_pair

#: The phantoms of :func:`~blockrecon.physics.simulate.simulate_acquisition` drawn by seed.
SEEDED_PHANTOMS = ("ellipsoids", "angio")


class SimulatedRadialPairs(Dataset):
    """Seeded phantoms acquired by an undersampled 3D radial trajectory.

    Item ``i`` uses phantom and noise seed ``seed + i``; k-space is simulated on a 2x finer
    grid (no inverse crime). Items are cached after their first simulation when ``cache``.

    Args:
        n_items: dataset length.
        image_size: isotropic reconstruction grid ``N`` (volume ``N^3``).
        n_spokes: radial spokes (full sampling needs about ``pi N^2 / 2``).
        n_coils: birdcage coils.
        snr_db: k-space SNR (``None``: noise-free).
        seed: first seed.
        backend: NUFFT backend.
        cache: keep simulated items in memory.
        normalize: normalize each pair (unit-norm operator, unit-peak intensity; see
            :func:`blockrecon.train.data.normalize_pair`).
        density_weights: give the operators the trajectory's Pipe-Menon weights, so that
            data consistency solves the density-weighted problem (see
            :mod:`blockrecon.unrolled`).
        compress_coils: compress each item's k-space and maps to this many virtual coils
            (:func:`~blockrecon.physics.compress_acquisition`), 1 to ``n_coils``, or ``None``.
        phantom: the object, drawn anew for every item: ``"ellipsoids"`` (random ellipsoids)
            or ``"angio"`` (the pulmonary angiography phantom,
            :func:`~blockrecon.physics.angio.angio_phantom`).
    """

    def __init__(
        self,
        n_items: int,
        image_size: int = 16,
        n_spokes: int = 100,
        n_coils: int = 4,
        snr_db: float | None = 30.0,
        seed: int = 0,
        backend: str = "auto",
        cache: bool = True,
        normalize: bool = False,
        density_weights: bool = False,
        compress_coils: int | None = None,
        phantom: str = "ellipsoids",
    ) -> None:
        for name, value in (
            ("n_items", n_items),
            ("image_size", image_size),
            ("n_spokes", n_spokes),
            ("n_coils", n_coils),
        ):
            check_positive_int(value, name)
        if compress_coils is not None and not 1 <= compress_coils <= n_coils:
            raise ValueError(
                f"compress_coils must lie between 1 and the {n_coils} coils, got {compress_coils!r}"
            )
        if phantom not in SEEDED_PHANTOMS:
            raise ValueError(f"phantom must be one of {SEEDED_PHANTOMS}, got {phantom!r}")
        self.phantom = phantom
        self.n_items, self.image_size, self.n_coils = n_items, image_size, n_coils
        self.compress_coils = compress_coils
        self.snr_db, self.seed, self.backend = snr_db, seed, backend
        self.normalize = normalize
        self.coord = radial_3d(n_spokes, 2 * image_size, image_size=image_size)
        self.weights = (
            pipe_menon_dcf(self.coord, (image_size,) * 3, backend=backend, progress=False)
            if density_weights
            else None
        )
        self._cache: dict[int, TrainingPair] | None = {} if cache else None

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, index: int) -> TrainingPair:
        if not 0 <= index < self.n_items:
            raise IndexError(f"index {index} out of range for {self.n_items} items")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        acq = simulate_acquisition(
            self.coord,
            (self.image_size,) * 3,
            n_coils=self.n_coils,
            phantom=self.phantom,
            snr_db=self.snr_db,
            seed=self.seed + index,
            backend=self.backend,
        )
        acq = compress_acquisition(acq, self.compress_coils)
        if self.normalize:
            pair = normalize_pair(
                acq.kspace, acq.maps, self.coord, acq.image, self.backend, self.weights
            )
        else:
            op = Sense(acq.maps, self.coord, weights=self.weights, backend=self.backend)
            pair = TrainingPair(acq.kspace, op, acq.image)
        if self._cache is not None:
            self._cache[index] = pair
        return pair
