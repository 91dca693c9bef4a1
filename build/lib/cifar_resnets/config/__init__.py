"""A run's config: composing it from ``conf/`` as ``cifar-train`` does, and refusing impossible values."""
