"""``cifar-bench``: cifar-train's training images/s on this device, against a plain PyTorch loop.

Two paths, on the same images and the same net (built from ``conf/model``):

- ``reference``: the plain PyTorch reference loop, as the reimplementations the suite reproduces
  train: a torchvision-style Dataset whose PIL transforms (random crop with 4 pixels of padding, flip,
  ToTensor, Normalize) run per image in DataLoader workers, fp32, plain SGD (``reference_loop``).
- ``cifar-train``: cifar-train as users run it: the real config, datamodule, module and Trainer from
  ``training/build.py`` with cifar-train's defaults (on one CUDA GPU: the data on the device, bf16,
  each training step replayed as one CUDA graph), plus any ``--override`` (``train_path``).

Warm-up steps (compilation, graph recording, worker start, the first logging step) are not timed,
nor is what the Trainer does after the last step (once per run); the clock is read after a device
sync at both ends. ``table6`` turns the measured images/s into an estimate of He et al.'s Table 6
wall time. Developer instruments (the raw loop without Lightning, host time per step, time to
accuracy, the GPU-session scripts) live in ``benchmarks/``, outside the package.
"""
