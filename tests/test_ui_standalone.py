"""``python -m lora_trainer.ui`` where gradio is not installed (the README's .venv): advice, not a traceback."""
from __future__ import annotations

import sys


def test_without_gradio_the_server_says_what_to_install(monkeypatch, capsys):
    from lora_trainer.ui.__main__ import main

    monkeypatch.setitem(sys.modules, "gradio", None)   # import gradio → ImportError, on every stack
    assert main(["--output-dir", "never-created"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the LoRA Trainer page needs gradio, which is not installed in this Python "
                          f"({sys.executable}).")
    assert ".venv-host/bin/python -m lora_trainer.ui" in err and "-m pip install gradio==4.40.0" in err
