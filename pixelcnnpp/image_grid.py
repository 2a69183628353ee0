"""Sample grids: a batch of images tiled into one PNG."""

import math
import os

import numpy as np
from PIL import Image


def make(images, padding=1):
  """Tiles images into a near-square grid.

  Args:
    images: uint8-valued [N, H, W, C] with C = 1 or 3.
    padding: pixels of black between neighbours.

  Returns:
    uint8 [rows * (H + padding) + padding, cols * (W + padding) + padding,
    C].
  """
  images = np.clip(np.asarray(images), 0, 255).astype(np.uint8)
  num, height, width, channels = images.shape
  cols = math.ceil(math.sqrt(num))
  rows = math.ceil(num / cols)
  grid = np.zeros((rows * (height + padding) + padding,
                   cols * (width + padding) + padding, channels), np.uint8)
  for index, image in enumerate(images):
    row, col = divmod(index, cols)
    top = padding + row * (height + padding)
    left = padding + col * (width + padding)
    grid[top:top + height, left:left + width] = image
  return grid


def save(images, path, scale=None):
  """Writes `make(images)` as a PNG, enlarged `scale` times (default: to
  at least 256 pixels across) with nearest-neighbour so pixels stay sharp.
  """
  grid = make(images)
  if scale is None:
    scale = max(1, 256 // grid.shape[1])
  picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    picture = picture.resize(
        (grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  picture.save(path)
