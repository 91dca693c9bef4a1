"""``cifar-bench``: training images/s on this device, the seed projects' way against the suite's.

Paths, all on the same data and the same net (built from ``conf/model``):

- ``seed``:  the seed projects' loop: a torchvision-style Dataset with PIL transforms (RandomCrop 4,
  flip, ToTensor, Normalize) in DataLoader workers, fp32, plain SGD loop (``seed_loop``).
- ``suite``: ``cifar-train`` as users run it: the real config, datamodule, module and Trainer from
  ``build.py`` (``loader``/``precision``/``compile``/``cuda_graph`` left at their defaults, TensorBoard
  logging into a temporary folder); no checkpoint files or progress bar (disk and terminal, not training).
  On one CUDA GPU that is the fast path below (``trainer_paths``).
- ``fast``:  the fastest the suite offers, inside the Trainer: GPU-resident loader, bf16 on CUDA, each
  training step replayed as one CUDA graph (``module.cuda_graph``) around inductor kernels
  (``model.compile=auto``); on the CPU the GPU-resident loader on CPU tensors, eager.
- ``eager``: the ``fast`` settings without CUDA graphs or compilation: what the graphs buy.
- ``raw``:   the ``fast`` settings in the suite's own plain loop (no Lightning), to show Lightning's share
  (``raw_loop``).

Warm-up steps (compilation, graph recording, worker start) are excluded, and so is what the Trainer
does after the last step (once per run; the raw loop has none); the clock is read after a device
sync at both ends. ``table6`` turns measured images/s into He et al.'s Table 6 wall time,
``time_to_accuracy`` trains a recipe to its test accuracy, and ``cli`` is the command line.
"""
