"""The model interface: checked inputs, labels, sizes and dtypes."""

import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import models

SHAPE = (4, 5, 1)


@pytest.fixture(scope="module")
def model(cached_model):
  """A small unconditional 4x5 grey model with 2 stages."""
  return cached_model(SHAPE, num_filters=4)


def zeros(shape, dtype=np.int32):
  return np.zeros(shape, dtype)


@pytest.mark.parametrize("images,message", [
    (zeros((4, 5, 1)), r"rank 3 .*images\[None\]"),
    (zeros((1, 1, 4, 5, 1)), r"must have shape \[batch, 4, 5, 1\].*rank 5"),
    (zeros((1, 5, 5, 1)), r"\[batch, 4, 5, 1\] for this model, got \(1, 5"),
    (zeros((1, 4, 6, 1)), r"\[batch, 4, 5, 1\] for this model, got \(1, 4"),
    (zeros((1, 4, 5, 3)), r"\[batch, 4, 5, 1\] for this model.*5, 3\)"),
    (np.full((1, 4, 5, 1), -1), r"0\.\.255, got values from -1"),
    (np.full((1, 4, 5, 1), 256), r"0\.\.255, got values from 256"),
    (np.full((1, 4, 5, 1), 255.5), r"0\.\.255.*np\.round\(images \* 255\)"),
    (np.full((1, 4, 5, 1), -0.5), r"0\.\.255"),
    (np.full((1, 4, 5, 1), 0.5), r"whole numbers.*fractional"),
    (np.full((1, 4, 5, 1), np.inf), r"0\.\.255"),
    (np.full((1, 4, 5, 1), np.nan), r"NaN"),
    (np.full((1, 4, 5, 1), "7"), r"numbers 0\.\.255, not <U1"),
    (tf.fill([1, 4, 5, 1], "7"), r"numbers 0\.\.255, not .*string"),
    (np.full((1, 4, 5, 1), None, object), r"numbers 0\.\.255, not object"),
    (zeros((1, 4, 5, 1), np.complex64), r"numbers 0\.\.255, not complex"),
], ids=["rank-3", "rank-5", "height", "width", "channels", "negative",
        "256", "float-over-255", "float-negative", "fractional", "inf",
        "nan", "numpy-strings", "tf-strings", "objects", "complex"])
def test_invalid_images_raise_image_error(model, images, message):
  """Invalid images raise ImageError, a ValueError, saying what is wrong."""
  for method in (model.log_prob, model.params, model.bits_per_dim):
    with pytest.raises(models.ImageError, match=message):
      method(images)
  assert issubclass(models.ImageError, ValueError)


def test_one_bad_value_among_good_ones_is_found(model):
  """A single out-of-range or fractional value in a batch is refused."""
  images = np.full((3,) + SHAPE, 100.0)
  images[2, 3, 4, 0] = 255.25
  with pytest.raises(models.ImageError):
    model.log_prob(images)
  images[2, 3, 4, 0] = 300.0
  with pytest.raises(models.ImageError):
    model.log_prob(images)


def test_equivalent_image_types_give_identical_log_prob(model):
  """int32, uint8, int64 tensors, whole floats and lists agree exactly."""
  images = np.random.default_rng(0).integers(0, 256, (2,) + SHAPE)
  expected = model.log_prob(images.astype(np.int32)).numpy()

  for same in (images.astype(np.uint8), tf.constant(images, tf.int64),
               images.astype(np.float32), images.astype(np.float64),
               images.tolist()):
    np.testing.assert_array_equal(model.log_prob(same).numpy(), expected)


def test_values_are_checked_inside_tf_function(model):
  """In a graph, fractional, out-of-range and NaN values still fail.

  And good images give the eager result.
  """
  log_prob = tf.function(model.log_prob, input_signature=[
      tf.TensorSpec([None, None, None, None], tf.float32)])

  for bad in (0.5, 300.0, -1.0, np.nan):
    images = np.full((1,) + SHAPE, bad, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="whole numbers in 0..255"):
      log_prob(images)
  good = np.full((1,) + SHAPE, 7, np.float32)
  np.testing.assert_allclose(log_prob(good).numpy(),
                             model.log_prob(good).numpy(), rtol=1e-12)


@pytest.mark.parametrize("num_hierarchies", [1, 2])
def test_wrong_size_is_refused_inside_tf_function(cached_model,
                                                  num_hierarchies):
  """In a graph with unknown shapes, a wrong image size is refused clearly."""
  model = cached_model(SHAPE, num_filters=4,
                       num_hierarchies=num_hierarchies)
  log_prob = tf.function(model.log_prob, input_signature=[
      tf.TensorSpec([None, None, None, None], tf.int32)])

  with pytest.raises((models.ImageError, tf.errors.InvalidArgumentError),
                     match=r"images must have shape \[batch, 4, 5, 1\]"):
    log_prob(np.zeros((1, 6, 8, 1), np.int32))


@pytest.fixture(scope="module")
def conditional(cached_model):
  """A 4x5 grey model conditioned on 3 classes."""
  return cached_model(SHAPE, num_filters=4, num_classes=3)


def test_integer_and_one_hot_labels_agree(conditional):
  """Labels as integers [B] or one-hot [B, 3] give identical log_prob."""
  images = np.random.default_rng(1).integers(0, 256, (3,) + SHAPE)
  labels = np.array([2, 0, 1])

  from_ints = conditional.log_prob(images, labels).numpy()

  for one_hot in (np.eye(3)[labels], np.eye(3, dtype=np.int32)[labels],
                  tf.one_hot(labels, 3)):
    np.testing.assert_array_equal(
        conditional.log_prob(images, one_hot).numpy(), from_ints)
  # A scalar label applies to the whole batch; a batch of one may round
  # differently from a batch of three.
  np.testing.assert_allclose(
      conditional.log_prob(images[:1], 2).numpy(), from_ints[:1],
      rtol=1e-13)


def test_log_prob_depends_on_label(conditional):
  """log p(x | y) differs between the three classes for the same x."""
  images = np.repeat(
      np.random.default_rng(2).integers(0, 256, (1,) + SHAPE), 3, 0)

  log_probs = conditional.log_prob(images, np.arange(3)).numpy()

  assert np.all(np.isfinite(log_probs))
  assert len(set(log_probs.tolist())) == 3


def test_unconditional_model_rejects_labels(model):
  """Labels passed to a model built without classes are an error."""
  with pytest.raises(ValueError, match="takes no labels"):
    model.log_prob(np.zeros((1,) + SHAPE, np.int32), np.array([0]))


@pytest.mark.parametrize("labels,message", [
    (None, r"class-conditional: pass labels, integers in 0\.\.2"),
    (np.array([3]), r"labels must lie in 0\.\.2, got 3\.\.3"),
    (np.array([-1]), r"labels must lie in 0\.\.2"),
    (np.array([0.0]), r"integer labels expected"),
    (np.ones((1, 4)), r"one-hot \[batch, 3\], got shape \(1, 4\)"),
    (np.array([0, 1]), r"one label per image: got 2 labels for 1 images"),
    (np.full((1, 3), np.nan), r"one-hot labels must be rows of numbers"),
    (np.zeros((1, 3)), r"one-hot labels must be rows of numbers"),
    (np.array([[2.0, 0.0, 0.0]]), r"one-hot labels must be rows"),
    (np.array([[1.5, -0.5, 0.0]]), r"one-hot labels must be rows"),
])
def test_conditional_model_needs_valid_labels(conditional, labels, message):
  """A conditional model requires labels, in range and of the right shape,
  one per image; inside a traced function too."""
  images = np.zeros((1,) + SHAPE, np.int32)
  with pytest.raises(ValueError, match=message):
    conditional.log_prob(images, labels)
  if labels is None or labels.dtype.kind == "f" and labels.ndim == 1:
    return
  # Shapes are checked while tracing, values when the function runs.
  traced = tf.function(conditional.log_prob)
  expected = (ValueError if labels.ndim == 2 and labels.shape[1] != 3
              or len(labels) != 1 else tf.errors.InvalidArgumentError)
  with pytest.raises(expected,
                     match=message.split(":")[0].split(", got")[0]):
    traced(tf.constant(images), tf.constant(labels))


def test_labels_in_a_function_of_any_batch_size(conditional):
  """Under an input signature with no batch size: one label for all, one
  per image, and a wrong count refused when the function runs."""
  images = np.random.default_rng(1).integers(0, 256, (3,) + SHAPE)
  eager = conditional.log_prob(images, np.array([2, 2, 2])).numpy()
  spec = tf.TensorSpec([None] + list(SHAPE), tf.int32)
  one_for_all = tf.function(conditional.log_prob, input_signature=[
      spec, tf.TensorSpec([], tf.int32)])
  np.testing.assert_allclose(one_for_all(images, 2).numpy(), eager,
                             rtol=1e-4)
  per_image = tf.function(conditional.log_prob, input_signature=[
      spec, tf.TensorSpec([None], tf.int32)])
  np.testing.assert_allclose(per_image(images, [2, 2, 2]).numpy(), eager,
                             rtol=1e-4)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="one label per image"):
    per_image(images, [2, 2])
  draw = tf.function(
      lambda labels: conditional.sample(2, seed=1, labels=labels),
      input_signature=[tf.TensorSpec([None], tf.int32)])
  np.testing.assert_array_equal(draw([0, 2]).numpy(),
                                conditional.sample(2, seed=1,
                                                   labels=[0, 2]).numpy())


def test_soft_labels_are_accepted(conditional):
  """Rows of class weights summing to 1 are let through, as a mixture of
  the classes' biases."""
  images = np.zeros((1,) + SHAPE, np.int32)
  soft = conditional.log_prob(images, np.array([[0.5, 0.5, 0.0]]))
  assert np.isfinite(soft.numpy()).all()


@pytest.mark.parametrize("shape,stages", [
    ((7, 9, 1), 3), ((1, 1, 1), 1), ((1, 1, 3), 3), ((2, 3, 3), 2),
    ((28, 28, 1), 3), ((13, 6, 2), 4),
])
@pytest.mark.parametrize("likelihood", ["mixture", "softmax"])
def test_any_image_size_works(cached_model, shape, stages, likelihood):
  """Any size and stage count gives params [B, H, W, P], finite log p < 0."""
  model = cached_model(shape, likelihood=likelihood, num_filters=4,
                       num_hierarchies=stages)
  images = np.random.default_rng(3).integers(0, 256, (2,) + shape)

  params = model.params(images)
  log_prob = model.log_prob(images).numpy()

  assert params.shape == (2,) + shape[:2] + (model.head.num_params,)
  assert log_prob.shape == (2,)
  assert np.all(np.isfinite(log_prob)) and np.all(log_prob < 0)


@pytest.mark.parametrize("likelihood,coupling,num_params", [
    ("mixture", False, 5 * 9), ("mixture", True, 5 * 10),
    ("softmax", False, 256 * 3),
])
def test_params_per_pixel(likelihood, coupling, num_params):
  """The parameter count of the documented layouts, for RGB and K = 5.

  Mixture: a logit, mean and log-scale per channel and component; with
  coupling, as in the paper, one logit, 3 means, 3 log-scales and 3
  coefficients per component; softmax: 256 logits per channel.
  """
  model = models.PixelCNNPlusPlus((2, 2, 3), likelihood=likelihood,
                                  num_filters=2, num_logistic_mix=5,
                                  channel_coupling=coupling)

  assert model.params(np.zeros((1, 2, 2, 3), np.int32)).shape[-1] == (
      num_params)


@pytest.mark.parametrize("likelihood", ["mixture", "softmax"])
def test_fresh_model_gives_finite_log_prob(likelihood):
  """A model straight from the factory, default settings, float32."""
  model = models.PixelCNNPlusPlus((8, 8, 3), likelihood=likelihood)
  images = np.random.default_rng(4).integers(0, 256, (2, 8, 8, 3))

  log_prob = model.log_prob(images).numpy()
  bits = model.bits_per_dim(images).numpy()

  assert log_prob.dtype == np.float32
  assert np.all(np.isfinite(log_prob)) and np.all(log_prob < 0)
  assert np.all(np.isfinite(bits)) and np.all(bits > 0)


def test_float32_agrees_with_float64_on_same_weights(build_model):
  """Both dtypes run; with the same weights they agree to float32 precision.

  Checked after data-dependent initialisation, which sets realistic
  gains.
  """
  shape = (6, 5, 3)
  wide = build_model(shape, num_filters=4, dtype=tf.float64, seed=5)
  narrow = build_model(shape, num_filters=4, dtype=tf.float32, seed=6)
  images = np.random.default_rng(5).integers(0, 256, (4,) + shape)
  wide.initialize(images)
  for target, source in zip(narrow.trainable_variables,
                            wide.trainable_variables):
    assert target.name == source.name and target.shape == source.shape
    target.assign(tf.cast(source, tf.float32))

  wide_log_prob = wide.log_prob(images)
  narrow_log_prob = narrow.log_prob(images)

  assert wide_log_prob.dtype == tf.float64
  assert narrow_log_prob.dtype == tf.float32
  assert narrow.params(images).dtype == tf.float32
  np.testing.assert_allclose(narrow_log_prob.numpy(), wide_log_prob.numpy(),
                             rtol=1e-4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(image_shape=(0, 5, 1)), r"image_shape must be \(height, width, "
     r"channels\), three positive integers, not \(0, 5, 1\)"),
    (dict(image_shape=(28, 28)), r"three positive integers, not \(28, 28\)"),
    (dict(image_shape=(4.0, 5, 1)), "three positive integers"),
    (dict(num_logistic_mix=0), "num_logistic_mix must be at least 1"),
    (dict(dropout_p=1.0), r"dropout_p must be in \[0, 1\)"),
    (dict(dropout_p=0.999), r"dropout_p must be .* at most 0.998"),
    (dict(num_hierarchies=0), "at least 1"),
    (dict(num_resnet=0), "at least 1"),
    (dict(likelihood="gaussian"), "unknown likelihood 'gaussian'"),
    (dict(likelihood="softmax", channel_coupling=True),
     "channel_coupling applies to the mixture head only"),
])
def test_bad_settings_are_refused(kwargs, message):
  """Impossible model settings raise ValueError with a useful message."""
  kwargs = dict(dict(image_shape=(4, 5, 1), num_filters=2), **kwargs)
  with pytest.raises(ValueError, match=message):
    models.PixelCNNPlusPlus(**kwargs)
