"""Stage 1, source: find, read and validate CIFAR archives (no Ray, no TensorFlow)."""
