"""Audit a feature store: nearest neighbours, near-duplicates across splits, a cleaned test
score (issue 23). Reads the store; sits after extraction and before training."""
