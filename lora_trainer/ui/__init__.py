"""The LoRA Trainer tab (gradio 3.41 and 4.40) and the standalone server.

Only the modules that build components import gradio; names.py and kohya_gui.py stay torch- and gradio-free.
"""
