"""The command line: ``python -m lora_trainer train | demo | inspect | bench``."""
