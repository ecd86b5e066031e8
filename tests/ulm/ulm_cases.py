"""The tiny ULM network configuration shared by the training, checkpoint and evaluation tests,
and a simulated interruption of training."""

import blockrecon.ulm.training as training
from blockrecon.ulm.nets import UlmNetConfig

CONFIG = UlmNetConfig(channels=(4, 4, 4), fine_channels=4)


def interrupt_training_at(monkeypatch, call: int) -> None:
    """Make the ``call``-th training step raise KeyboardInterrupt (as Ctrl-C would)."""
    calls = []
    loss = training.training_loss

    def interrupted(*args, **kwargs):
        calls.append(None)
        if len(calls) == call:
            raise KeyboardInterrupt
        return loss(*args, **kwargs)

    monkeypatch.setattr(training, "training_loss", interrupted)
