"""Flags of the network configuration that a benchmark sets for both models.

The comparisons with TFP's PixelCNN build both models from the same
values of these flags; the defaults are the configuration they are
reported at (32 filters, one residual block per stage, two stages, five
logistic components).
"""

from absl import flags


def define_network_flags():
  """Defines --num_filters, --num_resnet, --num_hierarchies and
  --num_logistic_mix."""
  flags.DEFINE_integer("num_filters", 32, "Channels of every hidden "
                       "layer, for both models.")
  flags.DEFINE_integer("num_resnet", 1, "Gated residual blocks per stage, "
                       "for both models.")
  flags.DEFINE_integer("num_hierarchies", 2, "Resolution stages, for both "
                       "models.")
  flags.DEFINE_integer("num_logistic_mix", 5, "Logistic mixture "
                       "components per sub-pixel, for both models.")
