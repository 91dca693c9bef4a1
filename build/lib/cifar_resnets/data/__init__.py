"""Datamodules and data utilities (CIFAR-10/100 pickles, GPU-resident batches, ImageNet subsets).

Import from the submodules (``cifar_resnets.data.cifar`` ...): this package imports nothing itself,
so light tools (the config checks) can read the file specs without loading torch and Lightning.
"""
