"""Benchmarks and device tools (timed training steps, kohya sd-scripts beside us, memory traces).

Not part of the shipped package: ``lora_trainer`` never imports from here. Run them from the
repository folder, e.g. ``python -m benchmarks.bench --model sd15 --batch 1``.
"""
