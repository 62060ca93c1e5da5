"""The core's sentences in Chinese: inspect's report and refusals, a network_args refusal with its reason, why CUDA
graphs are off, a base model that is not one, the bucket settings, the presets and what install.py says."""
from __future__ import annotations

import types

import pytest

from lora_trainer.text.messages import SEMICOLON, Joined, localized, sentence


@pytest.fixture
def chinese_console(monkeypatch):
    for name in ("LORA_TRAINER_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")


def _lora_file(folder):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    path = folder / "mine.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(8, 4),
               "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(2.0),
               "lora_unet_mid_block_attentions_0_proj_out.lora_down.weight": torch.zeros(4, 8),
               "lora_unet_mid_block_attentions_0_proj_out.lora_up.weight": torch.zeros(8, 4),
               "something_else": torch.zeros(1)}, str(path), metadata={"ss_epoch": "3"})
    return path


def test_inspect_reports_a_lora_file_in_chinese(tmp_path, chinese_console, capsys):
    path = _lora_file(tmp_path)
    pytest.importorskip("safetensors")
    from lora_trainer.cli.main import main

    assert main(["--verbose", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  大小：0.00 MiB，6 个张量" in out and "  类型：LoRA" in out and "  lora_unet：2 个模块" in out
    assert "  rank：4（2 个模块）" in out and "  alpha：2（1 个模块）" in out and "  元数据：\n    ss_epoch: 3" in out
    assert "  检查：有问题\n    - 意外的键 something_else\n    - lora_unet_mid_block_attentions_0_proj_out 缺少 alpha" in out
    assert "  注意：元数据中没有 ss_output_name, " in out and "（其他训练器生成的文件通常如此）" in out

    from lora_trainer.cli.inspect_lora import describe   # the same report stays English as a string
    english = describe(str(path))
    assert "  rank: 4 (2 modules)" in english and "  check: PROBLEMS\n    - unexpected key something_else" in english


def test_inspect_refuses_an_unreadable_file_and_a_folder_in_chinese(tmp_path, chinese_console, capsys):
    pytest.importorskip("safetensors")
    from lora_trainer.cli.main import main

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    assert main(["--verbose", "inspect", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"错误：{broken} 不是可读取的 .safetensors 文件（" in err
    assert "解决方法：文件可能不完整；请使用更早轮次的文件，或者重新训练" in err
    assert main(["--verbose", "inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} 是文件夹，不是 LoRA 文件" in err and f"例如 {tmp_path / 'broken.safetensors'}" in err
    assert main(["--verbose", "inspect", str(tmp_path / "gone.safetensors")]) == 2
    assert f"找不到文件：{tmp_path / 'gone.safetensors'}" in capsys.readouterr().err


def test_a_safetensors_header_that_is_not_json_is_refused_in_chinese(tmp_path):
    from lora_trainer.errors import TrainerError
    from lora_trainer.io.safetensors_header import read_header

    path = tmp_path / "a.safetensors"
    path.write_bytes((4).to_bytes(8, "little") + b"{{{{")
    with pytest.raises(TrainerError) as err:
        read_header(path)
    assert str(err.value.message) == f"{path} is not a readable .safetensors file (the header is not JSON)"
    assert err.value.message_in("zh_CN") == f"{path} 不是可读取的 .safetensors 文件（文件头不是 JSON）"


def test_an_unsupported_network_arg_gives_its_reason_in_chinese():
    from lora_trainer.config.network_args import UNSUPPORTED, parse_network_args

    _, problems = parse_network_args(["use_tucker=True", "loraplus_lr_ratio=4"])
    assert problems[0] == "network_args 'use_tucker=True' is not supported: Tucker (CP) decomposition of 3×3 " \
                          "convolutions is not trained here"
    assert localized(problems[0], "zh_CN") == "不支持 network_args“use_tucker=True”：这里不训练 3×3 卷积的 Tucker（CP）分解"
    assert localized(problems[1], "zh_CN") == "不支持 network_args“loraplus_lr_ratio=4”：不支持 LoRA+"
    assert all(localized(reason, "zh_CN") != str(reason) for reason in UNSUPPORTED.values())


def test_the_handled_kohya_keys_say_why_in_both_languages():
    from lora_trainer.config.files import HANDLED_KOHYA_KEYS

    assert str(HANDLED_KOHYA_KEYS["xformers"]) == "PyTorch SDPA attention is always used"
    assert localized(HANDLED_KOHYA_KEYS["xformers"], "zh_CN") == "始终使用 PyTorch SDPA 注意力"
    assert localized(HANDLED_KOHYA_KEYS["v2"], "zh_CN") == "模型系列会从 checkpoint 自动识别"


def test_why_cuda_graphs_are_off_reads_in_chinese():
    torch = pytest.importorskip("torch")
    from lora_trainer.train.graphs import graph_blockers, update_blockers

    cfg = types.SimpleNamespace(mixed_precision="fp16", gradient_accumulation_steps=4, gradient_checkpointing=False)
    accelerator = types.SimpleNamespace(device=torch.device("cpu"), num_processes=2)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    warning = sentence("train.graphs_off", reasons=Joined(graph_blockers(cfg, accelerator, optimizer), SEMICOLON))
    assert warning.endswith("no CUDA device; several processes (DDP)")
    assert localized(warning, "zh_CN").endswith("没有 CUDA 设备；多进程训练（DDP）")
    assert localized(warning, "zh_CN").startswith("本次训练没有使用 CUDA graphs：")
    # what keeps the optimizer update out of the graph (the forward and backward pass are still captured)
    eager = Joined(update_blockers(cfg, optimizer), SEMICOLON)
    assert str(eager) == "fp16 loss scaling reads the host; gradient accumulation; optimizer SGD (only AdamW is captured)"
    assert localized(eager, "zh_CN") == "fp16 的损失缩放需要在 CPU 端读取数值；梯度累积；优化器 SGD（只有 AdamW 能被捕获）"


def test_a_file_that_is_no_base_model_is_refused_in_chinese():
    from lora_trainer.errors import ModelLoadError
    from lora_trainer.models.family import detect_family

    with pytest.raises(ModelLoadError) as err:
        detect_family(["lora_unet_x.lora_down.weight"])
    assert str(err.value.message) == "This checkpoint: this is a LoRA / LyCORIS file, not a base model."
    assert err.value.format("zh_CN") == (
        "这个 checkpoint：这是 LoRA / LyCORIS 文件，不是底模。\n  解决方法：请选择一个完整的 SD 1.5 / SD 2.x / SDXL "
        "checkpoint（.safetensors）作为底模；LoRA 文件请放到 LoRA 文件夹中")
    with pytest.raises(ModelLoadError) as err:
        detect_family(["model.diffusion_model.double_blocks.0.x"], source="flux.safetensors")
    assert err.value.message_in("zh_CN") == "flux.safetensors：这看起来是 Flux 的 checkpoint；只支持 SD 1.x、SD 2.x 和 SDXL 底模。"


def test_bucket_settings_and_presets_in_chinese():
    from lora_trainer.config.presets import PRESETS, get_preset
    from lora_trainer.data.buckets import BucketSet
    from lora_trainer.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        BucketSet.build(512, min_reso=1024, max_reso=256, step=60)
    assert err.value.problems_in("zh_CN") == ["bucket_reso_steps 是 60；它必须是 8 的倍数（通常用 64）。",
                                              "min_bucket_reso（1024）大于 max_bucket_reso（256）。"]
    assert err.value.advice_in("zh_CN") == "请修改分桶设置（kohya 默认值：256、1024、64）。"
    assert localized(PRESETS["sdxl-8gb"].description, "zh_CN") == "SDXL，8 GB 显存：只训练 UNet，rank 8，梯度检查点。"
    with pytest.raises(ConfigError) as err:
        get_preset("nope")
    assert err.value.message_in("zh_CN") == "没有名为“nope”的预设"


def test_install_py_speaks_the_consoles_language_and_records_english(capsys):
    from lora_trainer.install import gate, policy
    from lora_trainer.install.run import Installer

    decision = policy.Decision(required={"diffusers": ">=0.28"}, problems=["diffusers is missing"])
    installer = object.__new__(Installer)
    installer.status_file, installer.python, installer.env = None, "python", {"LANG": "zh_CN.UTF-8"}
    error = gate.classify_failure("ERROR: Could not fetch URL https://x: Max retries exceeded")[0]
    installer.fail(decision, decision.specs(), error)
    assert capsys.readouterr().out == (
        "[LoRA Trainer] 无法训练：无法安装 diffusers：无法连接软件包索引，或者索引中没有匹配的文件（pip：Could not fetch URL "
        'https://x: Max retries exceeded）。手动安装命令："python" -m pip install "diffusers>=0.28"\n')
    installer.env = {"LANG": "C.UTF-8"}
    installer.fail(decision, decision.specs(), error)
    assert capsys.readouterr().out.startswith("[LoRA Trainer] training is not available: could not install "
                                              "diffusers: the package index could not be reached")
    blocked = policy.decide({"torch": "1.0"}, {}, python=(3, 8, 0)).blocked
    assert blocked[0] == "the trainer needs Python 3.10 or newer, this WebUI runs Python 3.8.0"
    assert localized(blocked[0], "zh_CN") == "训练器需要 Python 3.10 或更新版本，而这个 WebUI 运行的是 Python 3.8.0"
    assert localized(blocked[1], "zh_CN").startswith("这个 Python 环境中没有安装 transformers, accelerate")


def test_a_caption_file_that_is_not_utf8_is_refused_in_chinese(tmp_path):
    from lora_trainer.data.captions import read_caption_file
    from lora_trainer.errors import DatasetError

    path = tmp_path / "a.txt"
    path.write_bytes(b"1girl, \xff\xfe\xfa")
    with pytest.raises(DatasetError) as err:
        read_caption_file(path)
    assert str(err.value.message) == f"Caption file {path} is not UTF-8 text (undecodable byte at position 7)."
    assert err.value.format("zh_CN") == (f"标注文件 {path} 不是 UTF-8 文本（位置 7 处有无法解码的字节）。\n"
                                         "  解决方法：用文本编辑器打开它并另存为 UTF-8（例如记事本：另存为 → 编码：UTF-8）。")
