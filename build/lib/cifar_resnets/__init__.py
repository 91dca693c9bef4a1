"""Train, compare and reproduce ResNet-family image classifiers."""

__version__ = "0.1.0"
