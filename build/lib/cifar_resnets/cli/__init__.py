"""The command lines: argument parsing and one-line user errors; the work is done by the packages below."""
