"""Stage 2, embed: backbone registry, the in-graph embedder, weights and fingerprint."""
