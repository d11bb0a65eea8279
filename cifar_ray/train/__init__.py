"""Stage 5, train: the dense head on Ray Train, baselines, splits and metrics."""
