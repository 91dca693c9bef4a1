"""Handing a trained net on: safetensors weights with a card, ONNX and TorchScript, from a checkpoint.

Nothing here imports Lightning or ``cifar_resnets.training``: cifar-export reads the checkpoint the way
cifar-eval does (``inference.checkpoint``), so it starts as fast.
"""
