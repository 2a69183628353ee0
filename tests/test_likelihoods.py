"""Likelihood heads: normalised, finite, pinned to known values.

The mixture head is also compared with a reference written here in NumPy
from the formulas of Salimans et al. (2017), in a numerically stable form,
with and without channel coupling; with coupling, the joint distribution
of a two-channel pixel is summed over all 65,536 values.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import likelihoods

HEADS = ("mixture", "softmax")
DTYPES = {"float32": tf.float32, "float64": tf.float64}


def make_head(name, channels=3, num_mix=4, channel_coupling=False):
  return likelihoods.get_head(name, channels, num_mix, channel_coupling)


def extreme_mixture_params(head, num, seed=0):
  """[num, P] mixture parameters, many of them extreme.

  Logits up to +-30, means from -1e30 to 1e30 (far outside [-1, 1]; from
  about 1.5e5 out, two neighbouring bin edges round to the same distance
  from an unclipped float32 mean) and
  log-scales from -20 (clipped to -7) through -7 and 0 to +7, mixed with
  ordinary values; coupling parameters up to +-20 (tanh near +-1).
  """
  rng = np.random.default_rng(seed)
  channels, num_mix = head.num_channels, head.num_logistic_mix
  size = (num, channels, num_mix)
  # Coupled channels share one set of mixture logits.
  logits = rng.choice([-30.0, -3.0, 0.0, 1.0, 30.0],
                      (num, num_mix) if head.channel_coupling else size)
  means = rng.choice([-1e30, -2e5, -50.0, -3.0, -1.0, -0.2, 0.0, 0.5, 1.0,
                      3.0, 50.0, 2e5, 1e30],
                     size) + rng.uniform(-0.01, 0.01, size)
  log_scales = rng.choice([-20.0, -7.0, -6.5, -3.0, 0.0, 2.0, 7.0], size)
  params = [logits.reshape(num, -1), means.reshape(num, -1),
            log_scales.reshape(num, -1)]
  if head.channel_coupling:
    num_pairs = channels * (channels - 1) // 2
    params.append(rng.choice([-20.0, -1.0, 0.0, 0.7, 20.0],
                             (num, num_pairs * num_mix)))
  return np.concatenate(params, axis=-1)


def extreme_softmax_params(head, num, seed=0):
  """[num, P] logits: ordinary, spread over +-1e4, or one-hot-like."""
  rng = np.random.default_rng(seed)
  params = rng.normal(size=(num, head.num_params))
  params[: num // 3] *= 1e4
  params[num // 3: 2 * num // 3] = -1e3
  for n in range(num // 3, 2 * num // 3):
    params[n, rng.integers(head.num_params)] = 1e3
  return params


def extreme_params(head, num, seed=0):
  if head.name == "mixture":
    return extreme_mixture_params(head, num, seed)
  return extreme_softmax_params(head, num, seed)


def log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def reference_log_bins(pixel, means, log_scales):
  """log L(pixel; mean, scale) of a discretized logistic, NumPy.

  Args:
    pixel: an integer 0..255.
    means, log_scales: [K], means in [-1, 1] space.

  Returns:
    [K] log-probabilities of `pixel` under each logistic.
  """
  scaled = 2.0 * pixel / 255.0 - 1.0
  inv_scale = np.exp(-np.maximum(log_scales, -7.0))
  upper = (scaled - means + 1.0 / 255.0) * inv_scale
  lower = (scaled - means - 1.0 / 255.0) * inv_scale
  if pixel == 0:
    return log_sigmoid(upper)
  if pixel == 255:
    return log_sigmoid(-lower)
  # sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - e^(l - u)).
  return (log_sigmoid(upper) + log_sigmoid(-lower)
          + np.log(-np.expm1(lower - upper)))


def reference_log_prob(logits, means, log_scales, pixel):
  """log p of each channel of one pixel, one mixture each, NumPy.

  Args:
    logits, means, log_scales: [C, K]; means in [-1, 1] space.
    pixel: [C] integers 0..255.

  Returns:
    [C] log-probabilities of the channels, independent of each other.
  """
  result = []
  for c, value in enumerate(pixel):
    log_weights = logits[c] - np.logaddexp.reduce(logits[c])
    result.append(np.logaddexp.reduce(
        log_weights + reference_log_bins(value, means[c], log_scales[c])))
  return np.array(result)


def reference_coupled_log_prob(logits, means, log_scales, coeffs, pixel):
  """log p of one pixel under the paper's coupled mixture, NumPy.

  Straight from the formula: log p(x_<=c) = logsumexp_k [log pi_k + sum
  over c' <= c of log L(x_c'; mean_c',k + sum over e < c' of
  coeff_(c',e),k * x_e, scale_c',k)], with x in [-1, 1] space, and the
  chain rule log p(x_c | x_<c) = log p(x_<=c) - log p(x_<c).

  Args:
    logits: [K].
    means, log_scales: [C, K]; means in [-1, 1] space.
    coeffs: [C (C - 1) / 2, K] after tanh, pairs (1, 0), (2, 0), (2, 1).
    pixel: [C] integers 0..255.

  Returns:
    [C] log p(x_c | x_<c), and the joint log p(x).
  """
  scaled = 2.0 * np.asarray(pixel, np.float64) / 255.0 - 1.0
  prefix = np.asarray(logits) - np.logaddexp.reduce(logits)
  joints = [0.0]
  pair = 0
  for c, value in enumerate(pixel):
    mean = means[c].copy()
    for earlier in range(c):
      mean += coeffs[pair] * scaled[earlier]
      pair += 1
    prefix = prefix + reference_log_bins(value, mean, log_scales[c])
    joints.append(np.logaddexp.reduce(prefix))
  return np.diff(joints), joints[-1]


def head_log_prob(head, params, pixels, dtype=tf.float64):
  """log p per sub-pixel of N single pixels: params [N, P], pixels [N, C]."""
  params = tf.constant(np.asarray(params)[:, None, None, :], dtype)
  pixels = tf.constant(np.asarray(pixels)[:, None, None, :], tf.int32)
  return head.log_prob(params, pixels).numpy()[:, 0, 0, :]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,channel_coupling", [
    ("mixture", False), ("mixture", True), ("softmax", False)])
def test_probabilities_of_256_values_sum_to_one(name, channel_coupling,
                                                dtype):
  """The 256 probabilities of a sub-pixel sum to 1, for any parameters.

  Extreme and ordinary parameters alike, for every channel, with the other
  channels of the pixel held at random values (with coupling they shift
  the means): to 1e-6 in float64 and 1e-5 in float32.
  """
  head = make_head(name, channel_coupling=channel_coupling)
  num = 64
  params = extreme_params(head, num)
  rng = np.random.default_rng(1)
  context = rng.integers(0, 256, (num, head.num_channels))

  for c in range(head.num_channels):
    pixels = np.repeat(context[None], 256, 0)
    pixels[..., c] = np.arange(256)[:, None]
    log_probs = head_log_prob(
        head, np.tile(params, [256, 1]), pixels.reshape(-1, head.num_channels),
        DTYPES[dtype]).reshape(256, num, -1)[..., c]
    totals = np.exp(log_probs.astype(np.float64)).sum(axis=0)
    np.testing.assert_allclose(
        totals, 1.0, rtol=0, atol=1e-6 if dtype == "float64" else 1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,channel_coupling", [
    ("mixture", False), ("mixture", True), ("softmax", False)])
def test_extreme_params_give_finite_loss_and_gradients(name,
                                                       channel_coupling,
                                                       dtype):
  """Loss and its gradient are finite for extreme parameters.

  Log-scales -20 (clipped), -7 and +7, means at +-50, large logits, at
  pixel values 0, 1, 127, 128, 254, 255 and random ones.
  """
  head = make_head(name, channel_coupling=channel_coupling)
  num = 96
  params = tf.constant(extreme_params(head, num, seed=2)[:, None, None, :],
                       DTYPES[dtype])
  rng = np.random.default_rng(2)
  pixels = rng.choice([0, 1, 127, 128, 254, 255, rng.integers(256)],
                      (num, 1, 1, 3))

  with tf.GradientTape() as tape:
    tape.watch(params)
    loss = -tf.reduce_mean(head.log_prob(params, pixels))
  grads = tape.gradient(loss, params)

  assert np.isfinite(loss.numpy())
  assert np.all(np.isfinite(grads.numpy()))


@pytest.mark.parametrize("value", [0, 255])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("likelihood", HEADS)
def test_constant_images_batch_of_one_give_finite_loss_and_gradients(
    build_model, likelihood, dtype, value):
  """All-0 and all-255 images, batch of one: finite loss and gradients.

  In training mode, for a fresh model and after data-dependent
  initialisation on that same single constant image; every trainable
  variable gets a gradient.
  """
  shape = (6, 7, 3)
  model = build_model(shape, likelihood=likelihood, num_filters=4,
                      dtype=DTYPES[dtype], seed=3)
  images = np.full((1,) + shape, value, np.int32)

  for step in ("fresh", "initialized"):
    if step == "initialized":
      model.initialize(images)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.log_prob(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)

    assert np.isfinite(loss.numpy()), step
    assert all(g is not None for g in grads), step
    assert all(np.all(np.isfinite(g.numpy())) for g in grads), step


def one_logistic(mean, log_scale, num_mix=1, logits=None):
  """Parameters [1, 3K] of one grey channel: K copies of one logistic."""
  logits = np.zeros(num_mix) if logits is None else np.asarray(logits)
  return np.concatenate([logits, np.full(num_mix, mean),
                         np.full(num_mix, log_scale)])[None]


@pytest.mark.parametrize("mean,log_scale,pixel,expected", [
    (0.0, 0.0, 0, -1.310396),
    (0.0, 0.0, 255, -1.310396),
    (0.0, 0.0, 128, -6.234416),
    (0.1, -2.0, 100, -5.365901),
])
def test_pinned_values_of_one_logistic(mean, log_scale, pixel, expected):
  """log p under one logistic with bins of half-width 1/255 on [-1, 1]."""
  head = likelihoods.MixtureHead(1, 1)

  got = head_log_prob(head, one_logistic(mean, log_scale), [[pixel]])

  np.testing.assert_allclose(got[0, 0], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("logits", [[0.0, 0.0, 0.0], [1.0, -2.0, 5.0]])
@pytest.mark.parametrize("pixel", [0, 100, 128, 255])
def test_three_identical_components_equal_one(logits, pixel):
  """A mixture of three copies of a logistic gives log p of one copy.

  Not three times it, whatever the mixture weights.
  """
  one = likelihoods.MixtureHead(1, 1)
  three = likelihoods.MixtureHead(1, 3)

  single = head_log_prob(one, one_logistic(0.1, -2.0), [[pixel]])
  triple = head_log_prob(three, one_logistic(0.1, -2.0, 3, logits),
                         [[pixel]])

  np.testing.assert_allclose(triple, single, rtol=1e-13)


def random_mixture(num, channels, num_mix, channel_coupling, seed):
  """Random logits, means in [-1.5, 1.5], log-scales in [-7, 1] and
  coefficients, as a dict of arrays [num, ...] and as head parameters
  [num, P] in the head's layout."""
  rng = np.random.default_rng(seed)
  num_pairs = channels * (channels - 1) // 2
  mixture = dict(
      logits=rng.normal(0, 2, (num, num_mix) if channel_coupling
                        else (num, channels, num_mix)),
      means=rng.uniform(-1.5, 1.5, (num, channels, num_mix)),
      log_scales=rng.uniform(-7, 1, (num, channels, num_mix)))
  if channel_coupling:
    mixture["raw_coeffs"] = rng.normal(0, 1, (num, num_pairs, num_mix))
  params = np.concatenate([v.reshape(num, -1) for v in mixture.values()],
                          axis=-1)
  return mixture, params


def test_mixture_matches_numpy_reference():
  """The uncoupled head agrees with the NumPy reference to 1e-9.

  At random pixels and at the edge values 0 and 255.
  """
  channels, num_mix, num = 3, 4, 200
  head = likelihoods.MixtureHead(channels, num_mix)
  mixture, params = random_mixture(num, channels, num_mix, False, seed=4)
  rng = np.random.default_rng(4)
  pixels = rng.integers(0, 256, (num, channels))
  pixels[:20] = rng.choice([0, 255], (20, channels))

  got = head_log_prob(head, params, pixels)

  expected = np.stack([
      reference_log_prob(mixture["logits"][n], mixture["means"][n],
                         mixture["log_scales"][n], pixels[n])
      for n in range(num)])
  np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("channels", [2, 3])
def test_coupled_mixture_matches_the_papers_formula(channels):
  """The coupled head against the paper's joint, computed by brute force.

  Each entry is log p(x_<=c) - log p(x_<c) of the reference, and their
  sum its joint, to 1e-9. Pixels are random, at the edge values, or
  drawn near a component's coupled means so that the likely region is
  covered as well as the tails.
  """
  num_mix, num = 4, 300
  head = likelihoods.MixtureHead(channels, num_mix, channel_coupling=True)
  mixture, params = random_mixture(num, channels, num_mix, True, seed=14)
  coeffs = np.tanh(mixture["raw_coeffs"])
  rng = np.random.default_rng(14)
  pixels = rng.integers(0, 256, (num, channels))
  pixels[:20] = rng.choice([0, 255], (20, channels))
  for n in range(20, 150):
    k, pair = rng.integers(num_mix), 0
    for c in range(channels):
      mean = mixture["means"][n, c, k]
      for earlier in range(c):
        mean += coeffs[n, pair, k] * (2 * pixels[n, earlier] / 255 - 1)
        pair += 1
      level = (mean + 1) * 127.5 + rng.normal(0, 2)
      pixels[n, c] = np.clip(np.round(level), 0, 255)

  got = head_log_prob(head, params, pixels)

  conditionals, joints = zip(*[
      reference_coupled_log_prob(mixture["logits"][n], mixture["means"][n],
                                 mixture["log_scales"][n], coeffs[n],
                                 pixels[n]) for n in range(num)])
  np.testing.assert_allclose(got, np.stack(conditionals), rtol=1e-9,
                             atol=1e-9)
  np.testing.assert_allclose(got.sum(axis=-1), joints, rtol=1e-9, atol=1e-9)
  # The likely pixels are likely: the test covers more than far tails.
  assert np.median(got[20:150].sum(axis=-1)) > -15


@pytest.mark.parametrize("params_kind", ["random", "extreme"])
def test_coupled_joint_over_all_pixels_sums_to_one(params_kind):
  """Two coupled channels: the 256 x 256 joint probabilities sum to 1.

  The joint of a pixel is exp of the sum of its channels' entries; in
  float64, to 1e-6, for random and for extreme parameters (log-scales
  -20 to +7, means at +-50, logits at +-30, tanh near +-1).
  """
  num_mix, num = 3, 6
  head = likelihoods.MixtureHead(2, num_mix, channel_coupling=True)
  if params_kind == "random":
    _, params = random_mixture(num, 2, num_mix, True, seed=15)
  else:
    params = extreme_mixture_params(head, num, seed=15)
  first, second = np.meshgrid(np.arange(256), np.arange(256),
                              indexing="ij")
  pixels = np.stack([first.ravel(), second.ravel()], axis=-1)

  for n in range(num):
    log_probs = head_log_prob(head, np.tile(params[n], (len(pixels), 1)),
                              pixels)
    total = np.exp(log_probs.sum(axis=-1)).sum()
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)


def test_coupled_single_component_without_coefficients_is_uncoupled():
  """One component and zero coefficients: the channels are independent.

  Then the coupled head is the uncoupled one with the same means and
  scales, channel by channel, bit for bit.
  """
  channels, num = 3, 100
  coupled = likelihoods.MixtureHead(channels, 1, channel_coupling=True)
  uncoupled = likelihoods.MixtureHead(channels, 1)
  rng = np.random.default_rng(16)
  means = rng.uniform(-1, 1, (num, channels))
  log_scales = rng.uniform(-5, 0, (num, channels))
  pixels = rng.integers(0, 256, (num, channels))
  coupled_params = np.concatenate(
      [rng.normal(size=(num, 1)), means, log_scales,
       np.zeros((num, 3))], axis=-1)
  uncoupled_params = np.concatenate(
      [rng.normal(size=(num, channels)), means, log_scales], axis=-1)

  np.testing.assert_array_equal(
      head_log_prob(coupled, coupled_params, pixels),
      head_log_prob(uncoupled, uncoupled_params, pixels))


def test_softmax_matches_log_softmax():
  """The softmax head gives log_softmax(logits)[value] per channel."""
  head = likelihoods.SoftmaxHead(3)
  rng = np.random.default_rng(5)
  logits = rng.normal(0, 3, (50, 3, 256))
  pixels = rng.integers(0, 256, (50, 3))

  got = head_log_prob(head, logits.reshape(50, -1), pixels)

  log_softmax = logits - np.logaddexp.reduce(logits, -1, keepdims=True)
  expected = np.take_along_axis(log_softmax, pixels[..., None], -1)[..., 0]
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_bits_per_dim_formula():
  """bits/dim = -log p / (H W C ln 2), log p in nats, per image."""
  log_prob = tf.constant([-1000.0, -1.0, 0.0], tf.float64)

  got = likelihoods.bits_per_dim(log_prob, 28 * 28 * 3)

  np.testing.assert_allclose(
      got.numpy(), [1000.0 / (2352 * math.log(2)), 1 / (2352 * math.log(2)),
                    0.0], rtol=1e-15)


@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 5, 3), (28, 28, 1)])
def test_uniform_softmax_gives_8_bits_per_dim(shape):
  """A softmax head with zero logits, uniform over 256 levels: 8 bits/dim."""
  head = likelihoods.SoftmaxHead(shape[-1])
  params = tf.zeros((2,) + shape[:2] + (head.num_params,), tf.float64)
  images = np.random.default_rng(6).integers(0, 256, (2,) + shape)

  log_prob = tf.reduce_sum(head.log_prob(params, images), axis=[1, 2, 3])
  got = likelihoods.bits_per_dim(log_prob, int(np.prod(shape))).numpy()

  np.testing.assert_allclose(got, 8.0, rtol=0, atol=1e-12)


def test_uniform_model_gives_8_bits_per_dim(build_model):
  """A PixelCNN++ whose output layer is zero is uniform: 8.000 bits/dim."""
  shape = (5, 6, 3)
  model = build_model(shape, likelihood="softmax", num_filters=4, seed=7)
  model.network.output_layer.g.assign(
      tf.zeros_like(model.network.output_layer.g))
  images = np.random.default_rng(7).integers(0, 256, (3,) + shape)

  got = model.bits_per_dim(images).numpy()

  np.testing.assert_allclose(got, 8.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("likelihood", HEADS)
def test_model_bits_per_dim_is_scaled_negative_log_prob(cached_model,
                                                        likelihood):
  """model.bits_per_dim equals -model.log_prob / (H W C ln 2)."""
  shape = (5, 6, 3)
  model = cached_model(shape, likelihood=likelihood)
  images = np.random.default_rng(8).integers(0, 256, (4,) + shape)

  nats = model.log_prob(images).numpy()
  bits = model.bits_per_dim(images).numpy()

  np.testing.assert_allclose(bits, -nats / (90 * math.log(2)), rtol=1e-14)
  assert np.all(bits > 0)
