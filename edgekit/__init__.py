"""edgekit: train an image classifier, convert it for small devices, measure every variant."""

__version__ = "0.1.0"
