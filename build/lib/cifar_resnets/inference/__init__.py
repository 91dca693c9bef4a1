"""Using trained checkpoints: loading, preprocessing, prediction, TTA, ensembles and evaluation reports.

Nothing here imports Lightning or ``cifar_resnets.training``: the commands that only predict start fast.
"""
