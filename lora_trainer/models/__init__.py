"""Base models: family detection, shipped configs, tokenizers, key layouts, loading, tiny test models."""
