"""The Evaluate sub-tab: ``tab`` builds the components and wires them to the gradio-free ``actions``
(runs, analysis), ``grid``, ``keep`` and ``validation``."""
