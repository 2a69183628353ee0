"""Likelihood heads: from network outputs to distributions over 0..255.

A head turns the parameters a network computes at every pixel into a
distribution over the 256 values of each sub-pixel, built from TensorFlow
Probability distributions. Two heads, chosen by name with `get_head`:

  * `mixture`: the discretized logistic mixture of PixelCNN++ (Salimans et
    al., 2017). By default each channel has its own mixture of K
    logistics, predicted in parallel. With `channel_coupling=True` it is
    the paper's model: one mixture over whole pixels, its component
    shared by the channels of a pixel, and the mean of channel c shifted
    by tanh-bounded coefficients times the channels before c.
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
# Means are clipped to +-MAX_MEAN (in the [-1, 1] space of the data): a
# mean further out in float32 leaves two neighbouring bin edges at the
# same distance from it after rounding, so a bin's probability would be
# exactly 0 and its gradient NaN. At this bound the edges are still 1/128
# of a level apart in float32.
MAX_MEAN = 1000.0


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
  """Discretized logistic mixture over each sub-pixel, or each pixel.

  Without coupling, each of the C channels has its own mixture of K
  logistics, all predicted in parallel. With coupling, as in Salimans et
  al. (2017), one mixture indicator k is shared by the channels of a
  pixel, and channel c's mean in component k is shifted by tanh-bounded
  coefficients times the channels before it (scaled to [-1, 1]):

    mu_c,k(x) = m_c,k + sum over e < c of a_(c,e),k * x_e,
    log p(x) = logsumexp_k [log pi_k + sum_c log L(x_c; mu_c,k, s_c,k)],

  with pi = softmax(logits) and L the discretized logistic. `log_prob`
  splits that joint by the chain rule into one term per channel,
  log p(x_c | x_<c): a mixture of the components' channel-c terms, each
  weighted by pi_k times how well component k explains the channels
  before c.

  Parameter layout on the last axis, for C channels and K components:
    * uncoupled, 3 C K values: logits [C, K], means [C, K], log-scales
      [C, K];
    * coupled, K (1 + 2 C + C (C - 1) / 2) values (10 K for RGB): logits
      [K], means [C, K], log-scales [C, K], coefficients [C (C - 1) / 2,
      K] for the channel pairs (1, 0), (2, 0), (2, 1), ...
  Means and scales live in the [-1, 1] space of `scale_images`; the
  coefficients pass through tanh. Coupling a single channel changes
  nothing, so a grayscale head ignores it.

  Note: coupling is off by default, and then the channels of a pixel are
  independent given the pixels before it, which in the paper they are
  not.

  Args:
    num_channels: C.
    num_logistic_mix: K.
    channel_coupling: one mixture indicator per pixel, each channel's
      means shifted by the channels before it.
  """

  name = "mixture"

  def __init__(self, num_channels, num_logistic_mix=5,
               channel_coupling=False):
    if num_logistic_mix < 1:
      raise ValueError(f"num_logistic_mix must be at least 1, not "
                       f"{num_logistic_mix}")
    self.num_channels = num_channels
    self.num_logistic_mix = num_logistic_mix
    self.channel_coupling = channel_coupling and num_channels > 1
    if self.channel_coupling:
      num_pairs = num_channels * (num_channels - 1) // 2
      self.num_params = num_logistic_mix * (1 + 2 * num_channels + num_pairs)
    else:
      self.num_params = num_logistic_mix * 3 * num_channels

  def _split(self, params):
    """Reads the parameter layout.

    Args:
      params: [..., P].

    Returns:
      logits, [..., C, K] uncoupled or [..., K] coupled; means and
      log-scales [..., C, K], both clipped; coefficients
      [..., C (C - 1) / 2, K] in (-1, 1), or None without coupling.
    """
    c, k = self.num_channels, self.num_logistic_mix
    shape = tf.shape(params)[:-1]
    num_logits = k if self.channel_coupling else c * k
    logits = params[..., :num_logits]
    if not self.channel_coupling:
      logits = tf.reshape(logits, tf.concat([shape, [c, k]], 0))
    means, log_scales = tf.unstack(
        tf.reshape(params[..., num_logits:num_logits + 2 * c * k],
                   tf.concat([shape, [2, c, k]], 0)), axis=-3)
    means = tf.clip_by_value(means, -MAX_MEAN, MAX_MEAN)
    log_scales = tf.clip_by_value(log_scales, MIN_LOG_SCALE, MAX_LOG_SCALE)
    coeffs = None
    if self.channel_coupling:
      coeffs = tf.tanh(tf.reshape(params[..., num_logits + 2 * c * k:],
                                  tf.concat([shape, [-1, k]], 0)))
    return logits, means, log_scales, coeffs

  def _coupled_means(self, means, coeffs, scaled):
    """Adds coefficient * earlier channel to each channel's means.

    Args:
      means: [..., C, K].
      coeffs: [..., C(C-1)/2, K] in (-1, 1).
      scaled: [..., C] the pixel's channels in [-1, 1].

    Returns:
      [..., C, K].
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

  @staticmethod
  def components(means, log_scales, temperature=1.0):
    """The mixture components: discretized logistics over {0..255}.

    Args:
      means, log_scales: [...] (any shape, the same), means in the
        [-1, 1] space.
      temperature: positive float; multiplies the scales.

    Returns:
      A distribution with batch shape [...].
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
    return tfd.QuantizedDistribution(
        tfd.Logistic(loc=(means + 1.0) * half - 0.5, scale=scale),
        low=tf.constant(0.0, dtype),
        high=tf.constant(NUM_VALUES - 1.0, dtype))

  def distribution(self, logits, means, log_scales, temperature=1.0):
    """The uncoupled head's distribution over {0..255}, batch shape [..., C].

    Coupled channels are not independent given the parameters, so they
    have no such per-sub-pixel distribution; `log_prob` and `sample`
    handle them.

    Args:
      logits, means, log_scales: [..., C, K], means in [-1, 1] space.
      temperature: positive float; divides the mixture logits and
        multiplies the component scales.
    """
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits / temperature),
        self.components(means, log_scales, temperature))

  def log_prob(self, params, images):
    """Log-probabilities of every sub-pixel.

    With coupling, entry c is log p(x_c | x_<c) at each pixel, so that the
    sum over channels is the joint log p(x) of the pixel.

    Args:
      params: [B, H, W, P] network outputs.
      images: [B, H, W, C] integers 0..255.

    Returns:
      [B, H, W, C] log-probabilities in nats, in the dtype of `params`.
    """
    logits, means, log_scales, coeffs = self._split(params)
    if coeffs is None:
      return self.distribution(logits, means, log_scales).log_prob(
          tf.cast(images, params.dtype))

    per_component = self._component_log_prob(means, log_scales, coeffs,
                                              images)
    # Channel c is a mixture of the components' channel-c terms with the
    # posterior weights p(k | x_<c), proportional to pi_k times the
    # earlier channels' terms. The C entries then telescope to the joint,
    # and each is normalised over x_c to rounding even where x_<c is very
    # unlikely, where the difference of two joint logsumexps, which it
    # equals, would cancel catastrophically.
    posterior = tf.nn.log_softmax(
        logits[..., None, :]
        + tf.math.cumsum(per_component, axis=-2, exclusive=True), axis=-1)
    return tf.reduce_logsumexp(posterior + per_component, axis=-1)

  def component_log_prob(self, params, images):
    """log p(x_c | k, x_<c) of every channel under every component.

    The discretized logistic of component k for channel c, its mean moved
    by the channels before c where the head couples them.

    Args:
      params: [B, H, W, P] network outputs.
      images: [B, H, W, C] integers 0..255.

    Returns:
      [B, H, W, C, K] log-probabilities in nats, in the dtype of `params`.
    """
    _, means, log_scales, coeffs = self._split(params)
    return self._component_log_prob(means, log_scales, coeffs, images)

  def _component_log_prob(self, means, log_scales, coeffs, images):
    """`component_log_prob` from split parameters; coeffs may be None."""
    if coeffs is not None:
      means = self._coupled_means(means, coeffs,
                                  scale_images(images, means.dtype))
    values = tf.cast(images, means.dtype)[..., None]
    return self.components(means, log_scales).log_prob(values)

  def sample(self, params, seed, temperature=1.0):
    """Draws every sub-pixel of the given positions.

    The draws follow the law of `log_prob`, made directly: a component
    by the Gumbel-max trick, a logistic value by its inverse CDF, then the
    bin it falls in. That is a few operations where the distribution
    objects take dozens, which matters when the fast sampler draws one
    pixel per step. With coupling, one component is drawn for the whole
    pixel, then its channels in order, each one's mean moved by the
    levels already drawn.

    Note: the code of Salimans et al. moves the later channels' means by
    the earlier channels' continuous logistic draws, before rounding them
    to levels, which samples a slightly different law from the one
    trained; here they move by the drawn levels, as in `log_prob`.

    Args:
      params: [..., P].
      seed: stateless seed, int32 [2].
      temperature: positive float; divides the mixture logits and
        multiplies the component scales (the coefficients stay).

    Returns:
      int32 [..., C] values in 0..255.
    """
    logits, means, log_scales, coeffs = self._split(params)
    if coeffs is None:
      return self._draw(logits, means, log_scales, seed, temperature)

    # One component for the whole pixel: [...] -> its parameters [..., C]
    # and [..., C(C-1)/2].
    component_seed, value_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    component = _gumbel_max(logits, component_seed, temperature)
    batch_dims = len(logits.shape) - 1

    def chosen(x):
      return tf.gather(x, component[..., None], axis=batch_dims + 1,
                       batch_dims=batch_dims)[..., 0]

    means = chosen(means)
    log_scales = chosen(log_scales)
    coeffs = chosen(coeffs)

    uniform = _uniform(tf.shape(means), value_seed, means.dtype)
    values = []
    pair = 0
    for c in range(self.num_channels):
      mean = means[..., c]
      for earlier in range(c):
        mean += coeffs[..., pair] * scale_images(values[earlier],
                                                 params.dtype)
        pair += 1
      values.append(_to_level(_logistic_value(
          mean, log_scales[..., c], uniform[..., c], temperature)))
    return tf.stack(values, axis=-1)

  @staticmethod
  def _draw(logits, means, log_scales, seed, temperature):
    """One value per mixture, [..., K] parameters -> int32 [...]."""
    component_seed, value_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    component = _gumbel_max(logits, component_seed, temperature)
    mean = tf.gather(means, component, batch_dims=len(means.shape) - 1)
    log_scale = tf.gather(log_scales, component,
                          batch_dims=len(means.shape) - 1)

    uniform = _uniform(tf.shape(mean), value_seed, means.dtype)
    return _to_level(_logistic_value(mean, log_scale, uniform, temperature))


def _uniform(shape, seed, dtype):
  """Uniform draws in [tiny, 1 - tiny], whose logs stay finite."""
  tiny = _tiny(dtype)
  return tf.random.stateless_uniform(shape, seed, tiny, 1 - tiny, dtype)


def _gumbel_max(logits, seed, temperature):
  """A draw of the categorical with logits / temperature over the last
  axis: int64 [...] from [..., K]."""
  gumbel = -tf.math.log(-tf.math.log(_uniform(tf.shape(logits), seed,
                                              logits.dtype)))
  return tf.argmax(logits / temperature + gumbel, axis=-1)


def _logistic_value(mean, log_scale, uniform, temperature):
  """The logistic's inverse CDF at `uniform`, scale times temperature."""
  return mean + tf.exp(log_scale) * temperature * (
      tf.math.log(uniform) - tf.math.log1p(-uniform))


def _to_level(value):
  """A value in the [-1, 1] space -> the int32 level 0..255 of its bin."""
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
    return tf.cast(_gumbel_max(self._logits(params), seed, temperature),
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
