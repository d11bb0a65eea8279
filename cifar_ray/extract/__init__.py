"""Stage 3, extract: the extraction job, its worker, and the Ray actor pool (Ray here)."""
