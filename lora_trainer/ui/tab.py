"""The "LoRA Trainer" tab: the Dataset, Train and Evaluate sub-tabs over the module-level runner.

The page holds no training state. A poll reads the runner's jobs every few seconds and redraws what
changed, so a reloaded page (or "Reload UI") shows the running job again. ``build_tab`` is called by
the WebUI's ``on_ui_tabs`` callback and by the standalone server; each sub-tab module builds its
components and wires its own events, sharing the form through a ``TabContext``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..config.schema import TrainConfig
from . import actions
from .compat import keep_out_of_ui_config
from .form import ConfigForm
from ..install.status import said, summarize
from .status import message_html, tab_language, use_language


@dataclass
class TabContext:
    """What the sub-tabs share: the runner and host, the one settings form, and the jobs every page polls."""
    runner: Any
    host: Any
    install: dict | None
    defaults: TrainConfig
    form: ConfigForm
    jobs: actions.JobsSnapshot
    blocks: Any = None            # the tab's gr.Blocks (for its page-load event)
    dataset: Any = None           # the Dataset sub-tab (its summary follows the form the page opens with)

    @property
    def ready(self) -> bool:
        return not self.install or self.install.get("ready", True)

    def current_config(self, values: list[Any], model_choice: str | None = None) -> TrainConfig:
        """The form's values as a config (``ConfigError`` names every bad one, and every path a shared WebUI
        does not allow); ``model_choice``: the base model picked in the Train tab's list."""
        cfg, _ = self.form.to_config(values, base=self.defaults)
        if model_choice is not None:
            cfg = cfg.replace(pretrained_model_name_or_path=actions.resolve_base_model(model_choice, self.host))
        return actions.allowed_folders(self.host).check_config(cfg)


def default_config(host: Any, base_model_path: str) -> TrainConfig:
    try:
        lora_dir = host.lora_dir()
    except Exception:
        lora_dir = ""
    return TrainConfig(pretrained_model_name_or_path=base_model_path, output_dir=lora_dir)


def install_banner(install: dict | None) -> str:
    if not install or install.get("ready", True):
        return ""
    language = tab_language()
    summary = summarize(install, language) if install.get("status") else install.get("summary", "")
    lines = [summary] + said(install, "problems", language)[:6]
    advice = ""
    if install.get("command"):
        lines.append(install["command"])
        advice = "Run the command above in the WebUI's Python environment, then restart the WebUI."
    return message_html("error", "Training is not available yet", lines, advice)


def build_tab(runner: Any, host: Any, install: dict | None = None) -> gr.Blocks:
    """The tab's Blocks; render it inside a parent Blocks (the host wraps it in a TabItem)."""
    from .dataset_tab import build_dataset, wire_step_maths
    from .evaluate.tab import build_evaluate
    from .train_tab import build_train

    language = getattr(host, "language", None)
    if callable(language):
        use_language(language)   # the boxes show keyed sentences in the host's UI language
    _, base_path = actions.default_checkpoint(host)
    defaults = default_config(host, base_path)
    ctx = TabContext(runner, host, install, defaults, ConfigForm(defaults), actions.JobsSnapshot(runner))
    with gr.Blocks(analytics_enabled=False) as tab:
        ctx.blocks = tab
        gr.HTML(install_banner(install), elem_id="lora_trainer_install")
        # ids and the selected one said: gradio 4.40 then warns once as the tabs mount, not once per tab
        with gr.Tabs(elem_id="lora_trainer_tabs", selected="dataset"):
            with gr.Tab("Dataset", id="dataset", elem_id="lora_trainer_tab_dataset"):
                dataset = ctx.dataset = build_dataset(ctx)
            with gr.Tab("Train", id="train", elem_id="lora_trainer_tab_train"):
                train = build_train(ctx)
            with gr.Tab("Evaluate", id="evaluate", elem_id="lora_trainer_tab_evaluate") as evaluate_tab:
                build_evaluate(runner, host, evaluate_tab, tab)
        wire_step_maths(ctx, dataset, train)
    keep_out_of_ui_config(*tab.blocks.values())   # defaults follow the trainer and the host, not ui-config.json
    return tab
