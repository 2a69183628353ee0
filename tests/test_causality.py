"""Causality of PixelCNN++: what the parameters at each pixel may see.

The parameters at pixel (i, j) may depend on the pixels strictly before it
in raster order and on nothing else: not on any channel of (i, j) itself,
because the channels of a pixel are predicted in parallel, and not on any
later pixel. Every check runs in float64 on the CPU and compares with an
exact zero or bit for bit. Training mode is checked with dropout on, using
a fixed stateless seed so that two passes drop the same units, as well as
with dropout off.
"""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import layers
from pixelcnnpp import likelihoods
from pixelcnnpp import networks

HEADS = ("mixture", "softmax")

# Image shape and number of resolution stages. Odd sizes give stages that
# round up; several channels check that a pixel's own channels are hidden
# from its parameters.
CONFIGS = {
    "7x9x1-3stages": ((7, 9, 1), 3),
    "8x8x1-2stages": ((8, 8, 1), 2),
    "5x6x2-1stage": ((5, 6, 2), 1),
    "4x5x3-2stages": ((4, 5, 3), 2),
}

# training, dropout_p
MODES = {
    "inference": (False, 0.5),
    "training-dropout": (True, 0.5),
    "training-no-dropout": (True, 0.0),
}


def raster_order(height, width):
  """int [H, W]: the position of each pixel in raster order."""
  return np.arange(height * width).reshape(height, width)


def all_positions(height, width):
  return [(i, j) for i in range(height) for j in range(width)]


def perturb(images, mask, rng):
  """Changes every value of `images` where `mask` is True, within 0..255."""
  offsets = rng.integers(1, 256, images.shape)
  return np.where(mask, (images + offsets) % 256, images).astype(np.int32)


def follower(p, width):
  """The pixel right of raster position p, or below it in the last column."""
  return p + 1 if (p + 1) % width else p + width


def params_kwargs(training, dropout_seed):
  return dict(training=training,
              dropout_seed=dropout_seed if training else None)


def assert_causal_jacobian(grads, positions, image_shape):
  """Checks gradients from `input_gradients` against the raster order.

  The gradient must be exactly zero at every sub-pixel of r and after it,
  and, so that the check is not vacuous, non-zero at the pixel left of r,
  or above it in the first column.
  """
  height, width, _ = image_shape
  order = raster_order(height, width)
  leaks, unseen = [], []
  for n, (i, j) in enumerate(positions):
    seen = np.any(grads[n] != 0, axis=-1)
    at_or_after = order >= order[i, j]
    leaks += [((i, j), tuple(q)) for q in np.argwhere(seen & at_or_after)]
    if (i, j) != (0, 0):
      neighbour = (i, j - 1) if j > 0 else (i - 1, j)
      if not np.all(grads[n][neighbour] != 0):
        unseen.append(((i, j), neighbour))
  assert not leaks, (
      f"{len(leaks)} (output r, input q) pairs with q at or after r and a "
      f"non-zero gradient, e.g. {leaks[:8]}")
  assert not unseen, (
      f"parameters blind to some channel of the pixel left or above: "
      f"{unseen[:8]}")


def assert_future_changes_invisible(model, image, training, dropout_seed,
                                    seed=0):
  """Changes pixel p, and separately every pixel from p on, for each p.

  Copy p of the image is changed at p (every channel) or from p to the
  end; the parameters of copy p at p and at every earlier pixel must equal
  those of the unchanged image bit for bit. A single changed pixel must
  change the parameters of the pixel to its right, or below it in the
  last column.
  """
  height, width, _ = model.image_shape
  num = height * width
  order = raster_order(height, width)[None, :, :, None]
  copy = np.arange(num)[:, None, None, None]
  base = np.repeat(np.asarray(image)[None], num, 0)
  rng = np.random.default_rng(seed)
  at_p = perturb(base, np.broadcast_to(order == copy, base.shape), rng)
  from_p = perturb(base, np.broadcast_to(order >= copy, base.shape), rng)

  kwargs = params_kwargs(training, dropout_seed)
  expected = model.params(base, **kwargs).numpy().reshape(num, num, -1)
  for name, changed in (("pixel p", at_p), ("pixels p onwards", from_p)):
    got = model.params(changed, **kwargs).numpy().reshape(num, num, -1)
    moved = [p for p in range(num)
             if not np.array_equal(got[p, :p + 1], expected[p, :p + 1])]
    assert not moved, (
        f"changing {name} moved the parameters at p or before, for p in "
        f"{[divmod(p, width) for p in moved[:8]]}")
    if name == "pixel p":
      still = [p for p in range(num - 1)
               if np.array_equal(got[p, follower(p, width)],
                                 expected[p, follower(p, width)])]
      assert not still, (
          f"the pixel right of (or below) p ignores p for p in "
          f"{[divmod(p, width) for p in still[:8]]}")


def assert_first_pixel_unconditional(model, training, dropout_seed,
                                     labels=None):
  """The parameters at (0, 0) are the same for every image.

  Two batches that differ in every sub-pixel, among them all-0 and
  all-255 images, are compared position by position (so that in training
  mode both see the same dropout masks); in inference mode the images of
  a batch must also agree with each other. The parameters at (0, 1),
  which see (0, 0), must differ.
  """
  shape = model.image_shape
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (4,) + shape).astype(np.int32)
  images = np.concatenate([images, np.zeros((1,) + shape, np.int32),
                           np.full((1,) + shape, 255, np.int32)])
  others = perturb(images, np.ones(images.shape, bool), rng)

  kwargs = params_kwargs(training, dropout_seed)
  first = model.params(images, labels, **kwargs).numpy()
  second = model.params(others, labels, **kwargs).numpy()
  np.testing.assert_array_equal(first[:, 0, 0], second[:, 0, 0])
  if not training:
    # With the image turned, (0, 0) of the last image is the last output
    # of each convolution, which the convolution library may sum in
    # another order: images at different places in a batch agree to
    # rounding. The check above, at the same place, is the exact one.
    np.testing.assert_allclose(
        first[:, 0, 0], np.repeat(first[:1, 0, 0], len(images), 0),
        rtol=1e-12, atol=1e-12)
  if shape[1] > 1:
    assert not np.array_equal(first[:, 0, 1], second[:, 0, 1])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("likelihood", HEADS)
@pytest.mark.parametrize("config", CONFIGS)
def test_jacobian_is_zero_at_and_after_each_pixel(
    cached_model, random_images, input_gradients, config, likelihood, mode):
  """d params(r) / d x(q) == 0 exactly for every q at or after r.

  Every output pixel r against every input sub-pixel q, so pairs that
  share a cell of a downsampled stage are included. The gradient with
  respect to the pixel left of r (above it in the first column) must be
  non-zero.
  """
  shape, stages = CONFIGS[config]
  training, dropout_p = MODES[mode]
  model = cached_model(shape, likelihood=likelihood,
                       num_hierarchies=stages, dropout_p=dropout_p)
  positions = all_positions(*shape[:2])
  image = random_images(1, shape, seed=3)[0]

  grads = input_gradients(model, image, positions, training=training)

  assert_causal_jacobian(grads, positions, shape)


@pytest.mark.parametrize("mode", ["inference", "training-dropout"])
@pytest.mark.parametrize("likelihood", HEADS)
def test_jacobian_is_causal_on_28x28(cached_model, random_images,
                                     input_gradients, likelihood, mode):
  """The exact-zero Jacobian check on 28x28 with 3 stages.

  With the mixture head at every one of the 784 output pixels; with the
  softmax head, whose 256 parameters per sub-pixel make each pixel
  costlier, at a sample of them on and beside the borders of the 2x2 and
  4x4 cells of the downsampled stages, and at the image's edges.
  """
  shape = (28, 28, 1)
  training, dropout_p = MODES[mode]
  model = cached_model(shape, likelihood=likelihood, num_filters=4,
                       num_hierarchies=3, dropout_p=dropout_p)
  if likelihood == "mixture":
    rows = cols = range(28)
  else:
    rows = [0, 1, 3, 4, 7, 8, 14, 15, 27]
    cols = [0, 1, 2, 3, 4, 5, 16, 26, 27]
  positions = [(i, j) for i in rows for j in cols]
  image = random_images(1, shape, seed=4)[0]

  grads = input_gradients(model, image, positions, training=training)

  assert_causal_jacobian(grads, positions, shape)


def test_float_input_path_matches_integer_images(cached_model,
                                                 random_images):
  """The network on float pixel values equals `params` on the integers.

  The gradient checks feed floats 0..255 to the network; this shows they
  test the same function, bit for bit.
  """
  model = cached_model((7, 9, 1), num_hierarchies=3)
  images = random_images(2, (7, 9, 1), seed=5)

  from_ints = model.params(images)
  from_floats = model.network.forward(
      tf.constant(images, tf.float64), None, networks.FullPass())

  np.testing.assert_array_equal(from_ints.numpy(), from_floats.numpy())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("likelihood", HEADS)
@pytest.mark.parametrize("config", CONFIGS)
def test_changing_a_pixel_or_its_future_leaves_earlier_params_unchanged(
    cached_model, random_images, dropout_seed, config, likelihood, mode):
  """No look ahead: params up to and including p ignore p and later pixels.

  For every pixel p, p alone is changed (in every channel), and
  separately p and every pixel after it; the parameters at p and before
  must stay bit for bit the same.
  """
  shape, stages = CONFIGS[config]
  training, dropout_p = MODES[mode]
  model = cached_model(shape, likelihood=likelihood,
                       num_hierarchies=stages, dropout_p=dropout_p)
  image = random_images(1, shape, seed=6)[0]

  assert_future_changes_invisible(model, image, training, dropout_seed)


@pytest.mark.parametrize("likelihood", HEADS)
@pytest.mark.parametrize("num_resnet,num_hierarchies", [(1, 1), (2, 3)])
def test_no_blind_spot_in_9x9_window(build_model, random_images,
                                     input_gradients, likelihood,
                                     num_resnet, num_hierarchies):
  """Random weights: params at (i, j) see every earlier pixel near it.

  Every sub-pixel before (i, j) in the 9x9 window centred on it (clipped
  to the image) has a non-zero gradient, among them (i, j-1), (i-1, j-1),
  (i-1, j) and (i-1, j+1): even the smallest network covers the window,
  so PixelCNN++ has no blind spot there. Checked at every pixel.
  """
  shape = (11, 13, 2)
  model = build_model(shape, likelihood=likelihood, num_resnet=num_resnet,
                      num_hierarchies=num_hierarchies, seed=7)
  positions = all_positions(*shape[:2])
  image = random_images(1, shape, seed=7)[0]

  grads = input_gradients(model, image, positions)

  height, width, _ = shape
  missing = []
  for n, (i, j) in enumerate(positions):
    for di in range(-4, 1):
      for dj in range(-4, 5):
        q = (i + di, j + dj)
        inside = 0 <= q[0] < height and 0 <= q[1] < width
        if (di, dj) < (0, 0) and inside and not np.all(grads[n][q] != 0):
          missing.append(((i, j), (di, dj)))
  assert not missing, (
      f"{len(missing)} blind (pixel, offset) pairs, e.g. {missing[:8]}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("likelihood", HEADS)
@pytest.mark.parametrize("config", CONFIGS)
def test_first_pixel_is_unconditional(cached_model, dropout_seed, config,
                                      likelihood, mode):
  """The parameters at (0, 0) are the same for every input image."""
  shape, stages = CONFIGS[config]
  training, dropout_p = MODES[mode]
  model = cached_model(shape, likelihood=likelihood,
                       num_hierarchies=stages, dropout_p=dropout_p)

  assert_first_pixel_unconditional(model, training, dropout_seed)


@pytest.mark.parametrize("training", [False, True])
def test_first_pixel_depends_only_on_label(cached_model, dropout_seed,
                                           training):
  """Class-conditional: params at (0, 0) vary with the label only."""
  model = cached_model((5, 6, 1), num_classes=3)

  for label in range(3):
    assert_first_pixel_unconditional(model, training, dropout_seed,
                                     labels=label)
  images = np.zeros((3, 5, 6, 1), np.int32)
  first = model.params(images, np.arange(3)).numpy()[:, 0, 0]
  assert not np.array_equal(first[0], first[1])
  assert not np.array_equal(first[1], first[2])


def train_briefly(model, images, steps=3):
  """A few Adam steps on -mean log p, in training mode with dropout."""
  optimizer = tf.keras.optimizers.Adam(1e-2)
  for _ in range(steps):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.log_prob(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


@pytest.fixture(scope="module",
                params=[(state, likelihood)
                        for state in ("fresh", "initialized", "trained")
                        for likelihood in HEADS],
                ids=lambda p: "-".join(p))
def staged_model(request, build_model, random_images):
  """A 7x9 model with 3 stages: fresh, initialised, or also trained.

  Returns (state, model, the weights it was built with).
  """
  state, likelihood = request.param
  model = build_model((7, 9, 1), likelihood=likelihood, num_hierarchies=3,
                      seed=8)
  images = random_images(8, (7, 9, 1), seed=8)
  fresh = [v.numpy() for v in model.trainable_variables]
  if state != "fresh":
    model.initialize(images)
  if state == "trained":
    train_briefly(model, images)
  return state, model, fresh


@pytest.mark.parametrize("mode", ["inference", "training-dropout"])
def test_causal_from_the_start(staged_model, random_images, input_gradients,
                               dropout_seed, mode):
  """Checks 1, 2 and 4 hold before any training step, after initialize.

  And after a few optimizer steps; the weights must have moved for the
  later states.
  """
  state, model, fresh = staged_model
  training = MODES[mode][0]
  shape = model.image_shape
  moved = any(not np.array_equal(before, v.numpy())
              for before, v in zip(fresh, model.trainable_variables))
  assert moved == (state != "fresh")
  image = random_images(1, shape, seed=9)[0]
  positions = all_positions(*shape[:2])

  grads = input_gradients(model, image, positions, training=training)

  assert_causal_jacobian(grads, positions, shape)
  assert_future_changes_invisible(model, image, training, dropout_seed)
  assert_first_pixel_unconditional(model, training, dropout_seed)


class Recorder:
  """Stands in for a layer of the vertical stream and keeps its outputs.

  Args:
    layer: the layer or gated block to call.
    level: the resolution stage of the layer's output.
    is_block: a gated residual block, whose output mixes in a shortcut.
  """

  def __init__(self, layer, level, is_block):
    self.layer = layer
    self.level = level
    self.is_block = is_block
    self.outputs = []

  def __call__(self, *args, **kwargs):
    output = self.layer(*args, **kwargs)
    self.outputs.append(output)
    return output

  def turned(self, *args, **kwargs):
    output = self.layer.turned(*args, **kwargs)
    self.outputs.append(output)
    return output


@contextlib.contextmanager
def recording_vertical_stream(network):
  """Puts a `Recorder` in place of every layer whose output is u.

  The blocks of both passes and the down- and upsampling convolutions;
  the network's own layers are put back on exit.
  """
  swapped, recorders = [], []

  def swap(layers, index, level, is_block):
    recorders.append(Recorder(layers[index], level, is_block))
    swapped.append((layers, index, layers[index]))
    layers[index] = recorders[-1]

  top = network.num_hierarchies - 1
  try:
    for level, blocks in enumerate(network.u_up_blocks):
      for index in range(len(blocks)):
        swap(blocks, index, level, True)
    for index in range(len(network.u_downsample)):
      swap(network.u_downsample, index, index + 1, False)
    for stage, blocks in enumerate(network.u_down_blocks):
      for index in range(len(blocks)):
        swap(blocks, index, top - stage, True)
    for stage in range(len(network.u_upsample)):
      swap(network.u_upsample, stage, top - stage - 1, False)
    yield recorders
  finally:
    for layers, index, layer in reversed(swapped):
      layers[index] = layer


@pytest.mark.parametrize("training", [False, True],
                         ids=["inference", "training-dropout"])
@pytest.mark.parametrize("config", ["7x9x1-3stages", "8x8x1-2stages",
                                    "5x6x2-1stage"])
def test_vertical_stream_sees_only_rows_above(build_model, random_images,
                                              dropout_seed, config,
                                              training):
  """Every u tensor at row k of stage L ignores input rows from k 2^L on.

  Row k of stage L covers input rows k 2^L .. (k + 1) 2^L - 1, so it must
  have exactly zero gradient with respect to all of them and every row
  below. The output of every gated block must also see the row just
  above, k 2^L - 1. Checked for the output of every block of both passes
  and of every down- and upsampling layer, at every row.
  """
  shape, stages = CONFIGS[config]
  model = build_model(shape, num_hierarchies=stages, seed=10)
  network = model.network
  image = random_images(1, shape, seed=10)[0]
  rng = np.random.default_rng(10)

  with recording_vertical_stream(network) as recorders:
    targets = [(recorder, row) for recorder in recorders
               for row in range(network.sizes[recorder.level][0])]
    images = tf.constant(np.repeat(image[None], len(targets), 0),
                         tf.float64)
    ops = networks.FullPass(
        training=training,
        dropout_seed=dropout_seed if training else None)
    with tf.GradientTape() as tape:
      tape.watch(images)
      network.forward(images, None, ops)
      projected = 0.0
      for recorder in recorders:
        # The full pass works on turned images; turned back, row k is
        # row k.
        (output,) = recorder.outputs
        output = layers.turn(output)
        weights = np.zeros(output.shape)
        for n, (owner, row) in enumerate(targets):
          if owner is recorder:
            weights[n, row] = rng.normal(size=output.shape[2:])
        projected += tf.reduce_sum(output * weights)
    grads = tape.gradient(projected, images).numpy()

  leaks, unseen = [], []
  for n, (recorder, row) in enumerate(targets):
    first_row = row * 2 ** recorder.level
    name = (type(recorder.layer).__name__, recorder.level, row)
    if np.any(grads[n, first_row:] != 0):
      leaks.append(name)
    if recorder.is_block and row > 0 and not np.any(
        grads[n, first_row - 1] != 0):
      unseen.append(name)
  assert not leaks, (
      f"u sees its own row or below at (layer, stage, row) {leaks[:8]}")
  assert not unseen, f"u blind to the row above at {unseen[:8]}"


@pytest.mark.parametrize("channel_coupling", [False, True])
@pytest.mark.parametrize("training", [False, True],
                         ids=["inference", "training-dropout"])
def test_params_of_a_pixel_ignore_each_of_its_channels(
    cached_model, random_images, dropout_seed, channel_coupling, training):
  """Changing one channel of p leaves the params at p and before unchanged.

  Bit for bit, for each channel of each pixel of a 3-channel image; with
  channel coupling the network is the same, and any dependence on the
  pixel's own channels lives in the head (checked below).
  """
  shape = (4, 5, 3)
  model = cached_model(shape, channel_coupling=channel_coupling)
  height, width, channels = shape
  num = height * width
  image = random_images(1, shape, seed=11)[0]
  images = np.repeat(image[None], num * channels, 0)
  for n in range(num * channels):
    (i, j), c = divmod(n // channels, width), n % channels
    images[n, i, j, c] = (images[n, i, j, c] + 1 + n) % 256

  kwargs = params_kwargs(training, dropout_seed)
  expected = model.params(np.repeat(image[None], num * channels, 0),
                          **kwargs).numpy().reshape(num * channels, num, -1)
  got = model.params(images, **kwargs).numpy().reshape(num * channels, num,
                                                       -1)

  for n in range(num * channels):
    p = n // channels
    np.testing.assert_array_equal(got[n, :p + 1], expected[n, :p + 1])
    if p + 1 < num:
      assert not np.array_equal(got[n, follower(p, width)],
                                expected[n, follower(p, width)])


PAIRS = [(1, 0), (2, 0), (2, 1)]


def coupled_model(cached_model):
  return cached_model((4, 5, 3), channel_coupling=True, num_logistic_mix=2)


def coupled_layout(head):
  """Offsets on the last axis of the coupled head's parameters.

  Returns:
    (start of the means [C, K], start of the log-scales [C, K], start of
    the coefficients [C (C - 1) / 2, K]), after the K logits.
  """
  channels, num_mix = head.num_channels, head.num_logistic_mix
  return (num_mix, (1 + channels) * num_mix, (1 + 2 * channels) * num_mix)


def log_prob_of_channel(head, params, images, channel):
  """log p(x_c | x_<c) of `channel` at every pixel, [B, H, W]."""
  return head.log_prob(tf.constant(params), images).numpy()[..., channel]


def component_terms(head, params, images, channel):
  """log p(x_c | k, x_<c) of `channel` at every pixel, [B, H, W, K]."""
  return head.component_log_prob(tf.constant(params),
                                 images).numpy()[..., channel, :]


@pytest.mark.parametrize("d", [-60, 1, 45])
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}from{p[1]}")
def test_coupling_moves_mean_by_coefficient_times_change(cached_model,
                                                        pair, d):
  """Changing channel e of p by d moves channel c's means by coeff * d.

  In the [-1, 1] space, d grey levels are 2 d / 255. Each component's
  log-probability of every value 0..255 of channel c, at every pixel,
  with channel e changed by d, equals that with e unchanged and the
  component's mean of c moved by tanh(coefficient) * 2 d / 255, and
  differs from that with the means unmoved.
  """
  channel, earlier = pair
  model = coupled_model(cached_model)
  head = model.head
  num_mix = head.num_logistic_mix
  means_start, _, coeffs_start = coupled_layout(head)
  rng = np.random.default_rng(12)
  image = rng.integers(60, 196, (1, 4, 5, 3)).astype(np.int32)
  params = model.params(image).numpy()

  coeff_start = coeffs_start + PAIRS.index(pair) * num_mix
  coeffs = np.tanh(params[..., coeff_start:coeff_start + num_mix])
  mean_start = means_start + channel * num_mix
  shifted = params.copy()
  shifted[..., mean_start:mean_start + num_mix] += coeffs * 2 * d / 255

  images = np.repeat(image, 256, 0)
  images[..., channel] = np.arange(256)[:, None, None]
  changed = images.copy()
  changed[..., earlier] += d
  tiled = np.repeat(params, 256, 0)

  moved_by_data = component_terms(head, tiled, changed, channel)
  moved_by_hand = component_terms(head, np.repeat(shifted, 256, 0), images,
                                  channel)
  unmoved = component_terms(head, tiled, images, channel)

  np.testing.assert_allclose(moved_by_data, moved_by_hand, rtol=1e-10,
                             atol=1e-10)
  assert np.abs(moved_by_data - unmoved).max() > 1e-3


def test_channels_ignore_later_channels_and_coupling_is_only_link(
    cached_model, random_images):
  """Channel c of p ignores channels after c; earlier ones reach it only
  through the coupling coefficients and the shared component.

  With the head's parameters fixed, changing a channel: leaves
  log p(x_c | x_<c) of every channel c before it bit for bit unchanged,
  and changes those after it; leaves the channel terms of each component
  of every other channel unchanged once the coefficients are zero; and,
  with one component (no shared indicator to infer) and zero
  coefficients, leaves log p of every other channel unchanged.
  """
  model = coupled_model(cached_model)
  head = model.head
  channels, num_mix = head.num_channels, head.num_logistic_mix
  means_start, scales_start, coeffs_start = coupled_layout(head)
  images = random_images(4, (4, 5, 3), seed=13)
  params = model.params(images).numpy()
  uncoupled = params.copy()
  uncoupled[..., coeffs_start:] = 0.0
  # Component 0 alone, coefficients zero, as a one-component head.
  single = likelihoods.MixtureHead(channels, 1, channel_coupling=True)
  single_params = np.concatenate(
      [params[..., :1], params[..., means_start:scales_start:num_mix],
       params[..., scales_start:coeffs_start:num_mix],
       np.zeros(params.shape[:-1] + (3,))], axis=-1)

  for changed_channel in range(channels):
    changed = images.copy()
    changed[..., changed_channel] = (changed[..., changed_channel] + 77) % 256
    for c in range(channels):
      if c == changed_channel:
        continue
      before = log_prob_of_channel(head, params, images, c)
      after = log_prob_of_channel(head, params, changed, c)
      if c < changed_channel:
        np.testing.assert_array_equal(after, before)
      else:
        assert not np.array_equal(after, before)
        # Even without coefficients: the earlier channel says which
        # component the pixel likely came from.
        assert not np.array_equal(
            log_prob_of_channel(head, uncoupled, changed, c),
            log_prob_of_channel(head, uncoupled, images, c))
      np.testing.assert_array_equal(
          component_terms(head, uncoupled, changed, c),
          component_terms(head, uncoupled, images, c))
      np.testing.assert_array_equal(
          log_prob_of_channel(single, single_params, changed, c),
          log_prob_of_channel(single, single_params, images, c))
