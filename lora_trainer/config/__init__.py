"""The training parameters: the ``TrainConfig`` schema (kohya's names, with each field's help, limits
and metadata key), its files (TOML, kohya TOML, CLI flags), the step maths and the presets.

Torch-free: the WebUI's Python imports it at start-up.
"""
