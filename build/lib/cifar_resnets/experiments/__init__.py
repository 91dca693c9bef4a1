"""Results tables of cifar-reproduce, installed as the package ``cifar_resnets.experiments``."""
