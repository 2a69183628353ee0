"""Sampling: fast equals reference, replay, temperature, conditioning.

Checks 15 to 18 of the project's list. The models are tiny (4 filters)
and run in float64 on the CPU. There the fast sampler (row by row, from
caches) and the reference sampler (one full pass per pixel) compute each
pixel's parameters to within about 1e-14 of each other, far too little to
move a draw across the edge of a bin, so from the same seed they must draw
exactly the same images.

The likelihood heads' samplers are checked on their own against the heads'
`log_prob`, which is built from TensorFlow Probability distributions: the
samplers draw directly (Gumbel-max for a component or a softmax value,
inverse CDF for a logistic), so that check is what ties the images drawn to
the model whose likelihood is trained.

Sampling traces one `tf.function` per model and method; the models and
their samples are therefore built once per module and shared by the tests.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from pixelcnnpp import likelihoods

# Images per sampler call. One batch size for every call keeps each model
# at one trace per method. The conditional models have 3 classes.
NUM = 3
LABELS = np.arange(NUM)

# Name -> keyword arguments of `build_model` (float64, 4 filters). Every
# configuration is sampled with both methods. Both heads at each size; the
# fast sampler's trace is what costs time, so there are no more of them.
CONFIGS = {
    "7x9-3stages-mixture": dict(image_shape=(7, 9, 1), num_hierarchies=3),
    "7x9-3stages-softmax": dict(image_shape=(7, 9, 1), num_hierarchies=3,
                                likelihood="softmax"),
    "8x8-2stages-mixture-classes": dict(image_shape=(8, 8, 1),
                                        num_classes=3),
    "8x8-2stages-softmax-classes": dict(image_shape=(8, 8, 1),
                                        likelihood="softmax", num_classes=3),
    "5x6x3-1stage-softmax": dict(image_shape=(5, 6, 3), num_hierarchies=1,
                                 likelihood="softmax"),
    "5x6x3-2stages-mixture-coupled": dict(image_shape=(5, 6, 3),
                                          channel_coupling=True),
}
METHODS = ("fast", "reference")

# Completion runs: a random prefix kept up to the middle of the third row,
# so that the first row drawn starts part way through.
PREFIX_CONFIGS = ("7x9-3stages-mixture", "8x8-2stages-softmax-classes",
                  "5x6x3-2stages-mixture-coupled")


def prefix_length(model):
  return 2 * model.image_shape[1] + 3


class Samples:
  """The test models, and their samples, each made on first use."""

  def __init__(self, build_model, random_images):
    self._build_model = build_model
    self._random_images = random_images
    self._models = {}
    self._draws = {}

  def model(self, name):
    """The float64 model `name` of CONFIGS, initialised on random images."""
    if name not in self._models:
      config = dict(CONFIGS[name])
      shape = config.pop("image_shape")
      model = self._build_model(shape, num_filters=4, **config)
      model.initialize(self._random_images(8, shape, seed=1),
                       self.labels(model, 8))
      self._models[name] = model
    return self._models[name]

  @staticmethod
  def labels(model, num=NUM):
    """Integer labels 0, 1, 2, 0, ... for a conditional model, else None."""
    return np.arange(num) % 3 if model.num_classes else None

  def prefix(self, name):
    """uint8 [NUM, H, W, C] random images to complete."""
    shape = self.model(name).image_shape
    return self._random_images(NUM, shape, seed=2).astype(np.uint8)

  def draw(self, name, method, seed=7, temperature=1.0, completion=False):
    """(images, params) as numpy arrays, from `model.sample`."""
    key = (name, method, seed, temperature, completion)
    if key not in self._draws:
      model = self.model(name)
      extra = {}
      if completion:
        extra = dict(prefix=self.prefix(name),
                     prefix_length=prefix_length(model))
      images, params = model.sample(
          NUM, seed=seed, temperature=temperature,
          labels=self.labels(model), method=method, return_params=True,
          **extra)
      self._draws[key] = (images.numpy(), params.numpy())
    return self._draws[key]


@pytest.fixture(scope="module")
def samples(build_model, random_images):
  return Samples(build_model, random_images)


@pytest.fixture(scope="module")
def tiny_model(build_model):
  """A 2x3 grey float64 model with one stage, for the input checks that
  make the sampler trace anew."""
  def build(**kwargs):
    return build_model((2, 3, 1), num_filters=4, num_hierarchies=1,
                       **kwargs)
  return build


def drawn_mask(model, length):
  """bool [H, W]: the pixels drawn after keeping `length` of a prefix."""
  height, width, _ = model.image_shape
  return (np.arange(height * width) >= length).reshape(height, width)


# Check 15: the fast sampler draws what the reference sampler draws.


@pytest.mark.parametrize("name", CONFIGS)
def test_fast_equals_reference(samples, name):
  """Same seed: identical images, and parameters equal to 1e-10."""
  fast_images, fast_params = samples.draw(name, "fast")
  reference_images, reference_params = samples.draw(name, "reference")

  np.testing.assert_array_equal(fast_images, reference_images)
  np.testing.assert_allclose(fast_params, reference_params, rtol=0,
                             atol=1e-10)
  # Not a vacuous agreement: the images are varied, and so is every
  # parameter from one pixel to the next.
  assert len(np.unique(fast_images)) >= 10
  per_pixel = fast_params.reshape(-1, fast_params.shape[-1])
  assert np.all(np.ptp(per_pixel, axis=0) > 0)


@pytest.mark.parametrize("name", PREFIX_CONFIGS)
def test_fast_equals_reference_when_completing(samples, name):
  """With a prefix kept to mid-row, both methods draw the same rest."""
  fast_images, fast_params = samples.draw(name, "fast", completion=True)
  reference_images, reference_params = samples.draw(name, "reference",
                                                    completion=True)

  np.testing.assert_array_equal(fast_images, reference_images)
  np.testing.assert_allclose(fast_params, reference_params, rtol=0,
                             atol=1e-10)


# Check 16: replay.


REPLAYS = [(name, method, False) for name in CONFIGS for method in METHODS]
REPLAYS += [(name, method, True) for name in PREFIX_CONFIGS
            for method in METHODS]


@pytest.mark.parametrize("name,method,completion", REPLAYS, ids=[
    f"{name}-{method}{'-completion' if completion else ''}"
    for name, method, completion in REPLAYS])
def test_replay_gives_the_params_each_pixel_was_drawn_from(
    samples, name, method, completion):
  """model.params(sample) equals the returned params at every drawn pixel.

  At the kept pixels of a prefix the returned params are zeros.
  """
  model = samples.model(name)
  images, params = samples.draw(name, method, completion=completion)
  replayed = model.params(images, samples.labels(model)).numpy()

  drawn = drawn_mask(model, prefix_length(model) if completion else 0)
  np.testing.assert_allclose(params[:, drawn], replayed[:, drawn], rtol=0,
                             atol=1e-10)
  np.testing.assert_array_equal(params[:, ~drawn], 0.0)
  assert np.all(np.abs(params[:, drawn]).max(axis=-1) > 0)


# Check 17: temperature.


@pytest.mark.parametrize("name", ["7x9-3stages-mixture",
                                  "7x9-3stages-softmax",
                                  "5x6x3-2stages-mixture-coupled"])
def test_near_zero_temperature_is_deterministic(samples, name):
  """At T = 1e-6 two seeds give the same images, with either method."""
  first, params = samples.draw(name, "fast", seed=1, temperature=1e-6)
  second, _ = samples.draw(name, "fast", seed=2, temperature=1e-6)
  reference, _ = samples.draw(name, "reference", seed=3, temperature=1e-6)

  np.testing.assert_array_equal(first, second)
  np.testing.assert_array_equal(first, reference)
  # At T = 1 the same seeds disagree.
  assert not np.array_equal(samples.draw(name, "fast", seed=1)[0],
                            samples.draw(name, "fast", seed=2)[0])
  if samples.model(name).head.name == "softmax":
    # Each value is the most likely one given the context.
    logits = params.reshape(params.shape[:-1] + (-1, 256))
    np.testing.assert_array_equal(first, np.argmax(logits, axis=-1))


# The head-level checks draw many values from one parameter vector: the
# vector repeated NUM_DRAWS times and sampled in one call, which makes an
# independent draw per row.
NUM_DRAWS = 20000
VALUES = np.arange(256)


def mixture_params(num_channels=1, channel_coupling=False):
  """float64 [P] parameters of a 3-component mixture head.

  The most likely component is narrow (1.4 levels) and centred on value
  153; a wider one sits at 57 and a wide one near the top edge, whose
  tail fills the end bin. A sampler whose bins were off by half a level,
  or whose end bins missed the tails, is then far from the head's
  probabilities. Log-scales lie in [-4.5, 0], so that multiplying the
  scales by a temperature in [0.1, 2] stays inside the head's clipping
  range [-7, 7].
  """
  logits = np.array([1.0, 0.5, -1.0])
  means = np.array([0.2, -0.55, 0.93])
  log_scales = np.array([-4.5, -2.5, 0.0])
  shifts = np.arange(num_channels)[:, None] * np.array([0.1, -0.3, 0.05])
  # Coupled channels share one set of logits; otherwise each has its own.
  params = [logits if channel_coupling
            else np.tile(logits, (num_channels, 1)),
            np.clip(means + shifts, -0.95, 0.95),
            np.tile(log_scales, (num_channels, 1))]
  if channel_coupling:
    # tanh(coefficient) for the pairs (1, 0), (2, 0), (2, 1): distinct and
    # large, so that mixing them up moves the coupled means visibly.
    raw = np.array([[1.5, 1.2, 1.8], [-1.0, -0.7, -1.3], [0.4, 0.6, 0.2]])
    params.append(raw[:num_channels * (num_channels - 1) // 2])
  return np.concatenate([p.ravel() for p in params])


def softmax_params():
  """float64 [256] logits: one broad peak at 100, rough, with spikes.

  Away from the ends, so that flattening it (a higher temperature)
  widens it.
  """
  rng = np.random.default_rng(3)
  logits = -0.5 * ((VALUES - 100) / 20.0) ** 2 + rng.normal(scale=0.5,
                                                              size=256)
  logits[[90, 91, 130]] += [2.5, 2.0, 3.0]
  return logits


def make_head(name, num_channels=1, channel_coupling=False):
  if name == "mixture":
    return likelihoods.get_head("mixture", num_channels, 3, channel_coupling)
  return likelihoods.get_head("softmax", num_channels)


def head_params(head):
  if head.name == "mixture":
    return mixture_params(head.num_channels, head.channel_coupling)
  return softmax_params()


def tempered(head, params, temperature):
  """Parameters whose T = 1 distribution is `params` at `temperature`.

  Temperature divides the logits and multiplies the logistic scales, as
  `sampling.sample` documents; the coupling coefficients stay.
  """
  params = np.array(params, np.float64)
  if head.name == "softmax":
    return params / temperature
  size = head.num_channels * head.num_logistic_mix
  num_logits = head.num_logistic_mix if head.channel_coupling else size
  params[:num_logits] /= temperature
  params[num_logits + size:num_logits + 2 * size] += math.log(temperature)
  return params


def probabilities(head, params, temperature=1.0):
  """[256] probabilities of channel 0 from the head's `log_prob`."""
  params = tempered(head, params, temperature)
  images = np.zeros((256, 1, 1, head.num_channels), np.int32)
  images[:, 0, 0, 0] = VALUES
  log_prob = head.log_prob(tf.constant(np.tile(params, (256, 1, 1, 1))),
                           tf.constant(images))
  probs = np.exp(log_prob.numpy()[:, 0, 0, 0])
  np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-6)
  return probs


def head_draws(head, params, temperature, seed=(5, 6)):
  """int32 [NUM_DRAWS, C] values from `head.sample`."""
  batch = tf.constant(np.tile(params, (NUM_DRAWS, 1)))
  values = head.sample(batch, tf.constant(seed, tf.int32),
                       tf.constant(temperature, tf.float64)).numpy()
  assert values.dtype == np.int32 and values.shape == (NUM_DRAWS,
                                                       head.num_channels)
  assert values.min() >= 0 and values.max() <= 255
  return values


def chi_square_p_value(values, probs):
  """Pearson's test of integer `values` against `probs` [256].

  Values whose expected count is under 5 are pooled into one cell.
  """
  counts = np.bincount(values, minlength=len(probs)).astype(np.float64)
  expected = probs * len(values)
  rare = expected < 5
  observed = np.append(counts[~rare], counts[rare].sum())
  expected = np.append(expected[~rare], expected[rare].sum())
  if expected[-1] == 0:
    assert observed[-1] == 0, "values drawn that have no probability"
    observed, expected = observed[:-1], expected[:-1]
  statistic = np.sum((observed - expected) ** 2 / expected)
  chi2 = tfp.distributions.Chi2(tf.constant(len(expected) - 1.0,
                                            tf.float64))
  return float(chi2.survival_function(statistic))


def total_variation(values, probs):
  """(distance of the frequencies from `probs`, its typical size).

  The typical size is what n draws of `probs` itself give, about:
  half the sum over values of E|N(0, p (1 - p) / n)|.
  """
  num = len(values)
  frequencies = np.bincount(values, minlength=256) / num
  typical = 0.5 * np.sum(np.sqrt(2 * probs * (1 - probs) / (math.pi * num)))
  return 0.5 * np.abs(frequencies - probs).sum(), typical


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("name", ["mixture", "softmax"])
def test_head_draws_follow_head_probabilities(name, temperature):
  """20000 draws of `head.sample` against the head's `log_prob`.

  At T = 1 this checks the directly drawn values against the TFP-based
  likelihood; at 0.5 and 2 against the tempered distribution.
  """
  head = make_head(name)
  params = head_params(head)
  probs = probabilities(head, params, temperature)
  values = head_draws(head, params, temperature)[:, 0]

  p_value = chi_square_p_value(values, probs)
  distance, typical = total_variation(values, probs)
  assert p_value > 1e-4, (p_value, distance)
  assert distance < 1.5 * typical, (distance, typical)


def test_mixture_check_would_see_bins_off_by_half_a_level():
  """The test above has the power to see a half-level shift of the bins."""
  head = make_head("mixture")
  params = mixture_params()
  values = head_draws(head, params, 1.0)[:, 0]
  shifted = params.copy()
  shifted[3:6] += 1.0 / 255  # The means, moved half a level.
  assert chi_square_p_value(values, probabilities(head, shifted)) < 1e-6
  assert chi_square_p_value(values, probabilities(head, params)) > 1e-4


def test_coupled_mixture_draws_follow_conditional_probabilities():
  """Each coupled channel, given the channels drawn before it.

  For every draw and channel c, the head's `log_prob` of all 256 values of
  c, with the draw's earlier channels, gives the conditional distribution
  F; the randomised probability integral transform F(x - 1) + U p(x) of
  the drawn value x is then uniform on [0, 1] if the sampler follows the
  head, and far from it if the coupling coefficients are mixed up.
  """
  head = make_head("mixture", num_channels=3, channel_coupling=True)
  params = head_params(head)
  values = head_draws(head, params, 1.0)[:1500]
  num = len(values)

  probs = probabilities(head, params)
  assert chi_square_p_value(values[:, 0], probs) > 1e-4

  rng = np.random.default_rng(0)
  for channel in (1, 2):
    images = np.repeat(values[:, None], 256, axis=1)  # [num, 256, 3]
    images[:, :, channel] = VALUES
    log_prob = head.log_prob(
        tf.constant(np.broadcast_to(params, (num, 256, 1, len(params)))),
        tf.constant(images[:, :, None]))
    conditional = np.exp(log_prob.numpy()[:, :, 0, channel])  # [num, 256]
    np.testing.assert_allclose(conditional.sum(axis=1), 1.0, atol=1e-6)

    drawn = values[:, channel]
    below = np.cumsum(conditional, axis=1) - conditional
    at = conditional[np.arange(num), drawn]
    transform = np.sort(below[np.arange(num), drawn]
                        + rng.uniform(size=num) * at)
    # Kolmogorov-Smirnov distance from uniform; 1.95 / sqrt(n) is the
    # 0.1% critical value.
    steps = np.arange(1, num + 1) / num
    distance = max(np.max(steps - transform),
                   np.max(transform - (steps - 1 / num)))
    assert distance < 1.95 / math.sqrt(num), (channel, distance)
    # The conditional really moves with the earlier channels.
    spread = (conditional * VALUES).sum(axis=1)
    assert np.ptp(spread) > 20


def test_coupled_draws_follow_the_joint_of_two_channels():
  """20000 coupled two-channel draws against the head's joint law.

  The joint probability of each of the 256 x 256 values is exp of the sum
  of the channels' `log_prob` entries; pooled into 8 x 8 cells of 32 x 32
  values, it must fit the draws' cell counts. The same draws with the
  second channel shuffled among them, which keeps both channels' own
  distributions but breaks the shared component and the coupling, must
  not.
  """
  head = make_head("mixture", num_channels=2, channel_coupling=True)
  params = head_params(head)
  values = head_draws(head, params, 1.0)

  first, second = np.meshgrid(VALUES, VALUES, indexing="ij")
  pixels = np.stack([first, second], axis=-1).reshape(-1, 1, 1, 2)
  log_prob = head.log_prob(
      tf.constant(np.broadcast_to(params, (len(pixels), 1, 1, len(params)))),
      tf.constant(pixels))
  joint = np.exp(log_prob.numpy().sum(axis=-1)).reshape(256, 256)
  np.testing.assert_allclose(joint.sum(), 1.0, atol=1e-6)
  cell_probs = joint.reshape(8, 32, 8, 32).sum(axis=(1, 3)).ravel()

  def cells(draws):
    return draws[:, 0] // 32 * 8 + draws[:, 1] // 32

  assert chi_square_p_value(cells(values), cell_probs) > 1e-4
  shuffled = values.copy()
  np.random.default_rng(0).shuffle(shuffled[:, 1])
  assert chi_square_p_value(cells(shuffled), cell_probs) < 1e-6


@pytest.mark.parametrize("head", [
    make_head("mixture"), make_head("softmax"),
    make_head("mixture", 3, channel_coupling=True)],
    ids=["mixture", "softmax", "mixture-coupled"])
def test_head_spread_grows_with_temperature(head):
  """Variance of the draws: T = 0.5 < 1 < 2, and near 0 there is none."""
  params = head_params(head)
  variances = [head_draws(head, params, t).var(axis=0)
               for t in (0.5, 1.0, 2.0)]
  assert np.all(variances[0] < variances[1])
  assert np.all(variances[1] < variances[2])

  cold = head_draws(head, params, 1e-6)
  assert np.all(cold == cold[0])
  if head.num_channels == 1:
    # The most likely value: of the top logit (softmax) or of the top
    # component's bin (mixture, mean 0.2 -> 1.2 * 127.5 = 153), which is
    # also the mode of the distribution at T = 0.1.
    expected = np.argmax(params) if head.name == "softmax" else 153
    assert cold[0, 0] == expected
    assert np.argmax(probabilities(head, params, 0.1)) == expected


def test_draws_never_leave_0_to_255():
  """Means far outside [-1, 1] and the widest scales still give 0..255."""
  head = make_head("mixture")
  params = np.array([0.0, 0.0, 0.0, -50.0, 50.0, 0.0, 7.0, 7.0, 20.0])
  for temperature in (1.0, 5.0):
    values = head_draws(head, params, temperature)[:, 0]
    assert values.min() == 0 and values.max() == 255
  # Means beyond the ends put every draw on the end value.
  narrow = np.array([0.0, -30.0, -30.0, -50.0, 0.0, 0.0, -7.0, 0.0, 0.0])
  assert np.all(head_draws(head, narrow, 1.0) == 0)
  narrow[3] = 50.0
  assert np.all(head_draws(head, narrow, 1.0) == 255)


# Check 18: conditioning, and what sample accepts.


def test_integer_and_one_hot_labels_give_the_same_samples(samples):
  name = "8x8-2stages-mixture-classes"
  model = samples.model(name)
  images, _ = samples.draw(name, "fast")
  one_hot = np.eye(3, dtype=np.float32)[LABELS]

  for method in METHODS:
    np.testing.assert_array_equal(
        model.sample(NUM, seed=7, labels=one_hot, method=method), images)
  # A single integer stands for every image.
  np.testing.assert_array_equal(
      model.sample(NUM, seed=7, labels=2),
      model.sample(NUM, seed=7, labels=[2, 2, 2]))


def test_labels_change_samples_and_log_prob(samples):
  """Same seed, other labels: other images; log p(x | y) depends on y."""
  name = "8x8-2stages-softmax-classes"
  model = samples.model(name)
  images, _ = samples.draw(name, "fast")
  others = (LABELS + 1) % 3

  assert not np.array_equal(
      model.sample(NUM, seed=7, labels=others), images)
  log_prob = model.log_prob(images, LABELS).numpy()
  assert np.all(log_prob != model.log_prob(images, others).numpy())


def test_conditional_model_refuses_to_sample_without_labels(samples):
  model = samples.model("8x8-2stages-mixture-classes")
  for method in METHODS:
    with pytest.raises(ValueError, match=r"class-conditional: pass labels"):
      model.sample(NUM, seed=0, method=method)
  with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
    model.sample(NUM, seed=0, labels=[0, 1, 3])


def test_unconditional_model_refuses_labels(samples):
  model = samples.model("7x9-3stages-mixture")
  with pytest.raises(ValueError, match=r"built without num_classes"):
    model.sample(NUM, seed=0, labels=[0, 1, 2])


@pytest.mark.parametrize("labels", [[0, 1], np.eye(3)[[0, 1]]],
                         ids=["integers", "one-hot"])
def test_wrong_number_of_labels_is_a_clear_error(tiny_model, labels):
  model = tiny_model(num_classes=3)
  with pytest.raises(ValueError) as error:
    model.sample(NUM, seed=0, labels=labels)
  message = str(error.value)
  assert "labels" in message and "in user code" not in message, message


@pytest.mark.parametrize("name", CONFIGS)
def test_samples_are_int32_in_0_to_255(samples, name):
  model = samples.model(name)
  for method in METHODS:
    images, _ = samples.draw(name, method)
    assert images.dtype == np.int32
    assert images.shape == (NUM,) + model.image_shape
    assert images.min() >= 0 and images.max() <= 255


@pytest.mark.parametrize("name", PREFIX_CONFIGS)
def test_prefix_pixels_are_kept_and_the_rest_drawn(samples, name):
  """Kept pixels equal the prefix; the rest are drawn, seed by seed."""
  model = samples.model(name)
  prefix = samples.prefix(name)
  drawn = drawn_mask(model, prefix_length(model))
  images, _ = samples.draw(name, "fast", completion=True)
  again, _ = samples.draw(name, "fast", seed=8, completion=True)

  np.testing.assert_array_equal(images[:, ~drawn], prefix[:, ~drawn])
  np.testing.assert_array_equal(again[:, ~drawn], prefix[:, ~drawn])
  # Random prefix values would be kept by a sampler that forgot to draw;
  # drawn values match them only by chance.
  assert np.mean(images[:, drawn] == prefix[:, drawn]) < 0.2
  assert not np.array_equal(images[:, drawn], again[:, drawn])


@pytest.mark.parametrize("method", METHODS)
def test_prefix_length_zero_and_all(samples, method):
  """Keeping nothing draws what sampling from scratch draws; keeping all
  returns the prefix.

  The prefix's values in pixels not yet drawn must not reach the draws
  (in the fast sampler they sit in the row being recomputed).
  """
  name = "5x6x3-2stages-mixture-coupled"
  model = samples.model(name)
  prefix = samples.prefix(name)
  scratch, _ = samples.draw(name, method)
  height, width, _ = model.image_shape

  np.testing.assert_array_equal(
      model.sample(NUM, seed=7, prefix=prefix, prefix_length=0,
                   method=method), scratch)
  np.testing.assert_array_equal(
      model.sample(NUM, seed=7, prefix=prefix,
                   prefix_length=height * width, method=method), prefix)


def test_prefix_length_defaults_to_the_top_half(samples):
  name = "7x9-3stages-mixture"
  model = samples.model(name)
  prefix = samples.prefix(name)
  images = model.sample(NUM, seed=7, prefix=prefix).numpy()
  kept = drawn_mask(model, 3 * 9)
  np.testing.assert_array_equal(images[:, ~kept], prefix[:, ~kept])
  assert np.mean(images[:, kept] == prefix[:, kept]) < 0.2


@pytest.mark.parametrize("prefix_shape,message", [
    ((NUM, 7, 8, 1), r"\[batch, 7, 9, 1\] for this model, got \(3, 7, 8"),
    ((NUM, 7, 9, 3), r"\[batch, 7, 9, 1\] for this model"),
    ((7, 9, 1), r"rank 3"),
    ((NUM + 1, 7, 9, 1), r"prefix holds 4 images; num is 3"),
], ids=["width", "channels", "no-batch-axis", "batch"])
def test_wrong_prefix_shape_is_a_clear_error(samples, prefix_shape, message):
  model = samples.model("7x9-3stages-mixture")
  with pytest.raises(ValueError, match=message):
    model.sample(NUM, seed=0, prefix=np.zeros(prefix_shape, np.uint8))


@pytest.mark.parametrize("length", [-1, 64, 1000])
def test_prefix_length_out_of_range_is_a_clear_error(samples, length):
  model = samples.model("7x9-3stages-mixture")
  with pytest.raises(ValueError,
                     match=rf"prefix_length must be in 0\.\.63, not {length}"):
    model.sample(NUM, seed=0, prefix=samples.prefix("7x9-3stages-mixture"),
                 prefix_length=length)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_temperature_must_be_positive(samples, temperature):
  model = samples.model("7x9-3stages-mixture")
  with pytest.raises(ValueError, match=r"temperature must be positive"):
    model.sample(NUM, seed=0, temperature=temperature)


def test_unknown_method_is_a_clear_error(samples):
  model = samples.model("7x9-3stages-mixture")
  with pytest.raises(ValueError, match=r"unknown sampling method 'slow'"):
    model.sample(NUM, seed=0, method="slow")


# Seeds.


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_images_other_seed_other_images(samples, method):
  name = "7x9-3stages-softmax"
  model = samples.model(name)
  images, _ = samples.draw(name, method)

  np.testing.assert_array_equal(model.sample(NUM, seed=7, method=method),
                                images)
  np.testing.assert_array_equal(
      model.sample(NUM, seed=tf.constant([7, 0]), method=method), images)
  other = model.sample(NUM, seed=8, method=method).numpy()
  assert not np.array_equal(other, images)
  # Images within one batch differ from each other too.
  assert not np.array_equal(images[0], images[1])


@pytest.mark.parametrize("seed, message", [
    (1.5, r"seed must be an integer or a pair of integers, not float32 1\.5"),
    ([1, 2, 3], r"not shape \(3,\)"),
])
def test_bad_seed_is_a_clear_error(tiny_model, seed, message):
  with pytest.raises(ValueError, match=message):
    tiny_model().sample(NUM, seed=seed)


def test_numpy_integer_seed_works_like_python_int(tiny_model):
  model = tiny_model()
  np.testing.assert_array_equal(model.sample(NUM, seed=np.int64(7)),
                                model.sample(NUM, seed=7))


@pytest.mark.parametrize("method", METHODS)
def test_progress_reports_every_row(samples, method):
  """progress(rows) is called once per finished row, in order, and the
  images are those drawn without it."""
  model = samples.model("7x9-3stages-mixture")
  reported = []
  with_progress = model.sample(NUM, seed=3, method=method,
                               progress=reported.append)
  assert reported == list(range(1, model.image_shape[0] + 1))
  without = model.sample(NUM, seed=3, method=method)
  np.testing.assert_array_equal(np.asarray(with_progress),
                                np.asarray(without))
