"""ULM detection networks: a dense spatio-temporal encoder-decoder and its sparse twin."""

from blockrecon.ulm.nets.architecture import UlmNet, UlmNetConfig
from blockrecon.ulm.nets.dense import DenseUlmNet
from blockrecon.ulm.nets.sparse import SparseUlmNet, occupancy_keep

__all__ = ["DenseUlmNet", "SparseUlmNet", "UlmNet", "UlmNetConfig", "occupancy_keep"]
