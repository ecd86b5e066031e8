"""Checkpointed patch-wise application of a network (overlap-tile, exact with valid nets).

The volume is cut into patches of ``core + 2 * halo`` voxels of the volume padded once by the
halo (``reflect`` or ``zeros``), each patch goes through the network under
``torch.utils.checkpoint`` (``use_reentrant=False``), and only its core is written into a
freshly allocated output: no blending. Backward then recomputes one patch (or one group of
``patch_batch`` patches) at a time, so activation memory follows the patch size, not the volume.

Volume-sized memory is one output: the padded volume is never formed (each patch is cut from
the input and only border patches are padded, :func:`crop_padded`), a complex input is seen as
two channels through a view, and a complex output is written in place into an interleaved
buffer that becomes the complex result without a copy. The checkpoints keep only a view of the
input, which the caller holds anyway.

Exactness. For a valid-convolution network (``margin > 0``) every patch is an exact crop of the
network applied to the once-padded full volume (:func:`apply_full`): outputs and all gradients
agree to float rounding, border patches included. For a padded network (``margin == 0``) with
``halo >= (receptive_field - 1) // 2`` the result is exact in the interior but only approximate
within a receptive-field radius of the volume border, because the full-volume network zero-pads
every layer there while a patch sees real activations in its halo.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from blockrecon.blockwise.contract import TilingContract, tiling_contract
from blockrecon.blockwise.plan import Patch, PatchPlan, plan_patches, volume_padding
from blockrecon.checks import check_positive_int
from blockrecon.nn.complex import channels_to_complex, complex_to_channels
from blockrecon.progress import progress_bar

PADDING_MODES = {"reflect": "reflect", "zeros": "constant"}


def _spatial_dims(net: nn.Module, patch_size: int | Sequence[int] | None) -> int:
    if patch_size is not None and not isinstance(patch_size, int):
        return len(tuple(patch_size))
    return int(getattr(net, "dim", 3))


def _as_channels(x: torch.Tensor, ndim: int) -> tuple[torch.Tensor, bool]:
    """Real ``(N, C, *spatial)`` as is, complex ``(N, *spatial)`` as ``(N, 2, *spatial)``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        if x.ndim != ndim + 1:
            raise ValueError(
                f"complex input must be (N, *spatial) with {ndim} spatial "
                f"dimensions, got shape {tuple(x.shape)}"
            )
        return complex_to_channels(x), True
    if x.ndim != ndim + 2:
        raise ValueError(
            f"real input must be (N, C, *spatial) with {ndim} spatial dimensions, "
            f"got shape {tuple(x.shape)}"
        )
    return x, False


def check_padding(shape: Sequence[int], pad: Sequence[tuple[int, int]], padding: str) -> None:
    """ValueError unless a volume of spatial size ``shape`` can be padded by ``pad``."""
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {sorted(PADDING_MODES)}, got {padding!r}")
    if padding == "reflect":
        for (before, after), size in zip(pad, shape, strict=True):
            if max(before, after) >= size:
                raise ValueError(
                    f"reflect padding of {max(before, after)} voxels needs a volume "
                    f"larger than that, got size {size}; use padding='zeros'"
                )


def _pad(x: torch.Tensor, pad: Sequence[tuple[int, int]], padding: str) -> torch.Tensor:
    flat = [p for before_after in reversed(pad) for p in before_after]
    if not any(flat):
        return x
    return F.pad(x, flat, mode=PADDING_MODES[padding])


def pad_volume(x: torch.Tensor, pad: Sequence[tuple[int, int]], padding: str) -> torch.Tensor:
    """Pad the spatial dims of ``(N, C, *spatial)`` by ``pad[d] = (before, after)``."""
    check_padding(x.shape[2:], pad, padding)
    return _pad(x, pad, padding)


def crop_padded(
    x: torch.Tensor, region: Sequence[slice], pad: Sequence[tuple[int, int]], padding: str
) -> torch.Tensor:
    """``pad_volume(x, pad, padding)[..., *region]`` without padding the whole volume.

    ``region`` gives slices of the padded volume. The part inside ``x`` is cut out and padded
    only where the region extends past the volume. Reflection about the volume's edge equals
    reflection about the crop's edge there, because such a crop starts (or ends) at that edge
    and is longer than its padding whenever :func:`check_padding` accepts ``pad`` (the caller
    checks once per volume; nothing is checked per patch).
    """
    inside, amounts = [], []
    for r, (before, _), size in zip(region, pad, x.shape[2:], strict=True):
        start, stop = r.start - before, r.stop - before
        low, high = max(start, 0), min(stop, size)
        inside.append(slice(low, high))
        amounts.append((low - start, stop - high))
    return _pad(x[(Ellipsis, *inside)], amounts, padding)


def _finish(y: torch.Tensor, was_complex: bool) -> torch.Tensor:
    return channels_to_complex(y) if was_complex else y


def apply_full(net: nn.Module, x: torch.Tensor, padding: str = "reflect") -> torch.Tensor:
    """Full-volume reference: ``net`` on the volume padded once by its margin, cropped.

    The volume is padded by ``net.margin`` on both sides (plus, at the end, up to a stride
    multiple), the network runs on the whole padded volume and the output is cropped to the
    volume. This is what :class:`BlockwiseRegularizer` reproduces patch by patch.

    Args:
        net: a network declaring the tiling contract.
        x: real ``(N, C, *spatial)`` or complex ``(N, *spatial)``.
        padding: ``"reflect"`` or ``"zeros"``.
    """
    contract = tiling_contract(net)
    xr, was_complex = _as_channels(x, _spatial_dims(net, None))
    shape = tuple(xr.shape[2:])
    pad = volume_padding(shape, (contract.margin,) * len(shape), contract.stride)
    y = net(pad_volume(xr, pad, padding))
    crop = (Ellipsis,) + tuple(slice(0, s) for s in shape)
    return _finish(y[crop], was_complex)


class BlockwiseRegularizer(nn.Module):
    """Apply ``net`` to a volume patch by patch, each patch under gradient checkpointing.

    Args:
        net: a network declaring the tiling contract (``margin``, ``receptive_field``,
            ``stride``, ``input_size``), e.g. :class:`blockrecon.nn.ResNet3d`.
        patch_size: core voxels written per patch (int, or one per spatial dimension); a
            multiple of ``net.stride`` and at most the volume.
        halo: voxels of context on each side of a core; ``"auto"`` takes the net's margin (valid
            nets) or receptive-field radius (padded nets). For valid nets it must be at least the
            margin, exceeding it by a multiple of the stride.
        checkpoint: run each patch group under ``torch.utils.checkpoint(use_reentrant=False)``.
        patch_batch: patches stacked along the batch dimension per network call.
        padding: how the volume is padded once: ``"reflect"`` or ``"zeros"``.
        progress: show a progress bar over patch groups.

    Input real ``(N, C, *spatial)`` or complex ``(N, *spatial)`` (seen by the network as 2
    channels); output the same layout with the network's output channels.
    """

    def __init__(
        self,
        net: nn.Module,
        patch_size: int | Sequence[int],
        halo: int | Sequence[int] | str = "auto",
        checkpoint: bool = True,
        patch_batch: int = 1,
        padding: str = "reflect",
        progress: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.contract: TilingContract = tiling_contract(net)
        self.ndim = _spatial_dims(net, patch_size)
        self.patch_size = self._check_patch_size(patch_size)
        self.halo = self._check_halo(halo)
        check_positive_int(patch_batch, "patch_batch")
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {sorted(PADDING_MODES)}, got {padding!r}")
        self.checkpoint = checkpoint
        self.patch_batch = patch_batch
        self.padding = padding
        self.progress = progress

    def _check_patch_size(self, patch_size: int | Sequence[int]) -> tuple[int, ...]:
        cores = (patch_size,) * self.ndim if isinstance(patch_size, int) else tuple(patch_size)
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in cores):
            raise ValueError(f"patch_size must be positive integers, got {patch_size!r}")
        if any(c % self.contract.stride for c in cores):
            raise ValueError(
                f"patch_size {cores} is not a multiple of the network stride {self.contract.stride}"
            )
        return cores

    def _check_halo(self, halo: int | Sequence[int] | str) -> tuple[int, ...]:
        c = self.contract
        if halo == "auto":
            return (c.default_halo(),) * self.ndim
        if isinstance(halo, str):
            raise ValueError(f"halo must be 'auto' or voxel counts, got {halo!r}")
        halos = (halo,) * self.ndim if isinstance(halo, int) else tuple(halo)
        if len(halos) != self.ndim:
            raise ValueError(f"halo has {len(halos)} entries for {self.ndim} spatial dimensions")
        for h in halos:
            if h < c.margin:
                raise ValueError(f"halo {h} is smaller than the network margin {c.margin}")
            if c.exact and (h - c.margin) % c.stride:
                raise ValueError(
                    f"halo {h} must exceed the margin {c.margin} by a multiple of "
                    f"the network stride {c.stride}"
                )
        return halos

    def plan(self, volume_shape: Sequence[int]) -> PatchPlan:
        """The patch plan for a volume of spatial size ``volume_shape``."""
        if len(volume_shape) != self.ndim:
            raise ValueError(
                f"volume has {len(volume_shape)} spatial dimensions, the "
                f"regularizer works on {self.ndim}"
            )
        plan = plan_patches(volume_shape, self.patch_size, self.halo, self.contract.stride)
        for core, h, size in zip(plan.patch_size, plan.halo, plan.input_size, strict=True):
            expected = self.contract.input_size(core + 2 * (h - self.contract.margin))
            if expected != size:
                raise ValueError(
                    f"core {core} with halo {h} gives a {size}-voxel patch, which "
                    f"is not a valid input size of {type(self.net).__name__} "
                    f"(it expects {expected})"
                )
        return plan

    def _run_group(
        self, volume: torch.Tensor, group: Sequence[Patch], plan: PatchPlan
    ) -> tuple[torch.Tensor, ...]:
        """Net outputs of a group of patches, cut to their ``keep`` parts."""
        n, shift = volume.shape[0], [h - self.contract.margin for h in self.halo]
        expected = tuple(c + 2 * s for c, s in zip(plan.patch_size, shift, strict=True))
        pad = plan.pad

        def run(volume: torch.Tensor) -> tuple[torch.Tensor, ...]:
            batch = torch.cat(
                [crop_padded(volume, p.input, pad, self.padding) for p in group], dim=0
            )
            y = self.net(batch)
            if tuple(y.shape[2:]) != expected:
                raise ValueError(
                    f"{type(self.net).__name__} returned spatial size {tuple(y.shape[2:])} for "
                    f"input {tuple(batch.shape[2:])}; its declared margin "
                    f"{self.contract.margin} implies {expected}"
                )
            return tuple(
                y[i * n : (i + 1) * n][
                    (
                        Ellipsis,
                        *(
                            slice(k.start + s, k.stop + s)
                            for k, s in zip(p.keep, shift, strict=True)
                        ),
                    )
                ]
                for i, p in enumerate(group)
            )

        if self.checkpoint and torch.is_grad_enabled():
            return torch_checkpoint(run, volume, use_reentrant=False)
        return run(volume)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xr, was_complex = _as_channels(x, self.ndim)
        plan = self.plan(tuple(xr.shape[2:]))
        check_padding(plan.volume_shape, plan.pad, self.padding)
        groups = [
            plan.patches[i : i + self.patch_batch] for i in range(0, len(plan), self.patch_batch)
        ]
        out = None
        for group in progress_bar(groups, "patches", self.progress):
            cores = self._run_group(xr, group, plan)
            for patch, core in zip(group, cores, strict=True):
                if out is None:
                    out = _OutputVolume(core, plan.volume_shape, was_complex)
                out.write(patch.output, core)
        return out.result()


class _OutputVolume:
    """The volume patches write into: ``(N, C, *spatial)``, or for a complex result an
    interleaved ``(N, *spatial, 2)`` buffer viewed as complex without a copy."""

    def __init__(self, like: torch.Tensor, shape: Sequence[int], complex_result: bool) -> None:
        n, channels = like.shape[:2]
        self.complex_result = complex_result
        if complex_result:
            if channels != 2:
                raise ValueError(
                    f"a complex input needs a network with 2 output channels, got {channels}"
                )
            self.buffer = like.new_zeros((n, *shape, 2))
        else:
            self.buffer = like.new_zeros((n, channels, *shape))

    def write(self, region: Sequence[slice], core: torch.Tensor) -> None:
        if self.complex_result:
            self.buffer[(slice(None), *region)] = core.movedim(1, -1)
        else:
            self.buffer[(Ellipsis, *region)] = core

    def result(self) -> torch.Tensor:
        return torch.view_as_complex(self.buffer) if self.complex_result else self.buffer
