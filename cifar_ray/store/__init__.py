"""Stage 4, store: OUT's layout (layout.py), feature files and shard records, the manifest,
the test preview, storage locations, and the checks behind `inspect`."""
