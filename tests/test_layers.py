"""Tests of layers used on their own: dropout, 1x1 layers, gated blocks."""

import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import layers
from pixelcnnpp import networks


@pytest.mark.parametrize("rate,bits", [(0.5, 1), (0.25, 2), (0.75, 2),
                                       (0.0625, 4), (0.1, 8), (0.3, 8)])
def test_dropout_keeps_the_rounded_share_scaled(rate, bits):
  """Kept units are scaled by 1 / (1 - rate), the rest are exact zeros.

  Over 10^6 units the kept share is within 5 standard deviations of
  1 - rate (rate rounded to 1/256), and so the mean of a tensor of ones
  stays at 1. Neighbouring units, and units decided by different bits of
  the same random byte (which lie size / (8 / bits) apart), are
  uncorrelated.
  """
  rounded = round(rate * 256) / 256
  x = tf.ones([1000, 1000], tf.float64)
  y = layers.dropout(x, rate, tf.constant([3, 4])).numpy()
  kept = y != 0
  np.testing.assert_array_equal(y[kept], 1 / (1 - rounded))
  share = kept.mean()
  spread = np.sqrt(rounded * (1 - rounded) / kept.size)
  assert abs(share - (1 - rounded)) < 5 * spread, share
  assert abs(y.mean() - 1) < 5 * spread / (1 - rounded)
  flat = kept.reshape(-1).astype(float)
  lags = (1, 2) if bits == 8 else (1, 2, kept.size // (8 // bits))
  for lag in lags:
    correlation = np.corrcoef(flat[:-lag], flat[lag:])[0, 1]
    assert abs(correlation) < 0.01, (lag, correlation)


def test_dropout_mask_depends_on_seed_and_shape_only():
  x = tf.random.normal([3, 5, 7, 2], seed=1)  # 210 units: no whole word.
  seed = tf.constant([1, 2])
  first = layers.dropout(x, 0.5, seed).numpy()
  again = layers.dropout(x, 0.5, seed).numpy()
  other = layers.dropout(x, 0.5, tf.constant([1, 3])).numpy()
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first != 0, other != 0)
  scaled = layers.dropout(2.0 * x, 0.5, seed).numpy()
  np.testing.assert_array_equal(scaled, 2.0 * first)


def test_dropout_rate_zero_is_the_identity():
  x = tf.random.normal([4, 4], seed=2)
  assert layers.dropout(x, 0.0, tf.constant([0, 0])) is x


def test_dropout_rate_that_rounds_to_one_is_refused():
  with pytest.raises(ValueError, match="at most 0.998"):
    layers.dropout(tf.ones([4]), 0.999, tf.constant([0, 0]))


def test_network_in_network_on_parts_equals_it_on_their_concatenation():
  layer = layers.NetworkInNetwork(7, 3, dtype=tf.float64)
  layer.g.assign(tf.constant([0.5, 2.0, -1.0], tf.float64))
  parts = [tf.random.normal([2, 3, 4, c], dtype=tf.float64, seed=c)
           for c in (2, 5)]
  np.testing.assert_allclose(layer(parts).numpy(),
                             layer(tf.concat(parts, -1)).numpy(),
                             rtol=1e-13, atol=1e-13)


def test_two_part_auxiliary_input_keeps_the_weights_order():
  """A block given [u, s] computes what it computes on concat([u, s]).

  Each part passes through concat_elu on its own, so the 1x1 layer's
  inputs arrive as [u, -u, s, -s]; its weights must still be read in the
  order of concat_elu of the concatenation, [u, s, -u, -s], so that both
  ways of passing the input (and checkpoints) mean the same function.
  """
  block = networks.GatedResnet(4, layers.DownRightShiftedConv2D,
                               aux_channels=6, aux_parts=2,
                               dtype=tf.float64)
  x, u, s = [tf.random.normal([2, 5, 6, c], dtype=tf.float64, seed=seed)
             for seed, c in ((1, 4), (2, 3), (3, 3))]
  ops = networks.FullPass()
  by_parts = block(layers.turn(x), [layers.turn(u), layers.turn(s)], None,
                   ops)
  whole = block(layers.turn(x), layers.turn(tf.concat([u, s], -1)), None,
                ops)
  np.testing.assert_allclose(by_parts.numpy(), whole.numpy(), rtol=1e-13,
                             atol=1e-13)
  # The order matters: a block that read the parts' rows in turn would
  # differ.
  block.aux.part_rows = None
  shuffled = block(layers.turn(x), [layers.turn(u), layers.turn(s)], None,
                   ops)
  assert np.abs(shuffled.numpy() - whole.numpy()).max() > 1e-3
