"""Stage 5, train: the dense head on Ray Train, baselines, splits, metrics, the one result
record every model writes (results.py) and the 2-D feature maps."""
