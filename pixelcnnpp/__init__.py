"""Autoregressive image models: PixelCNN++, Gated PixelCNN, masked PixelCNN."""
