"""The Dataset workbench inside the Dataset sub-tab: ``tab`` builds its components and wires them to the
gradio-free ``project_actions`` (project, import, hand-off), ``caption_actions`` (captions, batch edits, trait
fold, undo) and ``check_actions`` (checks, fixes, regularization images)."""
