"""Mixed precision: 16-bit network, float32 variables and likelihood.

The same weights scored with the network in bfloat16 or float16 instead
of float32 must give nearly the same bits/dim, the head must receive
float32 parameters, training in bfloat16 must follow training in float32,
and float16 training must scale its loss, skipping and retrying the steps
whose gradients overflow.

Measured here (PixelCNN++, 16 filters, 2 stages, 28x28 MNIST, after
data-dependent initialisation): the mean bits/dim of 32 test images moves
by 0.007 in bfloat16 and 0.0003 in float16 with the mixture head (bounds
0.01 and 0.001), by 0.013 and 0.003 with the softmax head, whose larger
logits lose more to rounding (bounds 0.02 and 0.005). bfloat16 keeps 8
significant bits; the shift comes from the rounding of the whole network
(computing the output layer in float32 does not reduce it), not from the
head, which stays in float32.
"""

import functools
import os
import pathlib

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from pixelcnnpp import data
from pixelcnnpp import models
from pixelcnnpp import training

MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared/data/mnist"
SMALL = dict(image_shape=(28, 28, 1), num_filters=16, num_resnet=1,
             num_hierarchies=2, dropout_p=0.0)


@pytest.fixture(scope="module")
def mnist():
  """(training images [64], test images [32]), uint8 [N, 28, 28, 1]."""
  images = data.load("mnist", data_dir=str(MNIST))
  train = next(iter(images.train.batch(64)))["image"].numpy()
  test = next(iter(images.test.batch(32)))["image"].numpy()
  return train, test


def watch_dtypes(model):
  """Records the dtype of the network's output and of the head's input."""
  seen = {"network": [], "head": []}
  forward, head_log_prob = model.network.forward, model.head.log_prob

  def network_forward(*args, **kwargs):
    params = forward(*args, **kwargs)
    seen["network"].append(params.dtype)
    return params

  def head(params, images):
    seen["head"].append(params.dtype)
    return head_log_prob(params, images)

  model.network.forward = network_forward
  model.head.log_prob = head
  return seen


@pytest.mark.parametrize("likelihood", ["mixture", "softmax"])
def test_same_weights_in_16_bits(mnist, likelihood):
  """bits/dim moves by less than 0.01 in bfloat16 and in float16, the
  network really computes in 16 bits and the head gets float32."""
  train, test = mnist
  tf.random.set_seed(0)
  model = models.build(likelihood=likelihood, **SMALL)
  model.initialize(train)
  reference = model.bits_per_dim(test).numpy()
  seen = watch_dtypes(model)

  # The softmax head's logits are larger, so their rounding costs more.
  bounds = {"mixture": {tf.bfloat16: 0.01, tf.float16: 0.001},
            "softmax": {tf.bfloat16: 0.02, tf.float16: 0.005}}[likelihood]
  for dtype, bound in bounds.items():
    model.set_compute_dtype(dtype)
    bits = model.bits_per_dim(test).numpy()
    assert seen["network"][-1] == dtype
    assert seen["head"][-1] == tf.float32
    assert bits.dtype == np.float32
    assert abs(bits.mean() - reference.mean()) < bound, dtype
    assert not np.array_equal(bits, reference)
  assert all(v.dtype == tf.float32 for v in model.trainable_variables)

  model.set_compute_dtype(tf.float32)
  np.testing.assert_array_equal(model.bits_per_dim(test).numpy(),
                                reference)


def test_bfloat16_training_follows_float32(mnist):
  """Five steps from the same start on the same batches: the losses of
  mixed_bfloat16 stay within 0.02 bits/dim of float32's at every step and
  0.01 on average (bfloat16 keeps 8 significant bits, so a loss near 3
  bits/dim is already uncertain by about 0.01); every variable, and the
  averaged model's computation, stays float32."""
  train, _ = mnist
  config = dict(SMALL, image_shape=[28, 28, 1], num_classes=0)
  losses = {}
  for precision in ("float32", "mixed_bfloat16"):
    tf.random.set_seed(0)
    trainer = training.Trainer(config, training.TrainConfig(
        precision=precision))
    trainer.initialize(train)
    batches = [train[16 * (i % 4):16 * (i % 4) + 16] for i in range(5)]
    losses[precision] = [float(trainer.train_step(batch))
                         for batch in batches]
    variables = (trainer.model.trainable_variables
                 + trainer.ema_model.trainable_variables)
    assert all(v.dtype == tf.float32 for v in variables)
    assert trainer.ema_model.network.dtype == tf.float32
  assert trainer.model.network.dtype == tf.bfloat16
  np.testing.assert_allclose(losses["mixed_bfloat16"], losses["float32"],
                             rtol=0, atol=0.02)
  differences = np.subtract(losses["mixed_bfloat16"], losses["float32"])
  assert np.abs(differences).mean() < 0.01
  assert losses["mixed_bfloat16"] != losses["float32"]


def write_images(directory, num=40):
  directory.mkdir()
  rng = np.random.default_rng(0)
  for n in range(num):
    pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(pixels).save(directory / f"{n:03d}.png")
  return str(directory)


def test_float16_scales_the_loss_and_retries_skipped_steps(
    tmp_path, monkeypatch):
  """A loss scale far too large makes float16 gradients overflow: each
  such step is skipped with the scale halved, and retried on the same
  batch, so the run still ends at num_steps having drawn exactly
  num_steps batches; the scale is saved with the checkpoint, and the run
  cannot be resumed without loss scaling."""
  initial_scale = 2.0**40
  monkeypatch.setattr(
      tf.keras.optimizers, "LossScaleOptimizer",
      functools.partial(tf.keras.optimizers.LossScaleOptimizer,
                        initial_scale=initial_scale))
  drawn = []
  batches = training.training_batches

  def counted_batches(*args):
    for batch in batches(*args):
      drawn.append(1)
      yield batch

  monkeypatch.setattr(training, "training_batches", counted_batches)
  calls = []
  train_step = training.Trainer.train_step

  def counted_step(self, *args):
    calls.append(1)
    return train_step(self, *args)

  monkeypatch.setattr(training.Trainer, "train_step", counted_step)

  workdir = str(tmp_path / "run")
  data_config = {"name": write_images(tmp_path / "images"),
                 "data_dir": None, "image_size": None, "grayscale": False,
                 "conditional": False}
  model = {"num_filters": 4, "num_resnet": 1, "num_hierarchies": 1,
           "num_logistic_mix": 2, "dropout_p": 0.0}
  config = training.TrainConfig(
      batch_size=8, num_steps=3, init_batch_size=16, eval_every=3,
      eval_images=8, checkpoint_every=3, num_samples=0,
      precision="mixed_float16")
  result = training.train(workdir, data_config, model, config)

  assert result["step"] == 3 and len(drawn) == 3
  reader = tf.train.load_checkpoint(
      tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")))
  scale = [reader.get_tensor(name)
           for name in reader.get_variable_to_shape_map()
           if "dynamic_scale" in name]
  assert len(scale) == 1 and scale[0] < initial_scale
  halvings = int(round(np.log2(initial_scale / scale[0])))
  assert len(calls) == 3 + halvings
  assert np.isfinite(result["test_bits_per_dim"])

  with pytest.raises(training.TrainingError, match="precision"):
    training.train(workdir, data_config, model, training.TrainConfig(
        batch_size=8, num_steps=4, init_batch_size=16, num_samples=0))

  # Evaluation and sampling get the trained weights in float32.
  raw, _ = training.restore(workdir, averaged=False)
  assert raw.network.dtype == tf.float32


def test_conditional_model_in_16_bits(mnist):
  """Class biases, float32 variables, are added to 16-bit activations in
  their dtype: a conditional model scores nearly as in float32, and its
  labels still matter."""
  train, test = mnist
  tf.random.set_seed(0)
  model = models.build(num_classes=3, **SMALL)
  labels = np.arange(len(train)) % 3
  model.initialize(train, labels)
  test_labels = np.arange(len(test)) % 3
  reference = model.bits_per_dim(test, test_labels).numpy()
  model.set_compute_dtype(tf.bfloat16)
  bits = model.bits_per_dim(test, test_labels).numpy()
  assert abs(bits.mean() - reference.mean()) < 0.01
  other = model.bits_per_dim(test, (test_labels + 1) % 3).numpy()
  assert np.abs(other - bits).max() > 1e-4


def test_unknown_precision_is_refused():
  with pytest.raises(ValueError, match="precision must be one of"):
    training.Trainer(dict(image_shape=[8, 8, 1], num_filters=4),
                     training.TrainConfig(precision="float16"))
