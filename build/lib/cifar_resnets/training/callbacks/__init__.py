"""Lightning callbacks of the suite, where Lightning's own do not fit (each module says why)."""
