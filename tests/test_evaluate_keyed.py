"""The evaluation's refusals and notes in Chinese: the X/Y/Z axes, the runs, keeping an epoch, the grid's settings.

English stays what it was (the other tests assert it); here the same sentences are read in zh_CN.
"""
from __future__ import annotations

import pytest

from lora_trainer.errors import TrainerError
from lora_trainer.evaluate.grid_axes import AxisError, EpochAxis, WeightAxis
from lora_trainer.evaluate.keep import delete_files, validate_name
from lora_trainer.evaluate.runs import find_runs, open_run, split_epoch_values


@pytest.fixture
def lora_dir(tmp_path):
    folder = tmp_path / "Lora"
    folder.mkdir()
    for name in ("dreamgirl-000001", "dreamgirl-000002", "dreamgirl"):
        (folder / f"{name}.safetensors").write_bytes(b"")
    return folder


def test_an_unknown_epoch_on_the_xyz_axis_is_refused_in_the_webuis_language(lora_dir):
    axis = EpochAxis(lambda: str(lora_dir), language=lambda: "zh_CN")
    with pytest.raises(AxisError) as caught:
        axis.resolve("a photo <lora:dreamgirl:0.7>", ["7"])
    text = str(caught.value)
    assert text.startswith("“7”不对应训练 “dreamgirl”（位于 ") and "（现有：第 1, 2 轮，最终版）。请使用上面列出的轮次编号" in text
    english = caught.value.format("en")
    assert "'7' names no saved file of the run 'dreamgirl'" in english and "(it has epochs 1, 2, final). Use one" in english
    with pytest.raises(AxisError, match="LoRA 轮次：“nosuch”不是 .* 中任何训练保存的文件"):
        axis.resolve("a photo", ["nosuch"])


def test_the_weight_axis_refuses_in_chinese_and_a_failing_language_source_means_english(lora_dir):
    class P:
        prompt = "a photo"

    with pytest.raises(AxisError) as caught:
        WeightAxis(lambda: str(lora_dir), language=lambda: "zh_CN").apply(P(), 0.5, [0.5])
    assert str(caught.value).startswith("LoRA 权重：提示词中没有可修改的 <lora:NAME:weight> 标签")

    def starting():
        raise RuntimeError("the WebUI is still starting")

    with pytest.raises(AxisError, match=r"^LoRA weight: 'x' is not a number"):
        WeightAxis(lambda: str(lora_dir), language=starting).confirm(P(), ["x"])


def test_runs_and_epoch_ranges_in_chinese(lora_dir, tmp_path):
    run = find_runs(lora_dir)[0]
    assert run.describe_saved() == "epochs 1, 2, final"
    assert run.describe_saved().in_language("zh_CN") == "第 1, 2 轮，最终版"
    with pytest.raises(TrainerError) as caught:
        split_epoch_values("5-3")
    assert caught.value.format("zh_CN") == "轮次范围 '5-3' 是倒序的\n  解决方法：请写成 3-5"
    with pytest.raises(TrainerError) as caught:
        open_run(tmp_path, "nobody")
    assert caught.value.message_in("zh_CN") == f"{tmp_path} 中没有名为 'nobody' 的训练记录"
    assert str(caught.value.message) == f"no run named 'nobody' in {tmp_path}"


def test_keeping_and_deleting_refuse_in_chinese(lora_dir):
    with pytest.raises(TrainerError) as caught:
        validate_name("dream:girl")
    assert caught.value.message_in("zh_CN") == "最终名称 'dream:girl' 含有 ':'"
    assert caught.value.advice_in("zh_CN").startswith("只用字母、数字、空格")
    run = find_runs(lora_dir)[0]
    with pytest.raises(TrainerError) as caught:
        delete_files(run, [], confirm=False)
    assert caught.value.format("zh_CN") == ("没有删除任何文件：删除文件需要确认\n"
                                            "  解决方法：勾选“是的，删除这些文件”，然后再按一次删除")


def test_the_grids_settings_and_its_xyz_help_in_chinese(lora_dir):
    from lora_trainer.evaluate.report import evaluate_run
    from lora_trainer.hosts.base import RenderSettings
    from lora_trainer.ui import status
    from lora_trainer.ui.evaluate import grid as eg
    from lora_trainer.ui.evaluate.grid_settings import estimate_lines

    with pytest.raises(TrainerError) as caught:
        eg.parse_weights("0.5, heavy")
    assert caught.value.format("zh_CN") == ("权重 'heavy' 不是数字\n"
                                            "  解决方法：权重请写成 0, 0.5, 0.6, 0.8, 1 或范围 0.5-1 [6]")
    report = evaluate_run(str(lora_dir / "dreamgirl-000002.safetensors"))
    help_zh = eg.xyz_help(report, "1, 2, final", [0.6, 1.0], language="zh_CN")
    assert "X 轴类型：LoRA epoch\nX 轴值：dreamgirl-000001, dreamgirl-000002, dreamgirl" in help_zh
    assert help_zh.endswith("Prompt S/R 无法选中最终版文件（它的文件名里没有编号）：请用 LoRA epoch 轴来选它。")
    assert eg.xyz_help(report, "7", [1.0], language="zh_CN").startswith("“7”不对应训练 “dreamgirl”")
    try:
        status.use_language(lambda: "zh_CN")
        assert "X type" not in eg.xyz_help(report, "1", [1.0])
        box = status.message_html("info", "Rendering", estimate_lines(4, RenderSettings(hires_scale=2.0), 2.0))
    finally:
        status.use_language(lambda: "en")
    assert "4 张图，尺寸 512 × 512，高清修复 × 2，20 步" in box and "（每张图 " in box
    assert "X type: LoRA epoch" in eg.xyz_help(report, "1", [1.0])


def test_the_kohya_import_and_the_block_table_refuse_in_chinese():
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.errors import ConfigError
    from lora_trainer.ui.block_table import fields_from_rows
    from lora_trainer.ui.kohya_gui import import_kohya_gui

    with pytest.raises(ConfigError) as caught:
        import_kohya_gui({"LoRA_type": "LyCORIS/GLoRA"}, TrainConfig())
    assert caught.value.message_in("zh_CN") == "kohya_ss 设置训练的是“LyCORIS/GLoRA”网络，本训练器不支持这种网络"
    notes = import_kohya_gui({"LoRA_type": "Standard", "lr_warmup": 10, "unet_lr": 1e-4, "text_encoder_lr": 0}).notes
    assert [n.in_language("zh_CN") for n in notes] == ["text_encoder_lr 为 0 表示不训练文本编码器：已开启“只训练 UNet”",
                                                       "预热占总步数的 10 % → lr_warmup_steps 0.1"]
    assert notes[1] == "warm-up of 10 % of the steps → lr_warmup_steps 0.1"
    rows = [["IN00", "", "8", "", "", ""]] + [[f"B{i}", "", "", "", "", ""] for i in range(1, 25)]
    with pytest.raises(ConfigError) as caught:
        fields_from_rows(rows)
    assert "block_dims：表格的 Rank 列只填了 25 个块中的 1 个；请全部填写或全部留空" in caught.value.problems_in("zh_CN")[0]


def test_the_page_without_a_webui_speaks_the_environments_language(monkeypatch, capsys):
    import sys

    from lora_trainer.ui.__main__ import main

    monkeypatch.setitem(sys.modules, "gradio", None)
    monkeypatch.setenv("LORA_TRAINER_LANGUAGE", "zh_CN")
    assert main(["--output-dir", "never-created"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"错误：LoRA Trainer 页面需要 gradio，但这个 Python（{sys.executable}）中没有安装。")


def test_a_host_without_previews_or_taggers_refuses_in_chinese():
    from lora_trainer.hosts.base import HostAdapter, PreviewUnavailable

    with pytest.raises(PreviewUnavailable) as caught:
        HostAdapter().generate_image("a", "", 1, 64, 64)
    assert caught.value.format("zh_CN") == ("只有在 WebUI 中、用它已加载的模型才能生成图片\n"
                                            "  解决方法：在 WebUI 中生成正则化图片，或者导入一个正则化图片文件夹")
    with pytest.raises(TrainerError) as caught:
        HostAdapter().interrogate(None, "wd14")
    assert caught.value.advice_in("zh_CN") == "请从以下选择一个：无（手动打标）"
    assert caught.value.advice == "choose one of: none (tag by hand)"


def test_a_runs_summary_lines_read_in_chinese_and_stay_english_as_text():
    from lora_trainer.evaluate.summary import Concept, TrainingSummary
    from lora_trainer.text.messages import localized

    summary = TrainingSummary(base_model="tiny-sd15", family="sd1", network_dim=4, network_alpha=4.0,
                              unet_lr=2e-3, text_encoder_lr=1e-3, optimizer="AdamW", lr_scheduler="constant",
                              resolution=(64, 64), batch_size=2, epochs=2, epoch=2, steps=6, num_train_images=3,
                              concepts=[Concept("2_zkz", "zkz", 2, 3)])
    assert summary.lines() == ["base model: tiny-sd15 (SD1)", "images: 3, repeats 2", "epoch 2 of 2, step 6",
                               "rank 4, alpha 4", "AdamW, constant, unet 0.002, text encoder 0.001",
                               "resolution 64x64, batch 2"]
    assert [localized(line, "zh_CN") for line in summary.lines()] == [
        "底模：tiny-sd15（SD1）", "图片：3 张，重复 2 次", "第 2 轮，共 2 轮，第 6 步", "秩 4，alpha 4",
        "AdamW, constant, UNet 0.002, 文本编码器 0.001", "分辨率 64x64，批量 2"]


def test_the_findings_start_in_the_webuis_language_with_the_kind_and_the_legend_translated():
    pytest.importorskip("gradio")
    from lora_trainer.evaluate.loss_analysis import analyze_losses
    from lora_trainer.evaluate.loss_chart import chart_labels, loss_chart_svg
    from lora_trainer.text.messages import translations
    from lora_trainer.ui import status
    from lora_trainer.ui.evaluate.tab import findings_language

    try:
        status.use_language(lambda: "zh_CN")
        assert findings_language() == "中文"
    finally:
        status.use_language(lambda: "en")
    assert findings_language() == "English"
    found = analyze_losses([1, 2, 3], [0.3, 0.2, 0.1], kind="concept")
    assert "There is no rule-of-thumb band for a concept." in " ".join(found.sentences())
    assert "概念没有经验范围" in " ".join(found.sentences(translations("zh_CN")))
    assert chart_labels("zh_CN")["candidate"] == "候选轮次" and chart_labels()["candidate"] == "candidate epoch"
    svg = loss_chart_svg([(s, 1.0 / s) for s in range(1, 40)], labels=chart_labels("zh_CN"))
    assert "每步损失" in svg and "step loss" not in svg
