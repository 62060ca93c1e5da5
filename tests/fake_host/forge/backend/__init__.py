"""Fake Forge ``backend`` package."""
