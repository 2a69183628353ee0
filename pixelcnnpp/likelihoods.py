"""Likelihood heads: from network outputs to distributions over 0..255.

A head turns the parameters a network computes at every pixel into a
distribution over the 256 values of each sub-pixel, built from TensorFlow
Probability distributions. Two heads, chosen by name with `get_head`:

  * `mixture`: the discretized logistic mixture of PixelCNN++ (Salimans et
    al., 2017). Each channel has its own mixture of K logistics, predicted
    in parallel; with `channel_coupling=True` the mean of channel c is also
    shifted by tanh-bounded coefficients times the channels before c of the
    same pixel, as in the paper.
  * `softmax`: a 256-way categorical per sub-pixel (van den Oord et al.,
    2016).

Pixel values x in {0, ..., 255} correspond to points 2x/255 - 1 in [-1, 1],
the space in which the mixture's means and scales live; each value owns a
bin of half-width 1/255 around its point, and the two edge values own the
tails out to -inf and +inf.
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

NUM_VALUES = 256

# Log-scales are clipped to [-7, 7]. A logistic narrower than e^-7 (in the
# [-1, 1] space, about 0.1 of a grey level) gives no better likelihood but
# lets the bin probabilities underflow. One wider than e^7 is flat to within
# float32 precision over 0..255: neighbouring CDF values become equal, the
# log of their difference -inf, and its gradient NaN, which then reaches
# every weight through the mixture even when the component's weight is
# negligible.
MIN_LOG_SCALE = -7.0
MAX_LOG_SCALE = 7.0


def bits_per_dim(log_prob, num_dims):
  """Converts log-likelihoods in nats to bits per dimension.

  Args:
    log_prob: float tensor of log p(x) per image, in nats.
    num_dims: H * W * C, the number of sub-pixels of one image.

  Returns:
    -log_prob / (num_dims * ln 2), same shape as `log_prob`.
  """
  return -log_prob / (num_dims * math.log(2.0))


def scale_images(images, dtype):
  """Maps integer pixel values 0..255 to [-1, 1] in `dtype`."""
  return tf.cast(images, dtype) * (2.0 / 255.0) - 1.0


class MixtureHead:
  """Discretized logistic mixture over each sub-pixel.

  Parameter layout on the last axis, for C channels and K components:
  logits [C, K], means [C, K], log-scales [C, K], then with coupling the
  coefficients [C * (C - 1) / 2, K], ordered (1, 0), (2, 0), (2, 1), ...

  Args:
    num_channels: C.
    num_logistic_mix: K.
    channel_coupling: shift each channel's means by earlier channels.
  """

  name = "mixture"

  def __init__(self, num_channels, num_logistic_mix=5,
               channel_coupling=False):
    self.num_channels = num_channels
    self.num_logistic_mix = num_logistic_mix
    self.channel_coupling = channel_coupling and num_channels > 1
    num_pairs = num_channels * (num_channels - 1) // 2
    self.num_params = num_logistic_mix * (
        3 * num_channels + (num_pairs if self.channel_coupling else 0))

  def _split(self, params):
    """[..., P] -> logits, means, log_scales [..., C, K], coeffs [..., N, K]."""
    c, k = self.num_channels, self.num_logistic_mix
    shape = tf.shape(params)[:-1]
    per_channel = tf.reshape(params[..., :3 * c * k],
                             tf.concat([shape, [3, c, k]], 0))
    logits, means, log_scales = tf.unstack(per_channel, axis=-3)
    log_scales = tf.clip_by_value(log_scales, MIN_LOG_SCALE, MAX_LOG_SCALE)
    coeffs = None
    if self.channel_coupling:
      coeffs = tf.tanh(tf.reshape(params[..., 3 * c * k:],
                                  tf.concat([shape, [-1, k]], 0)))
    return logits, means, log_scales, coeffs

  def _coupled_means(self, means, coeffs, scaled):
    """Adds coefficient * earlier channel to each channel's means.

    Args:
      means: [..., C, K].
      coeffs: [..., C(C-1)/2, K] in (-1, 1).
      scaled: [..., C] the pixel's channels in [-1, 1].
    """
    shifted = [means[..., 0, :]]
    pair = 0
    for c in range(1, self.num_channels):
      mean = means[..., c, :]
      for earlier in range(c):
        mean += coeffs[..., pair, :] * scaled[..., earlier, None]
        pair += 1
      shifted.append(mean)
    return tf.stack(shifted, axis=-2)

  def distribution(self, logits, means, log_scales, temperature=1.0):
    """The per-sub-pixel distribution over {0..255}, batch shape [..., C].

    Args:
      logits, means, log_scales: [..., C, K], means in [-1, 1] space.
      temperature: positive float; divides the mixture logits and
        multiplies the component scales.
    """
    dtype = means.dtype
    half = tf.constant(NUM_VALUES / 2 - 0.5, dtype)
    scale = tf.exp(log_scales) * half * temperature
    # Logistic in pixel units, moved down half a level so that value x
    # owns the bin (x - 1/2, x + 1/2]: QuantizedDistribution gives value
    # y the mass of (y - 1, y], and all the mass beyond the ends to 0 and
    # 255. Its log-probability subtracts CDFs on the side of the median
    # where they are not close to 1, so that the middle bins of a narrow
    # component keep their precision.
    component = tfd.QuantizedDistribution(
        tfd.Logistic(loc=(means + 1.0) * half - 0.5, scale=scale),
        low=tf.constant(0.0, dtype),
        high=tf.constant(NUM_VALUES - 1.0, dtype))
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits / temperature), component)

  def log_prob(self, params, images):
    """Log-probabilities of every sub-pixel.

    Args:
      params: [B, H, W, P] network outputs.
      images: [B, H, W, C] integers 0..255.

    Returns:
      [B, H, W, C] log-probabilities in nats, in the dtype of `params`.
    """
    logits, means, log_scales, coeffs = self._split(params)
    values = tf.cast(images, params.dtype)
    if coeffs is not None:
      means = self._coupled_means(means, coeffs,
                                  scale_images(images, params.dtype))
    dist = self.distribution(logits, means, log_scales)
    return dist.log_prob(values)

  def sample(self, params, seed, temperature=1.0):
    """Draws every sub-pixel of the given positions.

    The draws are those of `distribution(...).sample()` in law, made
    directly: a component by the Gumbel-max trick, a logistic value by its
    inverse CDF, then the bin it falls in. That is a few operations where
    the distribution objects take dozens, which matters when the fast
    sampler draws one pixel per step.

    Args:
      params: [..., P].
      seed: stateless seed, int32 [2].
      temperature: positive float.

    Returns:
      int32 [..., C] values in 0..255.
    """
    logits, means, log_scales, coeffs = self._split(params)
    if coeffs is None:
      return self._draw(logits, means, log_scales, seed, temperature)

    # Coupled channels are drawn in order, each one's means moved by the
    # channels already drawn.
    values = []
    seeds = tf.random.experimental.stateless_split(seed, self.num_channels)
    for c in range(self.num_channels):
      mean = means[..., c, :]
      pair = c * (c - 1) // 2
      for earlier in range(c):
        scaled = scale_images(values[earlier], params.dtype)
        mean += coeffs[..., pair + earlier, :] * scaled[..., None]
      values.append(self._draw(logits[..., c, :], mean,
                               log_scales[..., c, :], seeds[c],
                               temperature))
    return tf.stack(values, axis=-1)

  @staticmethod
  def _draw(logits, means, log_scales, seed, temperature):
    """One value per mixture, [..., K] parameters -> int32 [...]."""
    component_seed, value_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    dtype = means.dtype
    tiny = _tiny(dtype)
    uniform = tf.random.stateless_uniform(tf.shape(logits), component_seed,
                                          tiny, 1 - tiny, dtype)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    component = tf.argmax(logits / temperature + gumbel, axis=-1)
    mean = tf.gather(means, component, batch_dims=len(means.shape) - 1)
    log_scale = tf.gather(log_scales, component,
                          batch_dims=len(means.shape) - 1)

    uniform = tf.random.stateless_uniform(tf.shape(mean), value_seed, tiny,
                                          1 - tiny, dtype)
    value = mean + tf.exp(log_scale) * temperature * (
        tf.math.log(uniform) - tf.math.log1p(-uniform))
    pixel = tf.round((value + 1.0) * (NUM_VALUES / 2 - 0.5))
    return tf.cast(tf.clip_by_value(pixel, 0, NUM_VALUES - 1), tf.int32)


class SoftmaxHead:
  """A 256-way categorical over each sub-pixel.

  Parameter layout on the last axis: logits [C, 256].
  """

  name = "softmax"

  def __init__(self, num_channels):
    self.num_channels = num_channels
    self.num_params = NUM_VALUES * num_channels

  def _logits(self, params):
    shape = tf.shape(params)[:-1]
    return tf.reshape(
        params, tf.concat([shape, [self.num_channels, NUM_VALUES]], 0))

  def distribution(self, params, temperature=1.0):
    """Categorical with batch shape [..., C] over {0..255}."""
    return tfd.Categorical(logits=self._logits(params) / temperature)

  def log_prob(self, params, images):
    """[B, H, W, P], [B, H, W, C] ints -> [B, H, W, C] log-probs in nats."""
    return self.distribution(params).log_prob(tf.cast(images, tf.int32))

  def sample(self, params, seed, temperature=1.0):
    """[..., P] -> int32 [..., C] in 0..255, by the Gumbel-max trick."""
    logits = self._logits(params)
    tiny = _tiny(logits.dtype)
    uniform = tf.random.stateless_uniform(tf.shape(logits), seed, tiny,
                                          1 - tiny, logits.dtype)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.cast(tf.argmax(logits / temperature + gumbel, axis=-1),
                   tf.int32)


def _tiny(dtype):
  """Uniform draws are kept in [tiny, 1 - tiny] so that logs stay finite;
  the mass cut off, 2e-7 in float32, is below anything a sample shows."""
  return tf.constant(1e-7 if dtype == tf.float32 else 1e-12, dtype)


HEADS = ("mixture", "softmax")


def get_head(name, num_channels, num_logistic_mix=5,
             channel_coupling=False):
  """Builds the head called `name` ("mixture" or "softmax")."""
  if name == "mixture":
    return MixtureHead(num_channels, num_logistic_mix, channel_coupling)
  if name == "softmax":
    if channel_coupling:
      raise ValueError("channel_coupling applies to the mixture head only; "
                       "drop it or use likelihood='mixture'")
    return SoftmaxHead(num_channels)
  raise ValueError(f"unknown likelihood {name!r}: choose one of {HEADS}")
