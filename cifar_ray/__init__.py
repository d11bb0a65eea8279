"""cifar-ray: image datasets to embeddings with Ray actors, then classifiers on the latents."""

__version__ = "0.1.0"
