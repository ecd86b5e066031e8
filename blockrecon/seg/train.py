"""Training and inference of 2D segmentation U-Nets (Adam, cross-entropy + soft Dice loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blockrecon.checks import check_positive_int
from blockrecon.nn.unet import UNet
from blockrecon.progress import progress_bar
from blockrecon.seg.data.synthetic import NUM_CLASSES
from blockrecon.seg.sparsity import filter_groups, shrink_filters


def build_model(
    base_width: int = 8, depth: int = 5, norm: str | None = "batch", num_classes: int = NUM_CLASSES
) -> UNet:
    """2D segmentation U-Net: 1 input channel, ``num_classes`` logits, padded convolutions.

    BatchNorm is the default here (faster, steadier training of narrow networks); the
    block-wise reconstruction networks use ``norm=None`` instead.
    """
    return UNet(
        dim=2,
        in_ch=1,
        out_ch=num_classes,
        base_width=base_width,
        depth=depth,
        valid=False,
        norm=norm,
    )


def check_images(
    images: torch.Tensor, labels: torch.Tensor | None = None, num_classes: int = NUM_CLASSES
) -> None:
    """Validate images float (N, 1, H, W), finite, and optional labels int64 (N, H, W)."""
    if images.dim() != 4 or images.shape[1] != 1 or not images.dtype.is_floating_point:
        raise ValueError(
            f"images must be float (N, 1, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    if labels is None:
        return
    if labels.shape != (images.shape[0], *images.shape[2:]) or labels.dtype != torch.int64:
        raise ValueError(
            f"labels must be int64 {(images.shape[0], *images.shape[2:])}, got "
            f"{labels.dtype} {tuple(labels.shape)}"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"label values must be in 0..{num_classes - 1}")


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """Scale each image so that its 99th intensity percentile is 1 (float32 (N, 1, H, W))."""
    flat = images.reshape(images.shape[0], -1).float()
    scale = torch.quantile(flat, 0.99, dim=1).clamp_min(1e-8)
    return images.float() / scale.view(-1, 1, 1, 1)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus (1 - mean soft Dice over the foreground classes)."""
    ce = F.cross_entropy(logits, labels)
    prob = logits.softmax(dim=1)[:, 1:]
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(prob.dtype)
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    dice = (2 * inter + 1) / (prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3)) + 1)
    return ce + 1 - dice.mean()


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """Random flips and transposition, the same for the whole batch."""
    flips = torch.rand(3, generator=gen) < 0.5
    if flips[0]:
        x, y = x.flip(-1), y.flip(-1)
    if flips[1]:
        x, y = x.flip(-2), y.flip(-2)
    if flips[2] and x.shape[-1] == x.shape[-2]:
        x, y = x.transpose(-1, -2), y.transpose(-1, -2)
    return x, y


def train_segmentation(
    model: UNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 3e-3,
    augment: bool = True,
    seed: int = 0,
    filter_sparsity: float = 0.0,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` in place with Adam; returns the mean loss of each epoch.

    Args:
        images: float32 (N, 1, H, W), any intensity scale (normalized here); H, W multiples of
            ``model.stride``.
        labels: int64 (N, H, W) in 0..model.out_ch-1.
        lr: Adam learning rate, decayed by cosine annealing to 5% over the run.
        filter_sparsity: group-lasso weight on whole filters, applied as a proximal step
            after each Adam step (threshold ``lr * filter_sparsity``). Filters the data do not
            need become exactly zero, so that structured pruning removes them without loss.
        progress: show a progress bar (:func:`blockrecon.progress.progress_bar`).
    """
    check_images(images, labels, model.out_ch)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    x_all = normalize_images(images)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(images) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.05 * lr)
    groups = filter_groups(model) if filter_sparsity > 0 else []
    history = []
    model.train()
    with progress_bar(None, "train", progress, total=steps, leave=True) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=gen)
            total = 0.0
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                x, y = x_all[idx], labels[idx]
                if augment:
                    x, y = _augment(x, y, gen)
                loss = segmentation_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if groups:
                    shrink_filters(groups, sched.get_last_lr()[0] * filter_sparsity)
                sched.step()
                total += loss.detach().item() * len(idx)
                bar.update()
                bar.set_postfix(loss=f"{total / (i + len(idx)):.3f}")
            history.append(total / len(images))
    model.eval()
    return history


@torch.inference_mode()
def predict(
    model: UNet, images: torch.Tensor, *, batch_size: int = 50, progress: bool = True
) -> torch.Tensor:
    """Label maps int64 (N, H, W) for images float (N, 1, H, W) of any in-plane size.

    Images are normalized, zero-padded to a multiple of ``model.stride`` and cropped back.
    """
    check_images(images)
    if model.margin:
        raise ValueError("predict expects a padded (valid=False) network")
    model.eval()
    h, w = images.shape[2:]
    s = model.stride
    pad = (0, -w % s, 0, -h % s)
    out = []
    for i in progress_bar(range(0, len(images), batch_size), "predict", progress):
        x = F.pad(normalize_images(images[i : i + batch_size]), pad)
        out.append(model(x)[..., :h, :w].argmax(dim=1))
    return torch.cat(out) if out else torch.empty(0, h, w, dtype=torch.int64)
