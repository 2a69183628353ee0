"""Fixtures shared by the tests of models, causality and likelihoods.

Models for exact checks run in float64 on the CPU: there a convolution
adds up exactly the terms of its window, so an input that a parameter does
not depend on contributes a gradient of exactly zero, and changing it
leaves the parameter bit for bit the same.
"""

import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import models
from pixelcnnpp import networks

# Stateless seed of the dropout masks: with it, every pass drops the same
# units, so training mode can be compared between calls.
DROPOUT_SEED = (12, 34)


def build_model(image_shape, seed=0, **kwargs):
  """A small float64 PixelCNN++ whose weights are drawn from `seed`.

  Keyword arguments override the small defaults and go to
  `models.PixelCNNPlusPlus`.
  """
  options = dict(num_filters=8, num_resnet=1, num_hierarchies=2,
                 num_logistic_mix=3, dropout_p=0.5, dtype=tf.float64)
  options.update(kwargs)
  tf.random.set_seed(seed)
  return models.PixelCNNPlusPlus(image_shape, **options)


def random_images(num, image_shape, seed=0):
  """int32 [num, H, W, C] uniform on 0..255."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (num,) + tuple(image_shape)).astype(np.int32)


def dropout_seed():
  """The fixed dropout seed as an int32 [2] tensor."""
  return tf.constant(DROPOUT_SEED, tf.int32)


def input_gradients(model, image, positions, labels=None, training=False,
                    seed=0):
  """Gradients of the parameters at each position with respect to the input.

  The image is repeated once per position so that one backward pass gives
  them all: the parameters of copy n at `positions[n]`, projected on random
  weights, are differentiated with respect to every sub-pixel of copy n.
  The network runs on float pixel values 0..255, which it scales exactly as
  it scales integers.

  Args:
    model: an `AutoregressiveModel`.
    image: [H, W, C] values 0..255.
    positions: N pairs (i, j).
    labels: an integer class for a conditional model.
    training: run with dropout, with the fixed `DROPOUT_SEED`.
    seed: seed of the random projection.

  Returns:
    float64 array [N, H, W, C].
  """
  num = len(positions)
  images = tf.constant(np.repeat(np.asarray(image)[None], num, 0),
                       model.dtype)
  if labels is not None:
    labels = model.one_hot_labels(np.full([num], labels, np.int32))
  ops = networks.FullPass(training=training,
                          dropout_seed=dropout_seed() if training else None)
  index = [[n, i, j] for n, (i, j) in enumerate(positions)]
  rng = np.random.default_rng(seed)
  weights = tf.constant(rng.normal(size=(num, model.network.num_params)),
                        model.dtype)
  with tf.GradientTape() as tape:
    tape.watch(images)
    params = model.network.forward(images, labels, ops)
    projected = tf.reduce_sum(tf.gather_nd(params, index) * weights)
  gradients = tape.gradient(projected, images)
  assert gradients is not None, "no gradient reaches the input pixels"
  return gradients.numpy().astype(np.float64)


@pytest.fixture(scope="session", name="build_model")
def build_model_fixture():
  """`build_model`: a fresh small float64 PixelCNN++."""
  return build_model


@pytest.fixture(scope="session", name="random_images")
def random_images_fixture():
  """`random_images`: int32 images uniform on 0..255."""
  return random_images


@pytest.fixture(scope="session", name="input_gradients")
def input_gradients_fixture():
  """`input_gradients`: per-position gradients with respect to the input."""
  return input_gradients


@pytest.fixture(name="dropout_seed")
def dropout_seed_fixture():
  """The fixed dropout seed, int32 [2]."""
  return dropout_seed()


@pytest.fixture(scope="session")
def cached_model():
  """Returns `build_model(...)`, building each configuration only once.

  The models are shared between tests: a test that trains or initialises a
  model must build its own with `build_model`.
  """
  cache = {}

  def get(image_shape, **kwargs):
    key = (tuple(image_shape), tuple(sorted(kwargs.items())))
    if key not in cache:
      cache[key] = build_model(image_shape, **kwargs)
    return cache[key]

  return get
