r"""Cuts the photographs that scikit-image ships into small colour patches.

  pip install -e ".[photos]"    # scikit-image
  python benchmarks/photo_patches.py --out=runs/photo_patches
  python -m pixelcnnpp.train --dataset=runs/photo_patches --image_size=32 \
      --workdir=runs/photos

A colour data set of real photographs for machines that cannot download
one. The photographs are the colour ones inside the scikit-image wheel
(`skimage.data`), so nothing is fetched: astronaut (Eileen Collins,
512x512 pixels), chelsea (a cat, 451x300), coffee (a cup of coffee,
600x400), rocket (a launch, 640x427) and motorcycle (the left view of a
stereo pair, 741x500). Each photograph is shrunk to every scale of
--scales (1 is as shipped), and each scale is cut into --patch_size
squares, --stride pixels apart, centred on the picture. The PNGs go to
one subfolder per photograph under --out, so that the photograph is the
class label for --conditional.

Note: the test split that training holds out of this folder is drawn from
patches of the same five photographs, neighbours of training patches and
at other scales overlapping them. Its bits/dim measures how well a model
fits these photographs, not how it generalises to new ones.
"""

import os
import sys

from absl import app
from absl import flags
import numpy as np
from PIL import Image

flags.DEFINE_string("out", "runs/photo_patches",
                    "New (or empty) directory for the patches.")
flags.DEFINE_integer("patch_size", 32, "Side of the square patches.")
flags.DEFINE_list("scales", ["1", "0.5", "0.25"],
                  "Factors each photograph is shrunk by before cutting.")
flags.DEFINE_integer("stride", None,
                     "Pixels between neighbouring patches; default "
                     "--patch_size (patches that touch, no overlap).")
flags.DEFINE_list("photos", ["astronaut", "chelsea", "coffee", "rocket",
                             "motorcycle"],
                  "Photographs of scikit-image to use.")

FLAGS = flags.FLAGS


def load_photo(name):
  """A photograph of skimage.data as uint8 [H, W, 3]."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  if name == "motorcycle":
    left, _, _ = data.stereo_motorcycle()
    return left
  loader = getattr(data, name, None)
  if loader is None:
    raise app.UsageError(f"skimage.data has no photograph {name!r}")
  photo = loader()
  if photo.ndim != 3 or photo.shape[-1] != 3:
    raise app.UsageError(f"skimage.data.{name}() is not an RGB "
                         f"photograph (shape {photo.shape})")
  return photo


def patches(photo, patch_size, stride, scale):
  """Cuts a photograph, shrunk by `scale`, into square patches.

  Args:
    photo: uint8 [H, W, 3].
    patch_size: side of a patch in pixels.
    stride: pixels between the corners of neighbouring patches.
    scale: factor in (0, 1]; shrinking is Lanczos, antialiased.

  Returns:
    uint8 [N, patch_size, patch_size, 3], row by row, N possibly 0.
  """
  picture = Image.fromarray(photo)
  if scale != 1:
    size = (round(picture.width * scale), round(picture.height * scale))
    picture = picture.resize(size, Image.Resampling.LANCZOS)
  pixels = np.asarray(picture)
  height, width, _ = pixels.shape
  if height < patch_size or width < patch_size:
    return np.zeros((0, patch_size, patch_size, 3), np.uint8)

  # The grid is centred: what it leaves over is split between the edges.
  rows = (height - patch_size) // stride + 1
  cols = (width - patch_size) // stride + 1
  top = (height - patch_size - (rows - 1) * stride) // 2
  left = (width - patch_size - (cols - 1) * stride) // 2
  return np.stack([
      pixels[top + r * stride:top + r * stride + patch_size,
             left + c * stride:left + c * stride + patch_size]
      for r in range(rows) for c in range(cols)])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    import skimage  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    sys.exit("scikit-image is not installed: pip install scikit-image, or "
             "pip install -e '.[photos]' from the repository")
  if os.path.isdir(FLAGS.out) and os.listdir(FLAGS.out):
    sys.exit(f"{FLAGS.out} is not empty; pass a new --out or delete it "
             f"first")
  scales = [float(scale) for scale in FLAGS.scales]
  if not all(0 < scale <= 1 for scale in scales):
    raise app.UsageError(f"--scales must lie in (0, 1], got {scales}")
  stride = FLAGS.stride or FLAGS.patch_size

  total = 0
  for name in FLAGS.photos:
    photo = load_photo(name)
    folder = os.path.join(FLAGS.out, name)
    os.makedirs(folder, exist_ok=True)
    counts = []
    for scale in scales:
      cut = patches(photo, FLAGS.patch_size, stride, scale)
      for n, patch in enumerate(cut):
        Image.fromarray(patch).save(
            os.path.join(folder, f"{name}_x{scale:g}_{n:04d}.png"))
      counts.append(len(cut))
    total += sum(counts)
    print(f"{name} {photo.shape[1]}x{photo.shape[0]}: "
          + ", ".join(f"{count} at x{scale:g}"
                      for count, scale in zip(counts, scales)))
  print(f"{total} patches of {FLAGS.patch_size}x{FLAGS.patch_size} from "
        f"{len(FLAGS.photos)} photographs in {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
