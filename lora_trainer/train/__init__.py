"""Training: optimizers, schedulers, noise, the loop, state and metrics."""
