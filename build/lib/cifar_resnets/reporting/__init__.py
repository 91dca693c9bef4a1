"""Reading what runs wrote (run folders, TensorBoard scalars) and drawing it."""
