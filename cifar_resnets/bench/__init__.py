"""``cifar-bench``: cifar-train's training images/s on this device, against a plain PyTorch loop.

The ``reference`` path is the per-image DataLoader, fp32 loop the reimplementations the suite reproduces
train with; ``cifar-train`` is the real config, datamodule and Trainer with cifar-train's defaults.
Warm-up and once-per-run work are not timed, and the clock is read after a device sync at both ends.
Developer instruments live in ``benchmarks/``, outside the package.
"""
