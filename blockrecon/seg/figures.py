"""PNG figures of small U-Nets: first-layer filters and their feature maps on one image."""

from __future__ import annotations

from pathlib import Path

import torch

from blockrecon.atomic import atomic_write
from blockrecon.nn.unet import UNet
from blockrecon.seg.train import check_images, normalize_images


def save_png(fig, path: str | Path) -> Path:
    """Write a Matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(
            path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        )
    finally:
        plt.close(fig)


@torch.inference_mode()
def plot_first_layer(model: UNet, image: torch.Tensor, path: str | Path) -> Path:
    """Filters of the first convolution and the first block's feature maps on ``image``.

    Args:
        model: a 2D U-Net with at least two levels.
        image: float (1, 1, H, W), H and W multiples of ``model.stride``.
        path: output PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_images(image)
    if model.dim != 2 or not len(model.encoders):
        raise ValueError("plot_first_layer needs a 2D U-Net with depth >= 2")
    model.eval()
    block = model.encoders[0]
    weights = block[0].weight[:, 0].numpy()
    features = block(normalize_images(image[:1]))[0].numpy()
    n = max(weights.shape[0], features.shape[0])
    fig, axes = plt.subplots(3, n + 1, figsize=(1.6 * (n + 1), 5.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(image[0, 0].numpy(), cmap="gray")
    axes[0, 0].set_title("input", fontsize=8)
    for i, w in enumerate(weights):
        axes[1, i + 1].imshow(w, cmap="RdBu_r", vmin=-abs(w).max(), vmax=abs(w).max())
        axes[1, i + 1].set_title(f"filter {i}", fontsize=7)
    for i, f in enumerate(features):
        axes[2, i + 1].imshow(f, cmap="magma")
        axes[2, i + 1].set_title(f"map {i}", fontsize=7)
    axes[1, 0].text(0.5, 0.5, "conv 1\n3x3", ha="center", va="center")
    axes[2, 0].text(0.5, 0.5, "block 1\noutput", ha="center", va="center")
    return save_png(fig, path)
