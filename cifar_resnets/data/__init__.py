"""Datamodules and data utilities (CIFAR-10/100 pickles, GPU-resident batches, ImageNet subsets)."""

from cifar_resnets.data.cifar import CIFARDataModule
from cifar_resnets.data.cifar_files import CIFARFileError, load_cifar, load_cifar_pickle
from cifar_resnets.data.gpu_loader import GPUBatchLoader

__all__ = ["CIFARDataModule", "CIFARFileError", "GPUBatchLoader", "load_cifar", "load_cifar_pickle"]
