"""Evaluation of a finished run: loss analysis, grid scores, recommendation, keep, diagnosis.

Everything here except ``validation.py`` runs without torch (the WebUI's Python 3.10 imports
it at start-up); inputs are plain data and outputs are dataclasses, so a gradio tab calls it
directly.
"""
