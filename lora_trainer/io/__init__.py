"""File output: atomic writes and TensorBoard event files."""
