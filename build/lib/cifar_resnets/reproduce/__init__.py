"""Published results tables: their definitions, the jobs that rerun them, and the reports beside the paper."""
