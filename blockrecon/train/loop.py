"""The training loop: block-wise unrolled networks, checkpoint/resume, signals, DDP, metrics.

:func:`fit` trains an :class:`~blockrecon.unrolled.UnrolledNet` built from a configuration
(:func:`blockrecon.models.build_unrolled`) and writes into a run folder:

``checkpoint.pt``
    the training state (:mod:`blockrecon.train.checkpoint`), written atomically after every
    epoch and when SIGINT or SIGTERM arrives (the handler only sets a flag; the loop saves
    after the batch under way and returns). A process killed outright loses at most the
    epoch under way.
``model.pt``
    the network for reconstruction (:func:`blockrecon.models.save_model`), every epoch.
``metrics.jsonl``
    one JSON object per completed epoch: ``epoch``, ``train_loss``, ``val_loss`` (when there is
    validation data), ``val_psnr_db`` (validation data with reference images, reconstructed
    from all their samples), ``lr``, ``batches``, ``seconds``, and for data kept in a
    :class:`~blockrecon.train.cache.PairCache` ``data_bytes_kept`` (bytes of built pairs in
    memory) and ``data_builds`` (pairs built so far, rebuilds included, in this process);
    rewritten atomically from the checkpoint's history, so it always matches the checkpoint.

Exact resume: the data order of an epoch is a function of the seed and the epoch
(``DistributedSampler.set_epoch``), and the checkpoint stores the optimizer state, the torch,
NumPy and Python random states and the position inside the epoch, so on CPU a resumed run
reproduces the losses of an uninterrupted one bit for bit.

Distributed: under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) every process trains on its shard
of each global batch through ``DistributedDataParallel``; only rank 0 evaluates and writes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from blockrecon.atomic import atomic_write
from blockrecon.checks import check_positive, check_positive_int
from blockrecon.inference import DataContract, zero_where_unsensed
from blockrecon.models import build_unrolled, resolve_config, save_model
from blockrecon.progress import progress_bar
from blockrecon.recon import psnr
from blockrecon.torch_file import check_same
from blockrecon.train.cache import PairCache
from blockrecon.train.checkpoint import (
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from blockrecon.train.data import pair_to
from blockrecon.train.distributed import (
    DistributedContext,
    any_rank,
    mean_over_ranks,
    setup_distributed,
    teardown_distributed,
    training_device,
)
from blockrecon.train.objective import Objective, Supervised
from blockrecon.train.step import accumulate_gradients, evaluate

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
METRICS_NAME = "metrics.jsonl"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes:
        history: one metrics dict per completed epoch (all of the run, resumed ones included).
        stopped_by: the signal number that stopped training early, or ``None``.
        run_dir: the run folder.
    """

    history: list[dict] = field(default_factory=list)
    stopped_by: int | None = None
    run_dir: Path | None = None


@contextmanager
def stop_requests() -> Iterator[dict[str, int | None]]:
    """Catch SIGINT/SIGTERM while training: the handler records the signal in the yielded dict
    (``{"signal": signum}``) and returns; the previous handlers come back on exit. Outside the
    main thread no handler is installed."""
    request: dict[str, int | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame) -> None:
        request["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def seed_everything(seed: int) -> None:
    """Seed torch, NumPy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - libraries draw from the global generator
    random.seed(seed)


def _batches(sampler: DistributedSampler, epoch: int, batch_size: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _validate(
    model: torch.nn.Module,
    val_data: Dataset,
    val_view: Dataset,
    device: torch.device,
    objective: Objective,
) -> dict[str, float]:
    """``val_loss``: the objective on ``val_view`` (the objective's view of ``val_data``);
    ``val_psnr_db``: the mean PSNR of ``val_data``'s pairs with a target, reconstructed from
    all their samples as ``recon`` does (absent when none has a target). One pair on the
    device at a time."""
    losses = [
        evaluate(model, [pair_to(val_view[i], device)], objective) for i in range(len(val_view))
    ]
    record = {"val_loss": sum(losses) / len(losses)}
    scores = []
    for i in range(len(val_data)):
        pair = val_data[i]
        if pair.target is not None:
            pair = pair_to(pair, device)
            scores.append(psnr(_reconstruct(model, pair), pair.target))
    if scores:
        record["val_psnr_db"] = sum(scores) / len(scores)
    return record


def _reconstruct(model: torch.nn.Module, pair) -> torch.Tensor:
    """The network's image of a pair, zero where no coil senses (as at reconstruction)."""
    with torch.no_grad():
        return zero_where_unsensed(model(pair.kspace, pair.op), pair.op.maps)


def _write_metrics(path: Path, history: list[dict]) -> None:
    text = "".join(json.dumps(record) + "\n" for record in history)
    atomic_write(path, lambda tmp: tmp.write_text(text))


class _Run:
    """The state of one training run on one process (see :func:`fit`)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        run_dir: Path,
        settings: dict,
        context: DistributedContext,
        device: torch.device,
        resume: bool,
    ) -> None:
        self.run_dir, self.settings, self.context, self.device = run_dir, settings, context, device
        self.config = resolve_config(config)
        seed_everything(settings["seed"])
        self.model = build_unrolled(self.config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings["lr"])
        self.epoch, self.step, self.epoch_loss_sum = 0, 0, 0.0
        self.history: list[dict] = []
        self._rng: dict | None = None
        checkpoint = run_dir / CHECKPOINT_NAME
        if resume:
            self._resume(checkpoint)
        elif checkpoint.exists():
            raise ValueError(
                f"{run_dir} already holds a training run ({CHECKPOINT_NAME}); "
                "pass --resume to continue it or choose another output folder"
            )
        self.net = DistributedDataParallel(self.model) if context.enabled else self.model

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_same(state["config"], self.config, "architecture", path)
        check_same(
            state["settings"],
            {k: v for k, v in self.settings.items() if k != "epochs"},
            "training settings",
            path,
        )
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.epoch_loss_sum, self.history = state["epoch_loss_sum"], list(state["history"])
        self._rng = state["rng"]

    def restore_rng(self) -> None:
        """Set the random states of a resumed checkpoint (after everything that draws)."""
        if self._rng is not None:
            restore_rng_states(self._rng)

    def save(self) -> None:
        """Checkpoint (rank 0 only), then the metrics log in step with it."""
        if not self.context.is_main:
            return
        save_checkpoint(
            self.run_dir / CHECKPOINT_NAME,
            model=self.model,
            config=self.config,
            optimizer=self.optimizer,
            epoch=self.epoch,
            step=self.step,
            epoch_loss_sum=self.epoch_loss_sum,
            history=self.history,
            settings={k: v for k, v in self.settings.items() if k != "epochs"},
        )
        _write_metrics(self.run_dir / METRICS_NAME, self.history)

    def save_model(self) -> None:
        if self.context.is_main:
            contract = DataContract(
                normalized=True, density_weights=bool(self.settings.get("density_weights"))
            )
            extra = {
                "epoch": self.epoch,
                **contract.to_extra(),
                "training": self.settings,
                "metrics": self.history[-1],
            }
            save_model(self.run_dir / MODEL_NAME, self.model, self.config, extra)


def fit(
    config: Mapping[str, Any],
    train_data: Dataset,
    run_dir: str | os.PathLike[str],
    *,
    val_data: Dataset | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 1,
    seed: int = 0,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    objective: Objective | None = None,
    data_description: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train an unrolled network with block-wise learning, checkpointing every epoch.

    Args:
        config: architecture (:mod:`blockrecon.models.config`); ``patch_size`` sets the
            block-wise training patch.
        train_data: dataset of normalized :class:`~blockrecon.train.data.TrainingPair`
            (e.g. :class:`~blockrecon.train.SimulatedRadialPairs` with ``normalize=True``,
            :class:`~blockrecon.train.data.AcquisitionFiles`). When its operators carry
            density weights, the model's metadata says so, and
            :func:`~blockrecon.inference.reconstruct_with_model` weighs its data alike.
        run_dir: output folder (created); see the module docstring for its files.
        val_data: pairs evaluated after every epoch (``val_loss``, ``val_psnr_db``).
        epochs: total epochs of the run (a resumed run continues up to it).
        lr: Adam learning rate.
        batch_size: pairs per optimizer step on each process (gradients accumulated).
        seed: seeds the weights, the data order and every random generator.
        resume: continue the run saved in ``run_dir`` (settings must match).
        device: ``"cpu"`` or ``"cuda"``.
        progress: progress bar (rank 0; :func:`blockrecon.progress.progress_bar`).
        objective: what training minimises (:mod:`blockrecon.train.objective`): default
            :class:`~blockrecon.train.objective.Supervised` (relative L2 against each pair's
            target); :class:`~blockrecon.train.objective.SelfSupervised` trains on k-space
            splits of pairs that need no target (its settings are stored and compared on
            resume).
        data_description: JSON-able description of the data, stored and compared on resume.

    Returns:
        :class:`FitResult`; ``stopped_by`` is set when SIGINT/SIGTERM stopped the run (after
        saving a checkpoint).

    Raises:
        ValueError: bad settings, an existing run without ``resume``, or a checkpoint whose
            architecture or settings differ from the requested ones.
        FileNotFoundError: ``resume`` without a checkpoint.
    """
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive(lr, "lr")
    if len(train_data) == 0:
        raise ValueError("the training data are empty")
    if val_data is not None and len(val_data) == 0:
        val_data = None
    objective = objective or Supervised()
    settings = {
        "epochs": epochs,
        "lr": float(lr),
        "batch_size": batch_size,
        "seed": seed,
        "data": dict(data_description or {}),
    }
    if train_data[0].op.weights is not None:
        settings["density_weights"] = True
    if objective.describe():  # absent for supervised runs, so that older runs resume
        settings["objective"] = objective.describe()
    context = setup_distributed(device)
    try:
        return _fit(
            config,
            train_data,
            Path(run_dir),
            val_data,
            objective,
            context,
            progress,
            {**settings, "world_size": context.world_size},
            resume,
            training_device(device, context),
        )
    finally:
        teardown_distributed(context)


def _fit(
    config,
    train_data,
    run_dir: Path,
    val_data,
    objective: Objective,
    context: DistributedContext,
    progress: bool,
    settings: dict,
    resume: bool,
    device: torch.device,
) -> FitResult:
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if context.enabled:
        dist.barrier()
    run = _Run(config, run_dir, settings, context, device, resume)
    train_view = objective.data(train_data, settings["seed"])
    val_view = None if val_data is None else objective.data(val_data, settings["seed"], True)
    sampler = DistributedSampler(
        train_view,
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=settings["seed"],
    )
    result = FitResult(run_dir=run_dir)
    run.restore_rng()
    with stop_requests() as request:
        while run.epoch < settings["epochs"]:
            started = time.perf_counter()
            batches = _batches(sampler, run.epoch, settings["batch_size"])
            bar = progress_bar(
                None,
                f"epoch {run.epoch + 1}",
                progress and context.is_main,
                total=len(batches),
                initial=run.step,
            )
            with bar:
                while run.step < len(batches):
                    pairs = [pair_to(train_view[i], device) for i in batches[run.step]]
                    run.net.train()
                    run.optimizer.zero_grad(set_to_none=True)
                    loss = mean_over_ranks(accumulate_gradients(run.net, pairs, objective), context)
                    run.optimizer.step()
                    run.step += 1
                    run.epoch_loss_sum += loss
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.4f}")
                    if any_rank(request["signal"] is not None, context):
                        run.save()
                        result.stopped_by = request["signal"] or signal.SIGTERM
                        result.history = run.history
                        return result
            record = {"epoch": run.epoch + 1, "train_loss": run.epoch_loss_sum / len(batches)}
            if val_data is not None and context.is_main:
                record.update(_validate(run.model, val_data, val_view, device, objective))
            record.update(
                lr=settings["lr"], batches=len(batches), seconds=time.perf_counter() - started
            )
            cache = getattr(train_view, "cache", None)
            if isinstance(cache, PairCache):
                record.update(data_bytes_kept=cache.held_bytes, data_builds=cache.builds)
            run.history.append(record)
            run.epoch, run.step, run.epoch_loss_sum = run.epoch + 1, 0, 0.0
            run.save()
            run.save_model()
            if context.enabled:
                dist.barrier()
            if context.is_main:
                print(json.dumps(record), file=sys.stderr)
    result.history = run.history
    return result
