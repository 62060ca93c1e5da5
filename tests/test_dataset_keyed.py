"""The Dataset workbench speaks the user's language: ``python -m lora_trainer dataset …`` in the environment's,
the library's refusals through ``format(language)``, the tab's boxes in the WebUI's; the English stays as it was."""
from __future__ import annotations

import shutil
import types

import pytest

from lora_trainer.config.allowed_folders import AllowedFolders
from lora_trainer.dataset import autotag
from lora_trainer.dataset.importing import plan_import
from lora_trainer.dataset.project import Project
from lora_trainer.dataset.scan import ScanCache, scan_pictures
from lora_trainer.dataset.tagging import TagOptions
from lora_trainer.dataset.wd14 import check_model_folder
from lora_trainer.errors import ConfigError, DatasetError, TrainerError
from lora_trainer.text.messages import localized
from test_dataset_project import textured


def _language(monkeypatch, lang: str) -> None:
    for name in ("LORA_TRAINER_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", lang)


def _pictures(src):
    for i in range(3):
        textured(src / f"{i}.png", seed=i * 7)
        (src / f"{i}.txt").write_text("1girl, blue hair", encoding="utf-8")
    shutil.copy(src / "0.png", src / "0 copy.png")
    (src / "empty.png").write_bytes(b"")
    (src / "x.heic").write_bytes(b"x")


def test_the_dataset_commands_print_in_the_environments_language(tmp_path, monkeypatch, capsys):
    from lora_trainer.cli.main import main

    src, project = tmp_path / "src", tmp_path / "proj"
    _pictures(src)
    _language(monkeypatch, "zh_CN.UTF-8")
    assert main(["dataset", "import", str(src), str(project), "--trigger", "zkz", "--repeats", "5"]) == 0
    out = capsys.readouterr().out
    assert f"无法读取，未导入：{src / 'empty.png'}（文件是空的（0 字节））" in out
    assert f"无法读取的格式，未导入：{src / 'x.heic'}" in out
    assert "文件完全相同：0.png = 0 copy.png（只导入第一张）" in out
    assert f"已将 3 张图片和 3 个标注导入 {project / 'img' / '5_zkz'}（重复次数 5）。" in out
    # a second look reads the scan cache: the reason is still said by key
    assert main(["dataset", "import", str(src), str(project), "--trigger", "zkz"]) == 0
    assert "（文件是空的（0 字节））" in capsys.readouterr().out

    assert main(["dataset", "check", str(project / "img"), "--trigger", "zkz"]) == 0
    out = capsys.readouterr().out
    assert "警告：3 条标注中没有触发词「zkz」。\n  解决方法：在每条标注的最前面放上触发词。" in out
    assert "数据集页可以一键修复：把「zkz」放在最前" in out and "提示：" in out

    fold = ["dataset", "fold", str(project / "img"), "--trigger", "zkz", "--tags", "blue hair"]
    assert main([*fold, "--show", "1"]) == 0
    assert capsys.readouterr().out.endswith("……另有 2 条\n将修改 3 条标注；加上 --apply 才会写入。\n")
    assert main([*fold, "--apply"]) == 0
    assert f"已写入 3 条标注；用 'python -m lora_trainer dataset undo {project / 'img'}' 可以撤销。" \
        in capsys.readouterr().out
    assert main(["dataset", "undo", str(project / "img")]) == 0
    assert capsys.readouterr().out == "已撤销：把 blue hair 整合进 zkz（3 条标注）。\n"
    assert main(["dataset", "undo", str(project / "img")]) == 2
    assert "错误：没有可撤销的操作\n  解决方法：这个项目的编辑已全部撤销" in capsys.readouterr().err
    assert main(["dataset", "edit", str(project / "img")]) == 2
    assert "错误：请说明要修改什么\n  解决方法：请使用 --add、--remove、--replace OLD=NEW 或 --move-to-front TAGS" \
        in capsys.readouterr().err

    _language(monkeypatch, "C.UTF-8")
    assert main(["dataset", "edit", str(project / "img"), "--add", "solo"]) == 0
    assert capsys.readouterr().out.endswith("3 caption(s) would change; add --apply to write them.\n")
    assert main(["dataset", "check", str(project / "img"), "--trigger", "zkz"]) == 0
    assert "warning: 3 caption(s) lack the trigger word 'zkz'.\n  What to do:" in capsys.readouterr().out


def test_the_tagging_settings_are_refused_in_chinese():
    with pytest.raises(DatasetError) as err:
        TagOptions(general_threshold=2, existing="merge", trigger="a, b").checked()
    assert str(err.value).startswith("the tagging settings need fixing: general threshold 2 is not a number from "
                                     "0 to 1; 'merge' is not a way to treat existing captions (append, replace or "
                                     "skip); trigger word 'a, b' holds a comma")
    assert err.value.format("zh_CN") == (
        "打标设置需要修改：通用标签阈值 2 不是 0 到 1 之间的数字；「merge」不是处理已有标注的方式（append 追加、replace "
        "替换或 skip 跳过）；触发词「a, b」中含有逗号，会被拆成两个标签\n  解决方法：阈值范围是 0 到 1（WD14 常用：通用 "
        "0.35，角色 0.85）；已有标注请选择 append、replace 或 skip；触发词是一个不含逗号的标签")


def test_wd14_folders_and_taggers_are_explained_in_chinese(tmp_path, monkeypatch):
    with pytest.raises(DatasetError) as err:
        check_model_folder(tmp_path)
    assert err.value.message_in("zh_CN") == f"WD14 模型文件夹：{tmp_path} 中既没有 model.onnx，也没有 selected_tags.csv"
    assert str(err.value.message) == f"WD14 model folder: {tmp_path} has no model.onnx and no selected_tags.csv"
    monkeypatch.setattr(autotag, "onnxruntime_available", lambda: True)
    status = autotag.wd14_status([tmp_path, tmp_path / "b"])
    assert localized(status, "zh_CN").startswith(f"在 {tmp_path} 或 {tmp_path / 'b'} 中没有找到 WD14 模型：请下载一个")
    monkeypatch.setattr(autotag, "onnxruntime_available", lambda: False)
    assert localized(autotag.wd14_status(), "zh_CN").startswith("WD14 打标器需要 onnxruntime，但它没有安装：用“数据集”")
    with pytest.raises(DatasetError) as err:
        autotag.find_tagger("nope", [])
    assert err.value.format("zh_CN") == ("没有名为「nope」的打标器\n  解决方法：请从以下选项中选择：没有可用的打标器："
                                         "可以使用 WebUI 的 DeepBooru/CLIP，或一个 WD14 模型文件夹")


def test_project_and_import_refusals_in_chinese(tmp_path):
    project = Project.create(tmp_path / "proj")
    with pytest.raises(DatasetError) as err:
        project.add_concept("a/b", 10)
    assert err.value.format("zh_CN") == "触发词「a/b」含有文件夹名称中不能使用的字符\n  解决方法：不要使用 \\ / : * ? \" < > |"
    assert str(err.value.message) == "the trigger word 'a/b' holds a character a folder name cannot have"
    with pytest.raises(DatasetError) as err:
        project.add_concept("zkz", 10, class_word=" ")
    assert err.value.format("zh_CN") == "类别词为空\n  解决方法：请输入类别词，例如角色可以用一个自造的词，如 'zkz'"
    with pytest.raises(DatasetError) as err:
        plan_import(project, tmp_path)
    assert err.value.message_in("zh_CN") == f"源文件夹 {tmp_path} 与项目文件夹 {project.root} 相互重叠"
    with pytest.raises(DatasetError) as err:
        Project.open(tmp_path)
    assert err.value.message_in("zh_CN") == f"{tmp_path} 不是数据集项目（缺少 project.json）"


def test_a_picture_read_from_the_scan_cache_keeps_its_reason_in_any_language(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    first = scan_pictures([tmp_path / "empty.png"], ScanCache(tmp_path / "cache"))[0]
    again = scan_pictures([tmp_path / "empty.png"], ScanCache(tmp_path / "cache"))[0]
    assert first.error == again.error == "the file is empty (0 bytes)"
    assert localized(again.error, "zh_CN") == "文件是空的（0 字节）"


def test_the_tab_shows_the_workbenchs_refusals_in_the_webuis_language(tmp_path):
    from lora_trainer.ui import status
    from lora_trainer.ui.dataset.project_actions import look_at_pictures, project_path

    host = types.SimpleNamespace(language=lambda: "zh_CN", datasets_dir=lambda: str(tmp_path),
                                 allowed_folders=lambda: AllowedFolders.only([str(tmp_path / "shared")]))
    try:
        status.use_language(lambda: "zh_CN")
        box = look_at_pictures("", str(tmp_path), [], "character", host).message
    finally:
        status.use_language(lambda: "en")
    assert "<li>尚未选择项目</li>" in box and "请输入新项目的名称，或从列表中选择一个项目" in box
    with pytest.raises(ConfigError) as err:
        project_path(str(tmp_path / "elsewhere"), host)
    assert err.value.message_in("zh_CN").startswith("项目文件夹 指向的位置不在这个共享 WebUI 允许的文件夹内")
    assert str(err.value.message).startswith("the project folder names a place outside the folders")
    with pytest.raises(TrainerError) as err:
        project_path(" ", host)
    assert str(err.value) == "no project is chosen\n  What to do: type a name for a new project, or pick one in the list"


def test_a_tagging_run_reports_its_failures_in_the_language_asked(tmp_path):
    from test_dataset_tagging import FakeTagger

    textured(tmp_path / "a.png", seed=1)
    (tmp_path / "b.png").write_bytes(b"")
    textured(tmp_path / "c.png", size=(64, 48), seed=2)
    report = autotag.tag_folder(tmp_path, FakeTagger(fail_on_size=(64, 48)), TagOptions(trigger=""))
    reasons = {f["path"]: f for f in report.as_dict("zh_CN")["failed"]}
    assert reasons[str(tmp_path / "b.png")]["reason"] == "文件是空的（0 字节）"
    failed = reasons[str(tmp_path / "c.png")]
    assert failed["reason"] == "打标器 Fake tagger 处理 c.png 时出错（RuntimeError: the model ran out of memory）"
    assert failed["advice"] == "请换一个打标器；如果每张图片都出错，请重启 WebUI"
    assert "\n  b.png：文件是空的（0 字节）" in report.summary("zh_CN")
    assert "\n  b.png: the file is empty (0 bytes)" in report.summary()


def test_the_http_api_says_why_a_picture_is_not_imported_in_the_callers_language(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lora_trainer.hosts.standalone import StandaloneAdapter
    from lora_trainer.runner.dataset_api import PREFIX, register_dataset_api

    app = FastAPI()
    register_dataset_api(app, StandaloneAdapter(lora_dir=str(tmp_path / "loras")), [])
    try:
        api = TestClient(app)
    except TypeError:   # starlette < 0.28 with httpx 0.28
        pytest.skip("this starlette's TestClient does not run with this httpx")
    src = tmp_path / "src"
    _pictures(src)
    body = {"project": str(tmp_path / "proj"), "source": str(src), "trigger": "zkz", "language": "zh_CN"}
    done = api.post(PREFIX + "/import", json=body).json()
    assert done["unreadable"] == [{"path": str(src / "empty.png"), "why": "文件是空的（0 字节）"}]
    refused = api.post(PREFIX + "/import", json={**body, "trigger": "a/b"})
    assert refused.status_code == 400 and refused.json()["error"] == "触发词「a/b」含有文件夹名称中不能使用的字符"
    english = api.post(PREFIX + "/import", json={**body, "trigger": "a/b", "language": "en"}).json()
    assert english["error"] == "the trigger word 'a/b' holds a character a folder name cannot have"
