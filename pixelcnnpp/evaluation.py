"""Evaluation: bits per dimension over every image of a data set."""

import numpy as np
import tensorflow as tf



def evaluate(model, dataset, batch_size=250, max_images=None,
             conditional=False):
  """Bits/dim of `model` over a data set, every image counted once.

  Args:
    model: an `AutoregressiveModel`.
    dataset: unbatched elements {"image": uint8 [H, W, C], "label": int32}.
    batch_size: images per forward pass (the last batch may be smaller).
    max_images: evaluate the first this many images only; None for all.
    conditional: pass the labels to the model.

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
  return summarize(np.concatenate(per_image) if per_image else np.zeros(0))


def evaluate_images(model, images, batch_size=250, labels=None):
  """Like `evaluate`, for an array of images uint8 [N, H, W, C]."""
  images = model.check_images(images)
  score = _scorer(model)
  per_image = []
  for start in range(0, int(images.shape[0]), batch_size):
    batch_labels = None if labels is None else labels[start:start +
                                                      batch_size]
    per_image.append(
        score(images[start:start + batch_size], batch_labels).numpy())
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
