"""Hyper-parameter search (``cifar-search``): an Optuna study whose trials are the suite's own runs."""
