"""Fake ``modules_forge`` (its presence is how Forge is told apart from A1111)."""
