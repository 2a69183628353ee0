"""Models: a network and a likelihood head, with checked inputs.

`PixelCNNPlusPlus(...)` builds the model of Salimans et al. (2017). Every
model offers

  * `log_prob(images, labels)`: log p(x) per image in nats, [B];
  * `bits_per_dim(images, labels)`: -log p(x) / (H W C ln 2) per image;
  * `params(images, labels)`: the head's parameters at every pixel;
  * `sample(num, seed=..., temperature=..., labels=..., prefix=...)`;
  * `initialize(images, labels)`: data-dependent initialisation.

Images are integers 0..255 of shape [B, H, W, C]; anything else is
refused with a message that says what was wrong.

Example:

  model = pixelcnnpp.PixelCNNPlusPlus((28, 28, 1), likelihood="mixture")
  model.initialize(train_images[:64])
  nats = model.log_prob(test_images)              # [B]
  samples = model.sample(16, seed=0)              # int32 [16, 28, 28, 1]
"""

import numpy as np
import tensorflow as tf

from pixelcnnpp import likelihoods
from pixelcnnpp import networks
from pixelcnnpp import sampling


def _batch_size(images):
  """The batch size, a Python int where the shape says it."""
  return images.shape[0] if images.shape[0] is not None else tf.shape(
      images)[0]


def _check(condition, message, detail=lambda: ""):
  """Raises ValueError(message + detail()) if `condition` is False: at once
  when eager or known while tracing, and otherwise as
  InvalidArgumentError(message) when the traced function runs."""
  known = tf.get_static_value(condition)
  if tf.executing_eagerly() or known is not None:
    if not bool(known if known is not None else condition):
      raise ValueError(message + (detail() if tf.executing_eagerly()
                                  else ""))
    return []
  return [tf.debugging.Assert(condition, [message])]


class ImageError(ValueError):
  """Images of the wrong shape, type or range."""


class AutoregressiveModel(tf.Module):
  """A network giving per-pixel parameters, and a head reading them.

  Args:
    network: has `forward(images, labels, ops)`, `image_shape`,
      `num_classes` and `dtype`.
    head: a likelihood head from `likelihoods.get_head`.
    seed: seeds the generator of dropout masks during training.
  """

  def __init__(self, network, head, seed=0, name=None):
    super().__init__(name=name)
    self.network = network
    self.head = head
    self.image_shape = tuple(network.image_shape)
    self.num_classes = network.num_classes
    self.dtype = network.dtype
    self.num_dims = int(np.prod(self.image_shape))
    self.dropout_rng = tf.random.Generator.from_seed(seed)

  def check_images(self, images):
    """Validates images and returns them as an int32 tensor [B, H, W, C].

    Raises:
      ImageError: wrong rank, size or channel count, a non-numeric or
        non-whole dtype, NaN, or values outside 0..255.
    """
    height, width, channels = self.image_shape
    if isinstance(images, (np.ndarray, list, tuple)):
      images = np.asarray(images)
      if images.dtype.kind not in "uifb":
        raise ImageError(f"images must be numbers 0..255, not "
                         f"{images.dtype}")
    images = tf.convert_to_tensor(images)
    shape = images.shape
    if shape.rank is not None and shape.rank != 4:
      raise ImageError(
          f"images must have shape [batch, {height}, {width}, {channels}], "
          f"got rank {shape.rank} {shape}; add a batch axis with "
          f"images[None] or a channel axis with images[..., None]")
    if shape.rank == 4 and shape[1:] != (height, width, channels) and \
        shape[1:].is_fully_defined():
      raise ImageError(
          f"images must have shape [batch, {height}, {width}, {channels}] "
          f"for this model, got {shape}")
    if not (images.dtype.is_integer or images.dtype.is_floating
            or images.dtype.is_bool):
      raise ImageError(f"images must be numbers 0..255, not {images.dtype}")

    if tf.executing_eagerly():
      values = images.numpy()
      if values.size:
        if np.isnan(values).any():
          raise ImageError("images contain NaN")
        low, high = values.min(), values.max()
        if low < 0 or high > 255:
          raise ImageError(
              f"images must lie in 0..255, got values from {low} to "
              f"{high}; rescale floats in [0, 1] with "
              f"np.round(images * 255)")
        if images.dtype.is_floating and not np.all(values == np.round(
            values)):
          raise ImageError(
              "images must be whole numbers 0..255, got fractional "
              "values; rescale floats in [0, 1] with "
              "np.round(images * 255)")
    else:
      tf.debugging.assert_equal(
          tf.shape(images)[1:], tf.constant([height, width, channels]),
          message=f"images must have shape [batch, {height}, {width}, "
          f"{channels}] for this model")
      # uint8 holds whole numbers 0..255 only: no value check, whose
      # float64 a TPU could not compute, is needed.
      if images.dtype != tf.uint8:
        message = "images must be whole numbers in 0..255 (and not NaN)"
        checked = tf.cast(images, tf.float64)
        tf.debugging.assert_equal(checked, tf.round(checked),
                                  message=message)
        tf.debugging.assert_greater_equal(
            checked, tf.constant(0.0, tf.float64), message=message)
        tf.debugging.assert_less_equal(
            checked, tf.constant(255.0, tf.float64), message=message)
    return tf.cast(images, tf.int32)

  def one_hot_labels(self, labels, batch_size=None):
    """Class labels, integers [B] or one-hot [B, N], as one-hot [B, N].

    Returns None for an unconditional model.
    """
    if self.num_classes == 0:
      if labels is not None:
        raise ValueError("this model was built without num_classes, so it "
                         "takes no labels")
      return None
    if labels is None:
      raise ValueError(f"this model is class-conditional: pass labels, "
                       f"integers in 0..{self.num_classes - 1} or one-hot "
                       f"vectors of length {self.num_classes}")
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 0:
      labels = tf.fill([1 if batch_size is None else batch_size], labels)
    if labels.shape.rank not in (1, 2) or (
        labels.shape.rank == 2 and labels.shape[-1] != self.num_classes):
      raise ValueError(f"labels must be integers [batch] or one-hot "
                       f"[batch, {self.num_classes}], got shape "
                       f"{labels.shape}")
    # Run-time checks, which the labels returned wait for.
    checks = []
    if batch_size is not None:
      num_labels = labels.shape[0]
      num_images = tf.get_static_value(batch_size)
      if num_labels is not None and num_images is not None:
        same = num_labels == int(num_images)
      else:
        same = tf.equal(tf.shape(labels)[0], batch_size)
      checks += _check(same,
                       "there must be one label per image",
                       lambda: f": got {labels.shape[0]} labels for "
                               f"{int(batch_size)} images")
    if labels.shape.rank == 1:
      if not labels.dtype.is_integer:
        raise ValueError(f"integer labels expected, got {labels.dtype}")
      low = tf.reduce_min(labels) if labels.shape[0] != 0 else 0
      high = tf.reduce_max(labels) if labels.shape[0] != 0 else 0
      checks += _check(tf.logical_and(low >= 0, high < self.num_classes),
                       f"labels must lie in 0..{self.num_classes - 1}",
                       lambda: f", got {int(low)}..{int(high)}")
      # int32, which tf.one_hot takes on every device, holds any label
      # that passed the check.
      with tf.control_dependencies(checks):
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes,
                          dtype=self.dtype)
    # One-hot rows; soft ones, weights summing to 1, are let through.
    # Checked in the model's dtype: a TPU has no float64.
    rows = tf.cast(labels, self.dtype)
    checks += _check(tf.reduce_all(tf.logical_and(rows >= 0, tf.abs(
        tf.reduce_sum(rows, axis=-1, keepdims=True) - 1) < 1e-3)),
                     "one-hot labels must be rows of numbers >= 0 (not NaN) "
                     "that sum to 1")
    with tf.control_dependencies(checks):
      return tf.identity(rows)

  def params(self, images, labels=None, training=False, dropout_seed=None):
    """The head's parameters at every pixel, [B, H, W, num_params].

    Args:
      images: [B, H, W, C] integers 0..255.
      labels: integers [B] or one-hot [B, N], for a conditional model.
      training: apply dropout.
      dropout_seed: int32 [2] seed of the dropout masks; drawn from the
        model's generator when None.
    """
    images = self.check_images(images)
    return self._params(images, labels, training, dropout_seed)

  def _params(self, images, labels, training, dropout_seed):
    labels = self.one_hot_labels(labels, _batch_size(images))
    if training and dropout_seed is None:
      dropout_seed = self.dropout_rng.make_seeds(1)[:, 0]
    ops = networks.FullPass(training=training, dropout_seed=dropout_seed)
    params = self.network.forward(images, labels, ops)
    # A network computing in 16 bits (mixed precision) still hands the
    # head float32: its CDF differences and log-sum-exps need it.
    return tf.cast(params, self.dtype)

  def set_compute_dtype(self, dtype):
    """Runs the network in `dtype` from now on, e.g. bfloat16.

    For mixed precision: the variables keep their dtype (each layer casts
    them to its input's) and `params` and the head stay in `self.dtype`.

    Note: data-dependent initialisation and the fast sampler need the
    network in its variables' dtype; initialise and sample a model that
    computes in it.
    """
    self.network.dtype = tf.as_dtype(dtype)

  def log_prob(self, images, labels=None, training=False,
               dropout_seed=None):
    """log p(images | labels) in nats, float [B]."""
    images = self.check_images(images)
    params = self._params(images, labels, training, dropout_seed)
    per_subpixel = self.head.log_prob(params, images)
    return tf.reduce_sum(per_subpixel, axis=[1, 2, 3])

  def bits_per_dim(self, images, labels=None, training=False,
                   dropout_seed=None):
    """-log2 p(images | labels) / (H W C), float [B]."""
    return likelihoods.bits_per_dim(
        self.log_prob(images, labels, training, dropout_seed),
        self.num_dims)

  def initialize(self, images, labels=None):
    """Data-dependent initialisation of the weight-normalised layers.

    Sets each layer's gain and bias so that its outputs on `images` have
    zero mean and the layer's target scale per channel. Gains and biases
    are per channel, so masks and shifts, and with them causality, are
    untouched. Works eagerly and inside `tf.function`.
    """
    images = self.check_images(images)
    labels = self.one_hot_labels(labels, _batch_size(images))
    self.network.forward(images, labels, networks.FullPass(init=True))

  def sample(self, num, seed=0, temperature=1.0, labels=None, prefix=None,
             prefix_length=None, method="fast", return_params=False,
             progress=None):
    """Draws images; see `sampling.sample` for the arguments."""
    return sampling.sample(self, num, seed=seed, temperature=temperature,
                           labels=labels, prefix=prefix,
                           prefix_length=prefix_length, method=method,
                           return_params=return_params, progress=progress)


def PixelCNNPlusPlus(image_shape, likelihood="mixture", num_filters=32,
                     num_resnet=1, num_hierarchies=2, num_logistic_mix=5,
                     dropout_p=0.5, num_classes=0, channel_coupling=False,
                     weight_norm=True, dtype=tf.float32, seed=0):
  """Builds PixelCNN++ with the named likelihood head.

  Args:
    image_shape: (H, W, C).
    likelihood: "mixture" (discretized logistic mixture) or "softmax".
    num_filters, num_resnet, num_hierarchies, dropout_p, num_classes,
      weight_norm, dtype: see `networks.PixelCNNPlusPlusNetwork`.
    num_logistic_mix: mixture components per sub-pixel.
    channel_coupling: couple colour channels as in the paper.
    seed: seed of the dropout masks.

  Returns:
    An `AutoregressiveModel`.
  """
  head = likelihoods.get_head(likelihood, image_shape[-1], num_logistic_mix,
                              channel_coupling)
  network = networks.PixelCNNPlusPlusNetwork(
      image_shape, head.num_params, num_filters=num_filters,
      num_resnet=num_resnet, num_hierarchies=num_hierarchies,
      dropout_p=dropout_p, num_classes=num_classes,
      weight_norm=weight_norm, dtype=dtype)
  return AutoregressiveModel(network, head, seed=seed)


def _num_layers(num_layers, num_resnet, default):
  """num_layers, else num_resnet (the one stage's blocks), else default."""
  if num_layers is not None and num_resnet is not None \
      and num_layers != num_resnet:
    raise ValueError(f"num_layers={num_layers} and num_resnet={num_resnet} "
                     f"disagree; for this model they name the same thing, "
                     f"so give one of them")
  if num_layers is not None:
    return num_layers
  return default if num_resnet is None else num_resnet


def _stacked_model(network_class, image_shape, likelihood, num_filters,
                   num_layers, num_logistic_mix, dropout_p, num_classes,
                   channel_coupling, weight_norm, dtype, seed, num_resnet):
  """A masked or gated PixelCNN of `network_class`, as its builder says."""
  head = likelihoods.get_head(likelihood, image_shape[-1], num_logistic_mix,
                              channel_coupling)
  network = network_class(
      image_shape, head.num_params, num_filters=num_filters,
      num_layers=_num_layers(num_layers, num_resnet, 8),
      dropout_p=dropout_p, num_classes=num_classes,
      weight_norm=weight_norm, dtype=dtype)
  return AutoregressiveModel(network, head, seed=seed)


def PixelCNN(image_shape, likelihood="softmax", num_filters=32,
             num_layers=None, num_logistic_mix=5, dropout_p=0.0,
             num_classes=0, channel_coupling=False, weight_norm=True,
             dtype=tf.float32, seed=0, num_resnet=None,
             num_hierarchies=None):
  """Builds the masked PixelCNN of van den Oord et al. (2016a).

  Args:
    image_shape: (H, W, C).
    likelihood: "softmax" (as in the paper) or "mixture".
    num_filters: h; the residual stream has 2h channels (default 32).
    num_layers: residual blocks after the first 7x7 layer (default 8).
    num_logistic_mix: mixture components per sub-pixel.
    dropout_p: dropout rate inside the blocks; the paper has none.
    num_classes, weight_norm, dtype: see `networks.PixelCNNNetwork`.
    channel_coupling: couple colour channels (mixture head only).
    seed: seed of the dropout masks.
    num_resnet: PixelCNN++'s gated blocks per resolution stage. This
      network has one stage, so when given without `num_layers` it is the
      number of residual blocks.
    num_hierarchies: PixelCNN++'s number of resolution stages; ignored,
      as this network runs at full resolution only. Accepted so that one
      configuration can build any model.

  Returns:
    An `AutoregressiveModel`.
  """
  del num_hierarchies  # One resolution stage.
  return _stacked_model(networks.PixelCNNNetwork, image_shape, likelihood,
                        num_filters, num_layers, num_logistic_mix,
                        dropout_p, num_classes, channel_coupling,
                        weight_norm, dtype, seed, num_resnet)


def GatedPixelCNN(image_shape, likelihood="softmax", num_filters=32,
                  num_layers=None, num_logistic_mix=5, dropout_p=0.0,
                  num_classes=0, channel_coupling=False, weight_norm=True,
                  dtype=tf.float32, seed=0, num_resnet=None,
                  num_hierarchies=None):
  """Builds the gated PixelCNN of van den Oord et al. (2016b).

  Args:
    image_shape: (H, W, C).
    likelihood: "softmax" (as in the paper) or "mixture".
    num_filters: channels of the vertical and horizontal stacks
      (default 32).
    num_layers: gated 3x3 layers after the first 7x7 one (default 8).
    num_logistic_mix: mixture components per sub-pixel.
    dropout_p: dropout rate in the horizontal stack; the paper has none.
    num_classes, weight_norm, dtype: see `networks.GatedPixelCNNNetwork`.
    channel_coupling: couple colour channels (mixture head only).
    seed: seed of the dropout masks.
    num_resnet: PixelCNN++'s gated blocks per resolution stage. This
      network has one stage, so when given without `num_layers` it is the
      number of gated layers after the first.
    num_hierarchies: PixelCNN++'s number of resolution stages; ignored,
      as this network runs at full resolution only. Accepted so that one
      configuration can build any model.

  Returns:
    An `AutoregressiveModel`.
  """
  del num_hierarchies  # One resolution stage.
  return _stacked_model(networks.GatedPixelCNNNetwork, image_shape, likelihood,
                        num_filters, num_layers, num_logistic_mix,
                        dropout_p, num_classes, channel_coupling,
                        weight_norm, dtype, seed, num_resnet)


MODELS = ("pixelcnnpp", "pixelcnn", "gated")


def build(model="pixelcnnpp", **config):
  """Builds a model by architecture name from keyword configuration.

  Args:
    model: architecture name, one of `MODELS`.
    **config: the keyword arguments of that architecture's builder.
  """
  builders = {"pixelcnnpp": PixelCNNPlusPlus, "pixelcnn": PixelCNN,
              "gated": GatedPixelCNN}
  if model not in builders:
    raise ValueError(f"unknown model {model!r}: choose one of {MODELS}")
  return builders[model](**config)
