"""The tiny ULM network configuration shared by the training, checkpoint and evaluation tests."""

from blockrecon.ulm.nets import UlmNetConfig

CONFIG = UlmNetConfig(channels=(4, 4, 4), fine_channels=4)
