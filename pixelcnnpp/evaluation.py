"""Evaluation: bits per dimension over every image of a data set.

Also what the programs that score and sample a trained model share:
restoring the run with a clear error for each mistake a user can make,
and reading the user's own images as the run read its data.
"""

import sys

from absl import app
from absl import logging
import numpy as np
import tensorflow as tf

from pixelcnnpp import data
from pixelcnnpp import models

# Mistakes of a command-line user (no such run, no checkpoint yet, images
# that cannot be read or do not fit the model, impossible settings): the
# programs report them in one line, without a traceback.
USER_ERRORS = (FileNotFoundError, data.DataSourceError, models.ImageError,
               ValueError)


def evaluate(model, dataset, batch_size=250, max_images=None,
             conditional=False, log_every=None):
  """Bits/dim of `model` over a data set, every image counted once.

  Args:
    model: an `AutoregressiveModel`.
    dataset: unbatched elements {"image": uint8 [H, W, C], "label": int32}.
    batch_size: images per forward pass (the last batch may be smaller).
    max_images: evaluate the first this many images only; None for all.
    conditional: pass the labels to the model.
    log_every: log the images scored so far, and their mean, every this
      many batches; None for no log.

  Returns:
    {"bits_per_dim": mean over images, "stderr": its standard error over
    images, "count": images evaluated, "per_image": float64 [count]}.
  """
  if max_images:
    dataset = dataset.take(max_images)
  score = _scorer(model)
  per_image = []
  for element in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
    labels = element["label"] if conditional else None
    per_image.append(score(element["image"], labels).numpy())
    _log_progress(per_image, log_every)
  return summarize(np.concatenate(per_image) if per_image else np.zeros(0))


def _log_progress(per_image, log_every):
  """Logs the count and mean so far after every `log_every` batches."""
  if log_every and len(per_image) % log_every == 0:
    scored = np.concatenate(per_image)
    logging.info("%d images scored, %.4f bits/dim so far", scored.size,
                 scored.mean())


def evaluate_images(model, images, batch_size=250, labels=None,
                    log_every=None):
  """Like `evaluate`, for an array of images uint8 [N, H, W, C]."""
  images = model.check_images(images)
  score = _scorer(model)
  per_image = []
  for start in range(0, int(images.shape[0]), batch_size):
    batch_labels = None if labels is None else labels[start:start +
                                                      batch_size]
    per_image.append(
        score(images[start:start + batch_size], batch_labels).numpy())
    _log_progress(per_image, log_every)
  return summarize(np.concatenate(per_image) if per_image else np.zeros(0))


def summarize(per_image):
  """Mean bits/dim, its standard error and the count, from per-image."""
  per_image = np.asarray(per_image, np.float64)
  count = per_image.size
  stderr = per_image.std(ddof=1) / np.sqrt(count) if count > 1 else 0.0
  return {"bits_per_dim": float(per_image.mean()) if count else float("nan"),
          "stderr": float(stderr), "count": int(count),
          "per_image": per_image}


def _scorer(model):
  cache = model.__dict__.setdefault("_scorer", {})
  if "fn" not in cache:
    cache["fn"] = tf.function(
        lambda images, labels: model.bits_per_dim(images, labels),
        reduce_retracing=True)
  return cache["fn"]


def run_with_restored_model(argv, workdir, averaged, command):
  """The body of a program that uses a trained model: `command` on it.

  Checks the command line, restores the run in `workdir` from its latest
  checkpoint and calls `command(model, config)`. A `USER_ERRORS` raised
  on the way is logged as one line and ends the program with status 1.

  Args:
    argv: the program's arguments left after flag parsing.
    workdir: the training run's work directory (--workdir).
    averaged: use the Polyak-averaged weights (--averaged).
    command: function (model, config) -> anything, with `config` the
      run's config.json as a dict.

  Returns:
    What `command` returns.

  Raises:
    app.UsageError: arguments left over, or no work directory.
  """
  # Imported here: training imports this module.
  from pixelcnnpp import training  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not workdir:
    raise app.UsageError("--workdir is required: a training run's directory")
  try:
    model, config = training.restore(workdir, averaged)
    return command(model, config)
  except USER_ERRORS as e:
    logging.error("%s", e)
    sys.exit(1)


def load_images_as_trained(path, model, data_config, skip_bad_files=False):
  """Reads images to score or complete as the run read its data.

  The run's `image_size` applies (each image centre-cropped to a square
  and resized), and a model of one channel, trained with `grayscale` or on
  grayscale data, gets grayscale images. So a folder of 64x64 colour
  photographs fits a model trained at 32x32 in grayscale. Beyond that:
  a colour model gets grayscale images with the grey in all three
  channels, as training reads a grayscale file among colour ones; and a
  square model whose run kept its data's size has images of another size
  centre-cropped and resized to its own.

  Args:
    path: a directory of image files, an .npz or one image file; see
      `data.load_images`.
    model: the run's model, for its image shape.
    data_config: the "data" part of the run's configuration.
    skip_bad_files: leave out, with a warning, files that cannot be
      decoded.

  Returns:
    uint8 [N, H, W, C] with the model's H, W and C (where the model is
    not square and the run kept its data's size, the images' own).
  """
  height, width, channels = model.image_shape
  image_size = data_config.get("image_size")
  if image_size is None and height == width:
    image_size = height
  images = data.load_images(path, image_size=image_size,
                            grayscale=channels == 1,
                            skip_bad_files=skip_bad_files)
  if channels == 3 and images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  logging.info("Read %d images of shape %s from %s", len(images),
               images.shape[1:], path)
  return images


def labels_from_flag(values, model, count, default_cycle=False):
  """Class labels for `count` images from a --labels flag.

  Args:
    values: the flag's strings (one per image, or one for all), or None.
    model: the model the labels are for.
    count: number of images.
    default_cycle: when no labels are given to a conditional model, use
      classes 0, 1, ... in turn (for sampling) instead of an error.

  Returns:
    int32 [count], or None for a model without classes.

  Raises:
    ValueError: labels that are not integers in 0..N-1, of a count other
      than 1 or `count`, given to an unconditional model, or missing for a
      conditional one.
  """
  if not model.num_classes:
    if values:
      raise ValueError("--labels: this model was trained without "
                       "--conditional, so it takes no labels")
    return None
  if not values:
    if default_cycle:
      return np.arange(count, dtype=np.int32) % model.num_classes
    raise ValueError(f"this model is class-conditional: pass the class of "
                     f"the images with --labels, one integer in "
                     f"0..{model.num_classes - 1} for all of them or one "
                     f"per image")
  try:
    labels = np.array([int(value) for value in values], np.int32)
  except ValueError:
    raise ValueError(f"--labels must be integers, not {values}") from None
  if labels.min() < 0 or labels.max() >= model.num_classes:
    raise ValueError(f"--labels must be in 0..{model.num_classes - 1}, not "
                     f"{values}")
  if len(labels) not in (1, count):
    raise ValueError(f"--labels gives {len(labels)} labels for {count} "
                     f"images: give one for all or one per image")
  return np.resize(labels, count)
