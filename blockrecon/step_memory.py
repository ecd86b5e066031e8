"""Memory of one training step of the block-wise unrolled network on a 3D radial problem.

The step is what training does for one example: ``x = model(y, E)`` with the unrolled network of
:func:`blockrecon.models.build_unrolled` (valid ResNet3d regularizer applied block-wise with
checkpointed patches, learned gradient-step data consistency through the Sense operator's
Toeplitz normal, ``init="adjoint"``), the relative-L2 loss against a target, and backward. The
optimizer update (a few tens of thousands of parameters) is left out. A self-supervised step
(``loss_fraction`` set: :mod:`blockrecon.train.kspace_split`) reconstructs from the
data-consistency readouts and takes the image to the held-out readouts (a NUFFT forward of the
full volume, coil by coil) for a normalized L1+L2 k-space loss.

Memory is reported in two parts:

``data_bytes``
    what exists before the step and stays for the whole training: k-space, trajectory, coil
    maps, the Toeplitz kernel (real, on the 2x grid), the parameters with their gradients and
    two Adam moments. Computed from the sizes.
``step_bytes``
    the peak the step adds on top. Three ways to obtain it, each where the machine supports it:

    * estimate (:func:`estimate_step_bytes`): the step runs on the meta device and
      :func:`blockrecon.memory.saved_bytes` counts the peak of live tensors, allocating
      nothing, so any volume can be estimated; the block-wise regularizer runs only its first
      :data:`ESTIMATE_PATCHES` patches, which reach the peak of any number of patches.
      Everything in the step is torch code with meta kernels (the Toeplitz normal is FFTs on
      the 2x grid) except the NUFFT adjoint ``E^H y``,
      which runs once before the graph, keeps nothing for backward, and is replaced by an empty
      image. Its library-internal workspace (outside torch) is accounted analytically by
      :func:`nufft_workspace_bytes`: one upsampled complex grid (factor 2 per axis) per coil in
      a batch; the estimate is the larger of the two peaks;
    * measured saved bytes and peak RSS on CPU (:func:`measure_step`): a fresh process builds
      the problem, runs a warm-up step, resets the resident high-water mark and runs the
      measured step under :func:`~blockrecon.memory.saved_bytes`
      (:func:`blockrecon.memory.peak_rss`: ``MALLOC_MMAP_THRESHOLD_=65536``);
    * CUDA peak on a GPU (:func:`blockrecon.memory.cuda_peak_bytes`), after a warm-up step.

Full backpropagation is the same step with ``patch_size=None`` (the regularizer on the whole
volume at once, no checkpoints).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from blockrecon.blockwise import BlockwiseRegularizer, PatchPlan
from blockrecon.checks import check_positive_int
from blockrecon.memory import (
    COMPLEX_BYTES,
    REAL_BYTES,
    available_memory_bytes,
    check_memory,
    cuda_peak_bytes,
    estimate_full_backprop_bytes,
    peak_rss,
    saved_bytes,
)
from blockrecon.models import build_unrolled
from blockrecon.physics import Sense, ToeplitzNormal, birdcage_maps
from blockrecon.physics.trajectory import radial_coord, radial_spokes
from blockrecon.progress import progress_bar
from blockrecon.unrolled import UnrolledNet

#: Copies of the parameters a training run keeps: values, gradients, two Adam moments.
PARAMETER_COPIES = 4

#: Safety factor on the estimate when deciding whether a step can be measured.
FIT_MARGIN = 1.5


@dataclass(frozen=True)
class StepProblem:
    """One training example's size and the network trained on it.

    Attributes:
        shape: image grid ``(nz, ny, nx)``.
        coils: receive coils.
        unrolls: unrolls of the network (one shared regularizer).
        spokes: radial spokes; ``None`` gives 8-fold angular undersampling of the largest size.
        readout: samples per spoke; ``None`` gives ``2 * max(shape)``.
        width, n_layers: ResNet3d regularizer (feature channels, 3x3x3 convolutions).
        coil_batch: coils per Toeplitz / NUFFT call (bounds the 2x-grid transients).
        backend: NUFFT backend for ``E^H y`` and the Toeplitz kernel.
        checkpoint_unrolls: block-wise runs also checkpoint each unroll, keeping one image per
            unroll instead of its data-consistency intermediates (full backpropagation never
            checkpoints).
        loss_fraction: ``None`` for a supervised step; else a self-supervised step holding out
            this fraction of the spokes, in (0, 1).
    """

    shape: tuple[int, int, int]
    coils: int = 8
    unrolls: int = 5
    spokes: int | None = None
    readout: int | None = None
    width: int = 32
    n_layers: int = 5
    coil_batch: int | None = 1
    backend: str = "auto"
    checkpoint_unrolls: bool = False
    loss_fraction: float | None = None

    def __post_init__(self) -> None:
        shape = tuple(self.shape)
        if len(shape) != 3:
            raise ValueError(f"shape must be 3 sizes (nz, ny, nx), got {shape}")
        for size in shape:
            check_positive_int(size, "each shape entry")
        object.__setattr__(self, "shape", shape)
        for name in ("coils", "unrolls", "width", "n_layers"):
            check_positive_int(getattr(self, name), name)
        for name in ("spokes", "readout", "coil_batch"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if self.loss_fraction is not None:
            held = round(self.loss_fraction * self.n_spokes) if 0 < self.loss_fraction < 1 else 0
            if not 1 <= held < self.n_spokes:
                raise ValueError(
                    f"the loss fraction must lie in (0, 1) and leave spokes in both sets, got "
                    f"{self.loss_fraction} of {self.n_spokes} spokes"
                )

    @property
    def held_out_spokes(self) -> int:
        """Spokes held out for the loss (0 for a supervised step)."""
        return 0 if self.loss_fraction is None else round(self.loss_fraction * self.n_spokes)

    @property
    def n_spokes(self) -> int:
        return self.spokes or radial_spokes(max(self.shape))

    @property
    def n_readout(self) -> int:
        return self.readout or 2 * max(self.shape)

    @property
    def voxels(self) -> int:
        return math.prod(self.shape)

    @property
    def samples(self) -> int:
        return self.n_spokes * self.n_readout

    def check_patch(self, patch: int | None) -> None:
        """ValueError unless ``patch`` is None (full volume) or a core that fits the volume."""
        if patch is None:
            return
        check_positive_int(patch, "patch size")
        if patch > min(self.shape):
            raise ValueError(f"patch size {patch} is larger than the volume {self.shape}")


def build_model(problem: StepProblem, patch: int | None) -> UnrolledNet:
    """The unrolled network of ``problem`` applied block-wise with cores of ``patch`` voxels
    (``None``: the regularizer on the whole volume, i.e. full backpropagation).

    Padding is ``"zeros"`` (reflect padding changes no size, and zeros has meta kernels)."""
    problem.check_patch(patch)
    torch.manual_seed(0)
    model = build_unrolled(
        {
            "regularizer": {
                "kind": "resnet3d",
                "width": problem.width,
                "n_layers": problem.n_layers,
            },
            "n_unrolls": problem.unrolls,
            "patch_size": patch,
            "padding": "zeros",
        }
    )
    model.checkpoint_unrolls = problem.checkpoint_unrolls and patch is not None
    return model


def parameter_count(problem: StepProblem) -> int:
    """Learned parameters of the network of ``problem``."""
    return sum(p.numel() for p in build_model(problem, None).parameters())


def data_bytes(problem: StepProblem) -> dict[str, int]:
    """Bytes of what a training run keeps for the whole run (see the module docstring)."""
    v = problem.voxels
    return {
        "kspace": problem.coils * problem.samples * COMPLEX_BYTES,
        "trajectory": problem.samples * 3 * REAL_BYTES,
        "maps": problem.coils * v * COMPLEX_BYTES,
        "toeplitz_kernel": 8 * v * REAL_BYTES,
        "parameters": PARAMETER_COPIES * parameter_count(problem) * REAL_BYTES,
    }


def nufft_workspace_bytes(problem: StepProblem) -> int:
    """Library-internal workspace of ``E^H y`` (not torch tensors, so not seen on meta): one
    complex64 grid upsampled 2x per axis per coil of a batch (FINUFFT's default factor; SigPy
    uses 1.25), plus the image it returns."""
    batch = problem.coil_batch or problem.coils
    return (8 * batch + 1) * problem.voxels * COMPLEX_BYTES


class _MetaToeplitz(ToeplitzNormal):
    """Toeplitz normal whose kernel is an empty meta tensor of the right size, made once (as
    the real kernel is built once and cached before any step)."""

    def kernel(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        key = (self.coord.device, dtype)
        if key not in self._kernels:
            shape = [2 * n for n in self.image_shape]
            self._kernels[key] = torch.empty(shape, dtype=dtype, device="meta")
        return self._kernels[key]


class _MetaNufftForward(torch.autograd.Function):
    """Stand-in for a NUFFT forward on meta: coil images ``(*batch, c, *N)`` -> empty k-space
    ``(*batch, c, *samples)``; like the real one it saves nothing for backward."""

    @staticmethod
    def forward(ctx, coil_images: torch.Tensor, sample_shape: tuple[int, ...]) -> torch.Tensor:
        ctx.image_shape = coil_images.shape
        return coil_images.new_empty((*coil_images.shape[:-3], *sample_shape))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.new_empty(ctx.image_shape), None


class _MetaSense(Sense):
    """Sense on the meta device: ``normal`` runs the real Toeplitz code on meta tensors;
    ``adjoint`` and ``forward`` (NUFFTs, which have no meta kernel) return empty tensors of the
    right shape, ``forward`` after making each coil chunk's images as the real one does."""

    def __init__(self, maps: torch.Tensor, coord: torch.Tensor, coil_batch: int | None) -> None:
        super().__init__(maps, coord, coil_batch=coil_batch)
        self.toeplitz = _MetaToeplitz(coord, self.image_shape)
        self.toeplitz.kernel(maps.real.dtype)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        batch = kspace.shape[: kspace.ndim - len(self.nufft.sample_shape) - 1]
        return torch.empty((*batch, *self.image_shape), dtype=kspace.dtype, device="meta")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        shape = self.nufft.sample_shape
        chunks = [
            _MetaNufftForward.apply(self._coil_images(image, c), shape) for c in self._coil_chunks()
        ]
        return torch.cat(chunks, dim=image.ndim - len(self.image_shape))


@dataclass
class StepInputs:
    """k-space ``(coils, spokes, readout)``, the operator and the target image; for a
    self-supervised step also the held-out k-space and its operator (``None`` otherwise)."""

    kspace: torch.Tensor
    op: Sense
    target: torch.Tensor
    heldout_kspace: torch.Tensor | None = None
    heldout_op: Sense | None = None


def build_inputs(problem: StepProblem, device: torch.device | str = "cpu") -> StepInputs:
    """Random k-space, birdcage maps and a random target for ``problem`` on ``device``.

    Values do not change memory; on ``"meta"`` nothing is allocated. The trajectory is the
    golden-means 3D radial one of :func:`blockrecon.physics.simulate_radial`.
    """
    device = torch.device(device)
    held = problem.held_out_spokes
    spokes = (problem.n_spokes - held, held)
    if device.type == "meta":
        maps = torch.empty((problem.coils, *problem.shape), dtype=torch.complex64, device=device)
        ops = [
            _MetaSense(
                maps, torch.empty((n, problem.n_readout, 3), device=device), problem.coil_batch
            )
            for n in spokes
        ]
        kspaces = [
            torch.empty((problem.coils, n, problem.n_readout), dtype=torch.complex64, device=device)
            for n in spokes
        ]
        target = torch.empty(problem.shape, dtype=torch.complex64, device=device)
    else:
        generator = torch.Generator().manual_seed(0)
        coord = radial_coord(problem.n_spokes, problem.n_readout, problem.shape).to(device)
        maps = birdcage_maps(problem.coils, problem.shape).to(device)
        ops = [
            Sense(maps, part, backend=problem.backend, coil_batch=problem.coil_batch)
            for part in coord.split(spokes)
        ]
        kspace = torch.randn(
            (problem.coils, problem.n_spokes, problem.n_readout),
            dtype=torch.complex64,
            generator=generator,
        ).to(device)
        kspaces = list(kspace.split(spokes, dim=1))
        target = torch.randn(problem.shape, dtype=torch.complex64, generator=generator).to(device)
    if not held:
        return StepInputs(kspaces[0], ops[0], target)
    return StepInputs(kspaces[0], ops[0], target, kspaces[1], ops[1])


def relative_error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||estimate - target|| / ||target||`` without a data-dependent check (runs on meta)."""
    return (estimate - target).norm() / target.norm()


def _kspace_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The normalized L1+L2 k-space loss of self-supervised training, without a
    data-dependent check (runs on meta)."""
    residual = estimate - target
    return relative_error(estimate, target) + residual.abs().sum() / target.abs().sum()


def training_step(model: nn.Module, inputs: StepInputs) -> None:
    """Forward, loss and backward; gradients replace the previous ones. Supervised: relative L2
    against the target; self-supervised: the k-space loss of the held-out readouts."""
    model.zero_grad(set_to_none=True)
    image = model(inputs.kspace, inputs.op)
    if inputs.heldout_op is None:
        relative_error(image, inputs.target).backward()
    else:
        _kspace_loss(inputs.heldout_op(image), inputs.heldout_kspace).backward()


def patch_activation_bytes(problem: StepProblem, patch: int) -> int:
    """Peak bytes of one patch's forward and backward through the regularizer (meta): the
    regularizer's share of a block-wise step, the same at every volume size."""
    problem.check_patch(patch)
    net = build_model(problem, patch).regularizers[0].net
    return estimate_full_backprop_bytes(net, (1, 2) + (net.input_size(patch),) * 3)


#: Patches of the block-wise regularizer that an estimate runs. Every patch makes the same
#: allocations (its crop, activations and cores; in backward its share of the volume gradient,
#: summed into the shares before it), the first one (a corner) with the most padding, so the
#: peak over any number of patches is reached by the third.
ESTIMATE_PATCHES = 3


class _FirstPatches(BlockwiseRegularizer):
    """Block-wise regularizer that runs only the first :data:`ESTIMATE_PATCHES` patches of its
    plan (the rest of the output stays zero): the memory of all of them, in constant time."""

    def plan(self, volume_shape: Sequence[int]) -> PatchPlan:
        plan = super().plan(volume_shape)
        return dataclasses.replace(plan, patches=plan.patches[:ESTIMATE_PATCHES])


def _first_patches_only(model: UnrolledNet) -> UnrolledNet:
    """``model`` with each block-wise regularizer replaced by :class:`_FirstPatches`."""
    for i, reg in enumerate(model.regularizers):
        if isinstance(reg, BlockwiseRegularizer):
            model.regularizers[i] = _FirstPatches(
                reg.net,
                reg.patch_size,
                halo=reg.halo,
                checkpoint=reg.checkpoint,
                patch_batch=reg.patch_batch,
                padding=reg.padding,
            )
    return model


def estimate_step_bytes(problem: StepProblem, patch: int | None) -> int:
    """Peak bytes one training step adds on top of :func:`data_bytes`, counted on meta
    (the larger of the graph's peak and :func:`nufft_workspace_bytes`); the time does not grow
    with the number of patches."""
    model = _first_patches_only(build_model(problem, patch).to("meta"))
    inputs = build_inputs(problem, "meta")
    graph = saved_bytes(lambda: training_step(model, inputs))
    return max(graph, nufft_workspace_bytes(problem))


_PREPARED: dict[tuple, tuple[nn.Module, StepInputs]] = {}


def _prepared(problem: StepProblem, patch: int | None, device: str) -> tuple:
    """Model and inputs built once per process (the warm-up and the measured step share them)."""
    key = (problem, patch, device)
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = (build_model(problem, patch).to(device), build_inputs(problem, device))
    return _PREPARED[key]


def _measured_cpu_step(problem: StepProblem, patch: int | None, result_path: str) -> None:
    """One step on CPU under :func:`saved_bytes`; writes its count and wall time to a file."""
    model, inputs = _prepared(problem, patch, "cpu")
    start = time.perf_counter()
    count = saved_bytes(lambda: training_step(model, inputs))
    seconds = time.perf_counter() - start
    with open(result_path, "w") as out:
        json.dump({"saved_bytes": count, "seconds": seconds}, out)


def _check_device(device: str) -> None:
    """ValueError unless ``device`` is ``"cpu"``, or ``"cuda"`` with CUDA available."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but CUDA is not available")


def available_bytes(device: str) -> int:
    """Memory free for a new step: available memory on CPU, free CUDA memory on a GPU."""
    _check_device(device)
    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    return available_memory_bytes()


def measure_step(problem: StepProblem, patch: int | None, device: str = "cpu") -> dict:
    """Measure one training step after a warm-up step.

    CPU: a fresh process (see :func:`blockrecon.memory.peak_rss`); returns ``saved_bytes``
    (peak live tensor bytes), ``rss_bytes`` (resident high-water mark above the level after the
    warm-up, data included in that level) and ``seconds`` of the measured step. CUDA: in this
    process, ``cuda_bytes`` (``max_memory_allocated`` above the data) and ``seconds``.
    """
    problem.check_patch(patch)
    _check_device(device)
    if device == "cuda":
        model, inputs = _prepared(problem, patch, "cuda")
        training_step(model, inputs)
        start = time.perf_counter()
        peak = cuda_peak_bytes(lambda: training_step(model, inputs))
        return {"cuda_bytes": peak, "seconds": time.perf_counter() - start}
    with tempfile.TemporaryDirectory() as folder:
        result_path = os.path.join(folder, "step.json")
        rss = peak_rss(_measured_cpu_step, problem, patch, result_path)
        with open(result_path) as result:
            measured = json.load(result)
    return {**measured, "rss_bytes": rss.increase}


def fits(problem: StepProblem, step_estimate: int, device: str) -> bool:
    """Whether data plus ``step_estimate`` (times :data:`FIT_MARGIN`) fit the free memory."""
    need = sum(data_bytes(problem).values()) + step_estimate
    return FIT_MARGIN * need < available_bytes(device)


def _check_measurable(problem: StepProblem, step_estimate: int, device: str) -> None:
    """ValueError unless data plus ``step_estimate`` fit the free memory of ``device``."""
    shape = "x".join(map(str, problem.shape))
    check_memory(
        sum(data_bytes(problem).values()) + step_estimate,
        f"measuring a training step at {shape} on {device}",
        available_bytes(device),
    )


def problem_dict(problem: StepProblem) -> dict:
    """``problem`` as a JSON-able dict with the derived sizes."""
    return {
        **asdict(problem),
        "shape": list(problem.shape),
        "n_spokes": problem.n_spokes,
        "n_readout": problem.n_readout,
        "parameters": parameter_count(problem),
    }


def memory_table(
    problem: StepProblem,
    patches: Sequence[int],
    estimate_only: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Step memory for each patch size and for full backpropagation.

    Every row has the meta ``estimate_bytes`` (block-wise rows also the regularizer's share,
    ``patch_activation_bytes``); unless ``estimate_only``, the block-wise rows
    are measured on ``device`` (:func:`measure_step`) and the full-backprop row too when its
    estimate fits the free memory (``measured`` says whether it was).

    Raises:
        ValueError: bad arguments, or a measured run whose data and largest block-wise step
            would not fit in the free memory (refused before anything is allocated).

    Returns:
        JSON-able dict: ``problem``, ``device``, ``data_bytes`` (by part), ``rows`` (one per
        patch, ascending) and ``full``.
    """
    _check_device(device)
    if not patches:
        raise ValueError("give at least one patch size")
    for patch in patches:
        problem.check_patch(patch)
    configs: list[int | None] = sorted(set(patches)) + [None]
    rows = []
    for patch in progress_bar(configs, "bench memory", progress):
        row: dict = {"patch": patch, "estimate_bytes": estimate_step_bytes(problem, patch)}
        if patch is not None:
            row["patch_activation_bytes"] = patch_activation_bytes(problem, patch)
        rows.append(row)
    if not estimate_only:
        _check_measurable(problem, max(row["estimate_bytes"] for row in rows[:-1]), device)
    for row in progress_bar(rows, "bench memory (measured)", progress and not estimate_only):
        measure = not estimate_only and (
            row["patch"] is not None or fits(problem, row["estimate_bytes"], device)
        )
        if measure:
            row.update(measure_step(problem, row["patch"], device))
        row["measured"] = measure
    return {
        "problem": problem_dict(problem),
        "device": device,
        "data_bytes": data_bytes(problem),
        "rows": rows[:-1],
        "full": rows[-1],
    }
