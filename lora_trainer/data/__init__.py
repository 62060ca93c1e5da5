"""Dataset: folders, captions, images, buckets, batches and latent cache."""
