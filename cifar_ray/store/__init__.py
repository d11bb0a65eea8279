"""Stage 4, store: feature files, records and manifest, storage locations, checks."""
