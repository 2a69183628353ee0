"""Autoregressive image models: PixelCNN++, Gated PixelCNN, masked PixelCNN.

  import pixelcnnpp
  model = pixelcnnpp.PixelCNNPlusPlus((28, 28, 1), likelihood="mixture")
  model.log_prob(images)        # nats per image, images uint8 [B, 28, 28, 1]
  model.bits_per_dim(images)
  model.sample(16, seed=0)      # int32 [16, 28, 28, 1]
"""

import os

# TensorFlow's C++ start-up notes (oneDNN, CUDA probing) say nothing a user
# of this package can act on; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from pixelcnnpp.models import AutoregressiveModel  # pylint: disable=g-import-not-at-top,wrong-import-position
from pixelcnnpp.models import build
from pixelcnnpp.models import ImageError
from pixelcnnpp.models import PixelCNNPlusPlus

__all__ = ["AutoregressiveModel", "ImageError", "PixelCNNPlusPlus", "build"]
