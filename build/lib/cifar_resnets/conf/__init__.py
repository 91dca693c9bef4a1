"""Hydra configs of cifar-train, installed as the package ``cifar_resnets.conf`` (see pyproject)."""
