"""blockrecon.nn."""

from blockrecon.nn.complex import channels_to_complex, complex_to_channels
from blockrecon.nn.resnet import ResNet3d
from blockrecon.nn.unet import UNet

__all__ = ["ResNet3d", "UNet", "channels_to_complex", "complex_to_channels"]
