"""The masked and the gated PixelCNN beside PixelCNN++.

Masked convolutions against a plain "same" convolution with the full
masked kernel; causality of both networks, exact, in float64, with both
heads, before and after data-dependent initialisation; the classic
network's blind spot where the theory puts it and the gated network's
absence of one; the gated vertical stack's blindness to its own row; the
fast sampler against the reference one; and the builders.
"""

import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import layers
from pixelcnnpp import models
from pixelcnnpp import networks

HEADS = ("softmax", "mixture")
BUILDERS = {"pixelcnn": models.PixelCNN, "gated": models.GatedPixelCNN}
DROPOUT_SEED = (3, 4)

# Small enough to check every output pixel against every input sub-pixel;
# two channels, so that a pixel's own channels are checked too.
SHAPE = (5, 6, 2)


def build(name, likelihood="softmax", shape=SHAPE, seed=0, **kwargs):
  """A tiny float64 model of the named family, weights drawn from seed."""
  options = dict(num_filters=4, num_layers=2, num_logistic_mix=2,
                 dropout_p=0.25, dtype=tf.float64)
  options.update(kwargs)
  tf.random.set_seed(seed)
  return BUILDERS[name](shape, likelihood=likelihood, **options)


def random_images(num, shape, seed=0):
  """int32 [num, H, W, C] uniform on 0..255."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (num,) + tuple(shape)).astype(np.int32)


def full_pass(training):
  seed = tf.constant(DROPOUT_SEED, tf.int32) if training else None
  return networks.FullPass(training=training, dropout_seed=seed)


def raster_mask(kh, kw, mask_type):
  """bool [kh, kw]: the inputs a masked kernel lets its centre see."""
  order = np.arange(kh * kw).reshape(kh, kw)
  centre = order[kh // 2, kw // 2]
  return (order < centre) | ((order == centre) & (mask_type == "B"))


def input_gradients(model, image, labels=None, training=False, seed=0):
  """Gradients of the parameters at every pixel r with respect to the input.

  Copy r of the image gives the parameters at r, projected on random
  weights, and is differentiated with respect to every one of its
  sub-pixels: one backward pass for all r. The network runs on float
  values 0..255, which it scales exactly as it scales integers.

  Returns:
    float64 [H * W, H, W, C], row r = i * W + j for output pixel (i, j).
  """
  height, width, _ = model.image_shape
  num = height * width
  images = tf.constant(np.repeat(image[None], num, 0), tf.float64)
  if labels is not None:
    labels = model.one_hot_labels(np.full([num], labels, np.int32))
  index = [[i * width + j, i, j] for i in range(height)
           for j in range(width)]
  rng = np.random.default_rng(seed)
  weights = tf.constant(rng.normal(size=(num, model.network.num_params)))
  with tf.GradientTape() as tape:
    tape.watch(images)
    params = model.network.forward(images, labels, full_pass(training))
    projected = tf.reduce_sum(tf.gather_nd(params, index) * weights)
  return tape.gradient(projected, images).numpy()


def seen_inputs(model, labels=None, training=False, num_images=3, seed=0):
  """bool [H * W, H, W, C]: sub-pixels with a non-zero gradient, per r.

  A sub-pixel counts as seen by r if its gradient is non-zero for any of
  `num_images` random images: a ReLU network can, for one image, have
  every unit on the path from an input to an output switched off, but
  the dependence is there. An input that must not be seen must have an
  exactly zero gradient for every image.
  """
  seen = False
  for n in range(num_images):
    image = random_images(1, model.image_shape, seed=seed + n)[0]
    grads = input_gradients(model, image, labels, training, seed + n)
    seen = seen | (grads != 0)
  return seen


def assert_causal_jacobian(seen, shape):
  """Unseen at r and after it in raster order; r's predecessor seen."""
  height, width, _ = shape
  order = np.arange(height * width).reshape(height, width)
  leaks, unseen = [], []
  for r in range(height * width):
    leaks += [(divmod(r, width), tuple(q))
              for q in np.argwhere(np.any(seen[r], -1) & (order >= r))]
    if r > 0:
      before = divmod(r - 1 if r % width else r - width, width)
      if not np.all(seen[r][before]):
        unseen.append((divmod(r, width), before))
  assert not leaks, f"(output, input) pairs that look ahead: {leaks[:8]}"
  assert not unseen, f"blind to the previous pixel: {unseen[:8]}"


def assert_future_changes_invisible(model, image, training, seed=0):
  """Changing pixel p, or p and all after it, keeps params up to p."""
  height, width, _ = model.image_shape
  num = height * width
  order = np.arange(num).reshape(1, height, width, 1)
  copy = np.arange(num).reshape(num, 1, 1, 1)
  base = np.repeat(image[None], num, 0)
  rng = np.random.default_rng(seed)
  offsets = rng.integers(1, 256, base.shape)
  kwargs = dict(training=training, dropout_seed=(
      tf.constant(DROPOUT_SEED, tf.int32) if training else None))
  expected = model.params(base, **kwargs).numpy().reshape(num, num, -1)
  for changed_at in (order == copy, order >= copy):
    changed = np.where(changed_at, (base + offsets) % 256, base)
    got = model.params(changed, **kwargs).numpy().reshape(num, num, -1)
    moved = [divmod(p, width) for p in range(num)
             if not np.array_equal(got[p, :p + 1], expected[p, :p + 1])]
    assert not moved, f"params at or before p moved for p in {moved[:8]}"


def assert_first_pixel_unconditional(model, training, labels=None):
  """Params at (0, 0) agree for images differing in every sub-pixel.

  Compared position by position, so that in training mode both batches
  see the same dropout masks; in inference mode the images of a batch
  must agree with each other too.
  """
  shape = model.image_shape
  images = np.concatenate([random_images(3, shape, seed=5),
                           np.zeros((1,) + shape, np.int32),
                           np.full((1,) + shape, 255, np.int32)])
  others = (images + 128) % 256
  if labels is not None:
    labels = np.full([len(images)], labels, np.int32)
  kwargs = dict(training=training, dropout_seed=(
      tf.constant(DROPOUT_SEED, tf.int32) if training else None))
  first = model.params(images, labels, **kwargs).numpy()
  second = model.params(others, labels, **kwargs).numpy()
  np.testing.assert_array_equal(first[:, 0, 0], second[:, 0, 0])
  if not training:
    # With dropout each image of a batch has its own masks.
    # With the image turned, (0, 0) of the last image is the last output
    # of each convolution, which the convolution library may sum in
    # another order: images at different places in a batch agree to
    # rounding. The check above, at the same place, is the exact one.
    np.testing.assert_allclose(
        first[:, 0, 0], np.repeat(first[:1, 0, 0], len(images), 0),
        rtol=1e-12, atol=1e-12)
  assert not np.array_equal(first[:, 0, 1], second[:, 0, 1])


@pytest.mark.parametrize("weight_norm", [True, False])
@pytest.mark.parametrize("kernel_size", [(7, 7), (3, 3), (5, 3), (1, 5),
                                         (3, 1)])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_equals_same_conv_with_full_masked_kernel(
    mask_type, kernel_size, weight_norm):
  """The half-height kernel gives what the full masked kernel gives.

  The reference puts the stored rows into a full (kh, kw) kernel, masks it
  with the raster-order mask built here, normalises over the visible
  weights and runs tf.nn.conv2d with "SAME" padding.
  """
  tf.random.set_seed(1)
  layer = layers.MaskedConv2D(3, 4, kernel_size, mask_type,
                              weight_norm=weight_norm, dtype=tf.float64)
  rng = np.random.default_rng(1)
  gain = rng.uniform(0.5, 2.0, 4)
  bias = rng.normal(size=4)
  if weight_norm:
    layer.g.assign(gain)
  layer.b.assign(bias)
  x = rng.normal(size=(2, 6, 7, 3))

  kh, kw = kernel_size
  assert layer.v.shape == (kh // 2 + 1, kw, 3, 4)
  full = np.zeros((kh, kw, 3, 4))
  full[:kh // 2 + 1] = layer.v.numpy()
  full[kh // 2 + 1:] = rng.normal(size=(kh // 2, kw, 3, 4))
  full *= raster_mask(kh, kw, mask_type)[:, :, None, None]
  if weight_norm:
    full *= gain / np.sqrt(np.sum(full ** 2, axis=(0, 1, 2)))
  expected = tf.nn.conv2d(x, full, 1, "SAME").numpy() + bias

  np.testing.assert_allclose(layer(x).numpy(), expected, rtol=0,
                             atol=1e-12)


def test_masked_conv_initialization_normalises_and_keeps_the_mask():
  """Data-dependent initialisation: zero mean, target scale, same mask."""
  tf.random.set_seed(2)
  layer = layers.MaskedConv2D(3, 5, (5, 5), "A", init_scale=0.5,
                              dtype=tf.float64)
  x = np.random.default_rng(2).normal(size=(4, 8, 9, 3))

  initial = layer(x, init=True).numpy()

  np.testing.assert_allclose(initial.mean(axis=(0, 1, 2)), 0, atol=1e-12)
  np.testing.assert_allclose(initial.std(axis=(0, 1, 2)), 0.5, rtol=1e-8)
  np.testing.assert_allclose(layer(x).numpy(), initial, rtol=0, atol=1e-12)
  centre_row = layer.kernel().numpy()[-1]
  assert np.all(centre_row[2:] == 0) and np.all(centre_row[:2] != 0)


@pytest.mark.parametrize("kernel_size,mask_type,message", [
    ((4, 3), "A", "odd kernel size"),
    ((1, 1), "A", "sees nothing"),
    ((3, 3), "C", "mask_type"),
])
def test_masked_conv_refuses_bad_settings(kernel_size, mask_type, message):
  with pytest.raises(ValueError, match=message):
    layers.MaskedConv2D(1, 1, kernel_size, mask_type)


@pytest.fixture(scope="module")
def staged_model():
  """Returns get(name, likelihood, state): built once, fresh or initialised.

  Initialised models have also been through `initialize` on random
  images, so that their gains and biases differ from the fresh ones.
  """
  cache = {}

  def get(name, likelihood, state):
    key = (name, likelihood, state)
    if key not in cache:
      model = build(name, likelihood, seed=len(cache))
      if state == "initialized":
        before = [v.numpy() for v in model.trainable_variables]
        model.initialize(random_images(8, SHAPE, seed=6))
        assert any(not np.array_equal(b, v.numpy())
                   for b, v in zip(before, model.trainable_variables))
      cache[key] = model
    return cache[key]

  return get


@pytest.mark.parametrize("state", ["fresh", "initialized"])
@pytest.mark.parametrize("likelihood", HEADS)
@pytest.mark.parametrize("name", BUILDERS)
def test_causal_jacobian_and_no_look_ahead(staged_model, name, likelihood,
                                           state):
  """Checks 1, 2 and 4, in inference mode and in training with dropout.

  d params(r) / d x(q) is exactly 0 for every sub-pixel q at or after r;
  changing p, or p and every later pixel, leaves the params at p and
  before bit for bit the same; params at (0, 0) ignore the image.
  """
  model = staged_model(name, likelihood, state)
  image = random_images(1, SHAPE, seed=7)[0]

  for training in (False, True):
    seen = seen_inputs(model, training=training, seed=7)
    assert_causal_jacobian(seen, SHAPE)
    assert_future_changes_invisible(model, image, training)
    assert_first_pixel_unconditional(model, training)


@pytest.mark.parametrize("shape", [(7, 9, 1), (9, 7, 3)])
@pytest.mark.parametrize("name", BUILDERS)
def test_causal_at_odd_non_square_sizes(name, shape):
  """Checks 1, 2 and 4 again, for the mixture head, after initialisation,
  at odd heights and widths, grey and colour."""
  model = build(name, "mixture", shape=shape, seed=3)
  model.initialize(random_images(8, shape, seed=4))
  image = random_images(1, shape, seed=5)[0]
  for training in (False, True):
    assert_causal_jacobian(seen_inputs(model, training=training, seed=5),
                           shape)
    assert_future_changes_invisible(model, image, training)
    assert_first_pixel_unconditional(model, training)


@pytest.mark.parametrize("name", BUILDERS)
def test_conditional_model_is_causal_and_first_pixel_sees_only_label(name):
  model = build(name, num_classes=3, seed=8)

  assert_causal_jacobian(seen_inputs(model, labels=2, seed=8), SHAPE)
  for label in range(3):
    assert_first_pixel_unconditional(model, False, labels=label)
  first = model.params(np.zeros((3,) + SHAPE, np.int32),
                       np.arange(3)).numpy()[:, 0, 0]
  assert not np.array_equal(first[0], first[1])
  assert not np.array_equal(first[1], first[2])


def receptive_field(stack, radius):
  """bool [2 radius + 1, 2 radius + 1]: offsets that a stack reaches.

  Entry [radius + di, radius + dj] is True when the output at a pixel can
  depend on the input at offset (di, dj) from it. Reachability is carried
  through the layers, each given as (mask, residual): an input offset o
  of a layer's input and a visible kernel offset d (mask bool [kh, kw],
  centre [kh // 2, kw // 2]) reach the output at o + d, and a residual
  connection also passes its input's offsets through unchanged.
  """
  size = 2 * radius + 1
  field = np.zeros((size, size), bool)
  field[radius, radius] = True
  for mask, residual in stack:
    kh, kw = mask.shape
    reached = field.copy() if residual else np.zeros_like(field)
    for r, c in np.argwhere(mask):
      di, dj = r - kh // 2, c - kw // 2
      moved = np.zeros_like(field)
      moved[max(di, 0):size + min(di, 0), max(dj, 0):size + min(dj, 0)] = (
          field[max(-di, 0):size + min(-di, 0),
                max(-dj, 0):size + min(-dj, 0)])
      reached |= moved
    field = reached
  return field


def window_offsets():
  """(di, dj) of the pixels before the centre in a 9x9 window."""
  return [(di, dj) for di in range(-4, 1) for dj in range(-4, 5)
          if (di, dj) < (0, 0)]


def unseen_in_window(seen, shape, field=None):
  """Per output pixel, the earlier window offsets inside the image unseen.

  With `field` (from `receptive_field`, radius 4), also the offsets that
  theory says the network does not reach. An offset seen in some
  channels only is a failure.
  """
  height, width, _ = shape
  observed, expected, partial = {}, {}, []
  for i in range(height):
    for j in range(width):
      observed[i, j], expected[i, j] = set(), set()
      for di, dj in window_offsets():
        if not (0 <= i + di < height and 0 <= j + dj < width):
          continue
        channels = seen[i * width + j][i + di, j + dj]
        if not np.any(channels):
          observed[i, j].add((di, dj))
        elif not np.all(channels):
          partial.append(((i, j), (di, dj)))
        if field is not None and not field[4 + di, 4 + dj]:
          expected[i, j].add((di, dj))
  assert not partial, f"seen in some channels only: {partial[:8]}"
  return observed, expected


@pytest.mark.parametrize("likelihood", HEADS)
def test_pixelcnn_blind_spot_is_where_theory_puts_it(likelihood):
  """Check 3 for the classic network: the blind spot, exactly.

  The theoretical field of the 7x7 type "A" layer and the 3x3 type "B"
  blocks is propagated from their masks; with random weights, the pixels
  of each 9x9 window whose gradient is zero for every one of a few random
  images are exactly those outside it, and there are some (the blind
  spot) although the field reaches every edge of the window.
  """
  shape = (9, 11, 1)
  num_layers = 2
  model = build("pixelcnn", likelihood, shape, num_filters=8,
                num_layers=num_layers, seed=9)
  stack = [(raster_mask(7, 7, "A"), False)]
  stack += [(raster_mask(3, 3, "B"), True)] * num_layers
  field = receptive_field(stack, radius=4)
  # The theory is causal, and its field spans the window.
  assert not field[4, 4:].any() and not field[5:].any()
  assert field[0].any() and field[:, 0].any() and field[:, -1].any()

  seen = seen_inputs(model, seed=9)

  observed, expected = unseen_in_window(seen, shape, field)
  wrong = {p: (observed[p], expected[p]) for p in observed
           if observed[p] != expected[p]}
  assert not wrong, (
      f"(pixel): (zero gradient, theory) {list(wrong.items())[:4]}")
  assert any(expected.values()), "the theory predicts no blind spot"
  assert expected[4, 5], "no blind spot in a window inside the image"


@pytest.mark.parametrize("likelihood", HEADS)
def test_gated_pixelcnn_has_no_blind_spot(likelihood):
  """Check 3 for the gated network: every earlier window pixel is seen.

  With a 7x7 first layer and one 3x3 layer after it, the field already
  spans the window, so every earlier pixel of it inside the image must
  have a non-zero gradient, among them the four neighbours above and
  left.
  """
  shape = (9, 11, 1)
  model = build("gated", likelihood, shape, num_layers=1, seed=10)

  seen = seen_inputs(model, seed=10)

  observed, _ = unseen_in_window(seen, shape)
  blind = {p: s for p, s in observed.items() if s}
  assert not blind, f"(pixel): unseen offsets {list(blind.items())[:4]}"


class RecordingLayer:
  """Stands in for a gated layer; keeps its vertical input and output."""

  def __init__(self, layer):
    self.layer = layer
    self.v_in = self.v_out = None

  def __call__(self, v, h, labels, ops):
    self.v_in = v
    self.v_out, h_out = self.layer(v, h, labels, ops)
    return self.v_out, h_out


def test_gated_vertical_stack_sees_only_rows_above():
  """Check 6: v at row i has zero gradient w.r.t. rows i and below.

  Every vertical stack tensor, after the first layer and after each gated
  layer, at every row; each must also see the row just above.
  """
  model = build("gated", num_layers=2, dropout_p=0.0, seed=11)
  network = model.network
  height = SHAPE[0]
  image = random_images(1, SHAPE, seed=11)[0]
  images = tf.constant(np.repeat(image[None], height, 0), tf.float64)
  original = list(network.gated_layers)
  recorders = [RecordingLayer(layer) for layer in original]
  network.gated_layers[:] = recorders
  rng = np.random.default_rng(11)
  try:
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(images)
      network.forward(images, None, networks.FullPass())
      stacks = [recorders[0].v_in] + [r.v_out for r in recorders]
      # The full pass works on turned images; turned back, row n is row n.
      stacks = [layers.turn(v) for v in stacks]
      # Copy n of the image is projected at row n only.
      projected = []
      for v in stacks:
        weights = np.zeros(v.shape)
        for row in range(height):
          weights[row, row] = rng.normal(size=v.shape[2:])
        projected.append(tf.reduce_sum(v * weights))
  finally:
    network.gated_layers[:] = original

  for number, value in enumerate(projected):
    grads = tape.gradient(value, images).numpy()
    for row in range(height):
      assert not np.any(grads[row, row:] != 0), (number, row)
      if row > 0:
        assert np.all(grads[row, row - 1] != 0), (number, row)


@pytest.mark.parametrize("name,likelihood,num_classes", [
    ("pixelcnn", "softmax", 0), ("pixelcnn", "mixture", 0),
    ("gated", "softmax", 0), ("gated", "mixture", 0),
    ("gated", "softmax", 3)])
def test_fast_sampler_equals_reference(name, likelihood, num_classes):
  """Check 15: the row-cached sampler draws the reference's images.

  Same seed, same images, after data-dependent initialisation; the
  parameters each pixel was drawn from agree to rounding.
  """
  shape = (4, 5, 2)
  model = build(name, likelihood, shape, num_classes=num_classes, seed=12)
  labels = np.array([0, 2]) if num_classes else None
  model.initialize(random_images(4, shape, seed=12),
                   np.array([0, 1, 2, 0]) if num_classes else None)

  fast, fast_params = model.sample(2, seed=5, labels=labels, method="fast",
                                   return_params=True)
  slow, slow_params = model.sample(2, seed=5, labels=labels,
                                   method="reference", return_params=True)

  np.testing.assert_array_equal(np.asarray(fast), np.asarray(slow))
  np.testing.assert_allclose(np.asarray(fast_params),
                             np.asarray(slow_params), rtol=0, atol=1e-10)
  assert len(np.unique(np.asarray(fast))) > 1


@pytest.mark.parametrize("name", BUILDERS)
def test_build_maps_pixelcnnpp_keywords(name):
  """build() takes the training configuration of any model.

  num_resnet becomes the number of layers after the first; the
  PixelCNN++-only num_hierarchies is ignored; the other shared keywords
  keep their meaning.
  """
  model = models.build(model=name, likelihood="mixture", num_filters=4,
                       num_resnet=3, num_hierarchies=3, num_logistic_mix=2,
                       dropout_p=0.1, channel_coupling=True,
                       image_shape=(4, 4, 3), num_classes=0, seed=0)

  assert model.network.num_layers == 3
  assert model.network.num_filters == 4
  assert model.head.channel_coupling
  assert model.network.num_params == 2 * (1 + 2 * 3 + 3)
  assert np.all(np.isfinite(model.log_prob(random_images(2, (4, 4, 3)))))
  assert BUILDERS[name]((4, 4, 1), num_layers=2).network.num_layers == 2
  with pytest.raises(ValueError, match="disagree"):
    BUILDERS[name]((4, 4, 1), num_layers=2, num_resnet=3)


def test_models_lists_every_family():
  assert models.MODELS == ("pixelcnnpp", "pixelcnn", "gated")
  with pytest.raises(ValueError, match="pixelcnn"):
    models.build(model="pixelrnn", image_shape=(4, 4, 1))
