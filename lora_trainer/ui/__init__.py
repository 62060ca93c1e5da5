"""The LoRA Trainer tab (gradio 3.41 and 4.40) and the standalone server.

Only compat, form and the sub-tab modules import gradio (entry and __main__ inside functions). The logic
they call (fields, actions, status, dataset_view, names, kohya_gui, the Evaluate sub-tab's actions) is
gradio- and torch-free, and tested without a UI.
"""
