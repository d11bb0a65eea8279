"""Your own images: folder trees, Parquet files and WebDataset tars, local or on object
storage, behind one interface (`dataset.ImageDataset`): list -> plan -> read a shard."""
