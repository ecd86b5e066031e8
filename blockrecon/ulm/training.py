"""Training the ULM networks by deep supervision (multi-scale Dice), and their model files.

A model file has the layout of every blockrecon model file (:mod:`blockrecon.torch_file`):
``config`` holds the network kind (``"dense"`` or ``"sparse"``), its :class:`UlmNetConfig`
(``net``) and the input sparsifier (kind, value, learned-mask shape); ``state_dict`` the
network's weights (``net.*``) and the learned mask's (``mask.*``); ``extra`` the training
history, the decoding threshold, the split radius and the gated smoothing (``smoothing``: sigma,
threshold, density limit and merge radius, or null; files written before the merge radius
existed load with none).

Recipe: Adam with a cosine learning-rate decay to 0 on multi-scale Dice plus per-site
cross-entropy, class-balanced for a sparse network, whose heads prune at occupancy 0.5 (see
:mod:`blockrecon.ulm.dice`); a sparse network is trained with the target cells kept through
pruning (see :class:`SparseUlmNet`), so its fine stages learn from the first step instead of
waiting for the coarse heads to pass 0.5. Long runs write checkpoints and resume exactly
(:mod:`blockrecon.ulm.checkpoint`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blockrecon.checks import check_positive, check_positive_int
from blockrecon.progress import progress_bar
from blockrecon.torch_file import (
    FileKind,
    LoadedModel,
    ModelFile,
    check_same,
    damaged_file,
    model_file_from_payload,
    model_payload,
    read_model_file,
    save_model_file,
)
from blockrecon.ulm.blocks import TARGET_RADIUS, OccupancyTargets, UlmBlocks
from blockrecon.ulm.checkpoint import TrainingState, load_training_state, save_training_state
from blockrecon.ulm.decode import GatedSmoothing
from blockrecon.ulm.dice import multiscale_dice_loss
from blockrecon.ulm.learned_mask import InputSparsifier, LearnedMask
from blockrecon.ulm.nets import DenseUlmNet, SparseUlmNet, UlmNetConfig

NET_KINDS = ("dense", "sparse")


@dataclass
class UlmModel:
    """A ULM network with the input sparsifier it was trained with (None for dense), the
    occupancy above which its 8x map is decoded into bubbles (see
    :func:`blockrecon.ulm.evaluation.calibrate_threshold`) and the disc radius (lambda) at
    whose peaks merged bubbles are split (the training targets' radius; None: no split; see
    :func:`blockrecon.ulm.decode.decode_occupancy`), and the smoothing of the blocks with few
    bubbles (:class:`~blockrecon.ulm.decode.GatedSmoothing`; None: none)."""

    net: DenseUlmNet | SparseUlmNet
    sparsifier: InputSparsifier | None = None
    history: list[float] = field(default_factory=list)
    threshold: float = 0.5
    split_radius: float | None = TARGET_RADIUS
    smoothing: GatedSmoothing | None = None

    @property
    def kind(self) -> str:
        return self.net.mode

    def __call__(self, inputs: torch.Tensor, keep_keys: dict | None = None) -> dict:
        """Logits per scale of a batch of blocks (B, 2, T, *S) (see the networks);
        ``keep_keys`` (sparse only): sites pruning keeps, e.g. the target cells in training."""
        if self.sparsifier is None:
            return self.net(inputs)
        return self.net(self.sparsifier(inputs), keep_keys)


def build_model(
    kind: str, config: UlmNetConfig, sparsifier: InputSparsifier | None = None
) -> UlmModel:
    """A fresh dense or sparse model (sparse defaults to ``InputSparsifier()``: |x|^2 > 0.01)."""
    if kind not in NET_KINDS:
        raise ValueError(f"network kind must be one of {NET_KINDS}, got {kind!r}")
    if kind == "dense":
        return UlmModel(DenseUlmNet(config))
    return UlmModel(SparseUlmNet(config), sparsifier or InputSparsifier())


def training_loss(
    model: UlmModel,
    inputs: torch.Tensor,
    targets: OccupancyTargets,
    bce_weight: float = 1.0,
    class_balanced: bool | None = None,
    keep_margin: int = 0,
) -> tuple[torch.Tensor, dict]:
    """(loss, logits per scale) of one training step on a batch (B, 2, T, *S): multi-scale Dice
    plus ``bce_weight`` times the per-site cross-entropy (class-balanced if ``class_balanced``;
    default: for a sparse model, whose heads prune, not for a dense one); a sparse model keeps
    the (nested) target cells through pruning, and with ``keep_margin`` every cell within that
    many cells of one (:meth:`OccupancyTargets.dilated`), see :func:`train_ulm`."""
    keep = None
    if model.sparsifier is not None:
        keep = targets.dilated(keep_margin, [s for s in targets.keys if s != max(targets.keys)])
    if class_balanced is None:
        class_balanced = model.sparsifier is not None
    outputs = model(inputs, keep)
    loss = multiscale_dice_loss(
        outputs, targets, bce_weight=bce_weight, class_balanced=class_balanced
    )
    return loss, outputs


def _training_settings(
    model: UlmModel,
    blocks: UlmBlocks,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    bce_weight: float,
    class_balanced: bool | None,
    keep_margin: int,
) -> dict:
    """What a training run is started with, as plain data (compared when it is resumed): the
    arguments of :func:`train_ulm`, the network and sparsifier, and a fingerprint of the
    blocks (their shape and the sum of their magnitudes)."""
    sparsifier = model.sparsifier
    return {
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "bce_weight": bce_weight,
        "class_balanced": class_balanced,
        **({"keep_margin": keep_margin} if keep_margin else {}),
        "kind": model.kind,
        "config": model.net.config.to_dict(),
        "sparsifier": None if sparsifier is None else [sparsifier.kind, sparsifier.value],
        "blocks": list(blocks.inputs.shape),
        "blocks_magnitude_sum": float(blocks.inputs.abs().double().sum()),
    }


def train_ulm(
    model: UlmModel,
    blocks: UlmBlocks,
    steps: int,
    lr: float = 1e-2,
    batch_size: int = 4,
    seed: int = 0,
    bce_weight: float = 1.0,
    class_balanced: bool | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    keep_margin: int = 0,
) -> list[float]:
    """Adam on the multi-scale Dice loss over random batches of ``blocks``, learning rate ``lr``
    decaying to 0 along a cosine over the ``steps`` (loss: :func:`training_loss`); returns the
    losses of all ``steps`` (also appended to ``model.history``).

    Args:
        checkpoint: file written atomically every ``checkpoint_every`` steps and after the last
            (see :mod:`blockrecon.ulm.checkpoint`).
        resume: continue the run saved in ``checkpoint`` (same arguments, blocks and
            architecture; the weights, optimizer, schedule and batch draws are restored, so
            the result equals the uninterrupted run's).
        keep_margin: a sparse network keeps, through its pruning, the target cells and every
            cell within ``keep_margin`` cells of one (per scale and axis). With 0 the sites
            its fine stages see in training are the target cells' children: every one of them
            is near a bubble, so the fine heads learn that a site present is occupied and paint
            every site the coarse heads pass at inference. With 1 they also see the
            neighbouring empty cells and must tell them apart (measured in 3D:
            benchmarks/README.md, "The shipped ULM networks").

    Raises:
        ValueError: bad arguments, or a checkpoint whose settings differ from these.
    """
    check_positive_int(steps, "steps", allow_zero=True)
    check_positive_int(batch_size, "batch_size")
    check_positive(lr, "lr")
    check_positive_int(checkpoint_every, "checkpoint_every")
    check_positive_int(keep_margin, "keep_margin", allow_zero=True)
    if resume and checkpoint is None:
        raise ValueError("resume needs the checkpoint file to continue from")
    settings = (
        None
        if checkpoint is None
        else _training_settings(
            model, blocks, steps, lr, batch_size, seed, bce_weight, class_balanced, keep_margin
        )
    )
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    losses: list[float] = []
    if resume:
        state = load_training_state(checkpoint)
        check_same(state.settings, settings, "settings", checkpoint)
        _set_weights(model, model_file_from_payload(state.model, checkpoint, ULM_FILE))
        optimizer.load_state_dict(state.optimizer)
        schedule.load_state_dict(state.scheduler)
        generator.set_state(state.generator)
        losses = state.losses
    model.net.train()
    bar = progress_bar(
        range(len(losses), steps),
        f"train {model.kind}",
        progress,
        total=steps,
        initial=len(losses),
        leave=True,
    )
    for step in bar:
        items = torch.randint(blocks.inputs.shape[0], (batch_size,), generator=generator)
        # only the loss is kept: the outputs' site sets (with their maps: gigabytes on the 8x
        # grids of 3D blocks) go before the next step builds its own
        loss = training_loss(
            model,
            blocks.inputs[items],
            blocks.targets.select(items.tolist()),
            bce_weight,
            class_balanced,
            keep_margin,
        )[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        del loss
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            save_training_state(
                checkpoint,
                TrainingState(
                    model_payload(*_model_parts(model), ULM_FILE),
                    optimizer.state_dict(),
                    schedule.state_dict(),
                    generator.get_state(),
                    losses,
                    settings,
                ),
            )
    model.history.extend(losses)
    return losses


@torch.no_grad()
def predict(
    model: UlmModel, blocks: UlmBlocks, batch_size: int = 1, progress: bool = True
) -> list[dict]:
    """Logits per scale for every batch of ``batch_size`` consecutive blocks."""
    model.net.eval()
    outputs = []
    starts = range(0, blocks.inputs.shape[0], batch_size)
    for start in progress_bar(starts, f"predict {model.kind}", progress):
        outputs.append(model(blocks.inputs[start : start + batch_size]))
    return outputs


def _model_parts(model: UlmModel) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(state, config, extra)`` of ``model``'s file (see the module docstring)."""
    state = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    sparsifier = None
    if model.sparsifier is not None:
        s, mask = model.sparsifier, None
        if s.mask is not None:
            mask = {
                "spatial_dims": s.mask.spatial_dims,
                "channels": s.mask.block.spatial.out_channels,
            }
            state.update({f"mask.{k}": v for k, v in s.mask.state_dict().items()})
        sparsifier = {"kind": s.kind, "value": s.value, "mask": mask}
    config = {"kind": model.kind, "net": model.net.config.to_dict(), "sparsifier": sparsifier}
    extra = {
        "history": list(model.history),
        "threshold": model.threshold,
        "split_radius": model.split_radius,
        "smoothing": None if model.smoothing is None else model.smoothing.to_dict(),
    }
    return state, config, extra


def _upgrade_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """A ``blockrecon.ulm.model/1`` file's payload (flat: kind, config, state_dict, sparsifier
    with the mask's weights, history, threshold, split_radius) in the current layout."""
    sparsifier = payload["sparsifier"]
    mask = None if sparsifier is None else sparsifier["mask"]
    state = {f"net.{k}": v for k, v in payload["state_dict"].items()}
    if mask is not None:
        state.update({f"mask.{k}": v for k, v in mask["state_dict"].items()})
        mask = {"spatial_dims": mask["spatial_dims"], "channels": mask["channels"]}
    config = {
        "kind": payload["kind"],
        "net": payload["config"],
        "sparsifier": None if sparsifier is None else {**sparsifier, "mask": mask},
    }
    extra = {
        "history": payload["history"],
        "threshold": payload.get("threshold", 0.5),
        "split_radius": payload.get("split_radius", TARGET_RADIUS),
    }
    return {
        "format": ULM_FILE.format,
        "format_version": 1,
        "config": config,
        "state_dict": state,
        "extra": extra,
    }


#: ULM model files (``blockrecon.ulm.model/1`` files of the former flat layout read too).
ULM_FILE = FileKind(
    "blockrecon.ulm.model",
    1,
    "ULM model file",
    legacy_formats=("blockrecon.ulm.model/1",),
    upgrade=_upgrade_v1,
)


def _prefixed(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _set_weights(model: UlmModel, file: ModelFile) -> None:
    """Set ``model``'s weights (network, learned mask), history, threshold, split radius and
    smoothing (none in files written before it existed) from a file of the same
    architecture."""
    model.net.load_state_dict(_prefixed(file.state, "net."))
    if model.sparsifier is not None and model.sparsifier.mask is not None:
        model.sparsifier.mask.load_state_dict(_prefixed(file.state, "mask."))
    model.history[:] = file.extra["history"]
    model.threshold = float(file.extra["threshold"])
    model.split_radius = file.extra["split_radius"]
    smoothing = file.extra.get("smoothing")
    model.smoothing = None if smoothing is None else GatedSmoothing(**smoothing)


def _build(kind: str, net: dict[str, Any], sparsifier: dict[str, Any] | None) -> UlmModel:
    """A fresh model of a file's ``config`` (see the module docstring)."""
    input_sparsifier = None
    if sparsifier is not None:
        mask = sparsifier["mask"]
        input_sparsifier = InputSparsifier(
            sparsifier["kind"],
            sparsifier["value"],
            None if mask is None else LearnedMask(mask["spatial_dims"], mask["channels"]),
        )
    return build_model(kind, UlmNetConfig(**net), input_sparsifier)


def save_model(
    path: str | os.PathLike[str], model: UlmModel, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` atomically (:mod:`blockrecon.atomic`).

    Args:
        metadata: plain data stored with the model's own entries in the file's ``extra``
            (returned by :func:`load_model`), e.g. how it was trained and scored.

    Raises:
        FileNotFoundError: if the folder of ``path`` does not exist.
        ValueError: ``metadata`` names an entry the model itself stores.
    """
    state, config, extra = _model_parts(model)
    clash = sorted(set(metadata or {}) & set(extra))
    if clash:
        raise ValueError(f"metadata may not replace the model's own entries {clash}")
    return save_model_file(path, state, config, {**extra, **(metadata or {})}, ULM_FILE)


def file_metadata(loaded: LoadedModel) -> dict[str, Any]:
    """The entries of a loaded model file's ``extra`` that came from ``metadata`` in
    :func:`save_model` (not the model's own), to be passed on when the model is saved again."""
    own = _model_parts(loaded.model)[2]
    return {k: v for k, v in loaded.extra.items() if k not in own}


def load_model(path: str | os.PathLike[str], device: Any = None) -> LoadedModel:
    """Read a model written by :func:`save_model` (weights only: no code is unpickled):
    ``(model, config, extra)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a ULM model file, or a damaged one.
    """
    file = read_model_file(path, ULM_FILE)
    with damaged_file(path, ULM_FILE.name):
        model = _build(**file.config)
        _set_weights(model, file)
    model.net.to(device or "cpu")
    if model.sparsifier is not None and model.sparsifier.mask is not None:
        model.sparsifier.mask.to(device or "cpu")
    return LoadedModel(model, dict(file.config), dict(file.extra))
