"""The LoRA Trainer tab (gradio 3.41 and 4.40) and the standalone server.

Only compat, form, tab, entry and __main__ import gradio. The logic they call (fields, actions, status,
chart, dataset_view, names, kohya_gui) is gradio- and torch-free, and tested without a UI.
"""
