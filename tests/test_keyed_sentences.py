"""Every sentence a user reads comes from a keyed message with an English and a Chinese text.

The scan below reads the modules whose sentences are keyed and fails on a refusal, warning or note built from
a plain string (a literal or an f-string) instead of a key; the tables are checked against each other; and the
CLI, the HTTP API and the tab answer in Chinese when asked to.
"""
from __future__ import annotations

import ast
import importlib
import json
import re
import string
import types
from pathlib import Path

import pytest

from lora_trainer.text.messages import ENGLISH, localized

ROOT = Path(__file__).resolve().parents[1] / "lora_trainer"

# Every module of the package is scanned. A raise for a bug in the calling code that no user meets carries
# "# internal: <why>".
# every module that registers templates (imported so that ENGLISH holds every key)
REGISTERING = (
    "lora_trainer.errors", "lora_trainer.io.disk", "lora_trainer.io.safetensors_header",
    "lora_trainer.config.messages", "lora_trainer.config.user_presets",
    "lora_trainer.data.messages", "lora_trainer.dataset.messages", "lora_trainer.dataset.messages_tagging",
    "lora_trainer.train.messages", "lora_trainer.evaluate.messages", "lora_trainer.runner.messages",
    "lora_trainer.cli.messages", "lora_trainer.cli.messages_dataset", "lora_trainer.ui.messages",
    "lora_trainer.ui.dataset.messages", "lora_trainer.models.messages", "lora_trainer.lora.messages",
    "lora_trainer.hosts.base", "lora_trainer.install.messages",
)
# calls that hand a sentence to the user: a refusal, a warning, a note, a problem, a printed line, a line of a box
SENTENCE_LISTS = {"warnings", "problems", "notes", "tips", "out", "lines"}
# fixed texts (no number or name in them) the WebUI's own localization translates by their exact English
FIXED_TEXTS = set(json.loads((ROOT.parent / "localizations" / "zh_CN.json").read_text(encoding="utf-8")))
# a job's log lines (the HTTP API shows them)
LOG_CALLS = {"add_log", "_log", "_note_once"}
INTERNAL = "# internal:"
# raised for a bug in the calling code, never shown as a refusal
PROGRAMMING_ERRORS = {"TypeError", "NotImplementedError", "AssertionError"}


def _plain_text(node: ast.AST) -> bool:
    """A string literal, an f-string, or either joined with + (text no key can translate)."""
    if isinstance(node, ast.JoinedStr):   # words outside the placeholders (not "  {path}")
        return any(_plain_text(part) for part in node.values if isinstance(part, ast.Constant))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):   # a fixed text: by its exact wording
        words = re.sub(r"<[^>]*>", "", node.value)   # markup around a value is no sentence
        return any(c.isalpha() for c in words) and node.value.strip() not in FIXED_TEXTS
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _plain_text(node.left) or _plain_text(node.right)
    return False


def _unkeyed(path: Path, label: str = "") -> list[str]:
    found, label = [], label or str(path.relative_to(ROOT))
    source = path.read_text(encoding="utf-8")
    tree, lines = ast.parse(source), source.splitlines()
    for node in ast.walk(tree):
        args: list[ast.AST] = []
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            name = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", ""))
            if name.endswith(("Error", "Full", "Dependency", "Diverged")) and name not in PROGRAMMING_ERRORS:
                args = list(node.exc.args) + [k.value for k in node.exc.keywords]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("append", "extend", "insert"):
            owner = node.func.value
            owner_name = getattr(owner, "id", getattr(owner, "attr", ""))
            if owner_name in SENTENCE_LISTS:
                args = list(node.args[-1:])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("print", "log"):
            args = list(node.args)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in LOG_CALLS:
            args = list(node.args[-1:])
        if args and INTERNAL in lines[node.lineno - 1]:
            continue
        found += [f"{label}:{node.lineno}" for arg in args if _plain_text(arg)]
    return found


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.fixture(scope="module")
def chinese() -> dict:
    for module in REGISTERING:
        importlib.import_module(module)
    return json.loads((ROOT / "text" / "zh_CN.json").read_text(encoding="utf-8"))


def test_the_package_builds_no_sentence_from_plain_text():
    found = [hit for path in sorted(ROOT.rglob("*.py")) for hit in _unkeyed(path)]
    assert sorted(set(found)) == [], "give these sentences a key (a template in a messages module, Chinese in zh_CN.json)"


def test_the_scan_finds_a_sentence_without_a_key(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f(x, warnings, job):\n    warnings.append(f"{x} is wrong")\n'
                      '    raise ConfigError("plain words", "a fix")\n    job.add_log("Saved " + x)\n'
                      '    raise ValueError("not a mode")  # internal: only the code passes a mode\n', encoding="utf-8")
    assert sorted(set(_unkeyed(sample, "sample.py"))) == ["sample.py:2", "sample.py:3", "sample.py:4"]


def test_every_key_has_chinese_with_the_same_placeholders(chinese):
    missing = sorted(set(ENGLISH) - set(chinese))
    assert missing == [], "add these keys to lora_trainer/text/zh_CN.json"
    different = sorted(k for k in ENGLISH if _fields(ENGLISH[k]) != _fields(chinese[k]))
    assert different == [], "the Chinese text must use the English text's placeholders"


def test_no_chinese_text_without_an_english_key(chinese):
    assert sorted(set(chinese) - set(ENGLISH)) == [], "remove these keys from zh_CN.json or register them"


def test_the_cli_prints_a_bad_config_in_the_environments_language(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")   # train checks the settings after importing the training loop
    from lora_trainer.cli.main import main

    config = tmp_path / "bad.toml"
    config.write_text('resolution = "500"\n', encoding="utf-8")
    for name in ("LORA_TRAINER_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert main(["--verbose", "train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "错误：有些设置需要修改" in err and "resolution 500 不是 64 的倍数；请改用 512" in err
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert main(["--verbose", "train", "--config", str(config)]) == 2
    assert "error: Some settings need fixing" in capsys.readouterr().err
    monkeypatch.setenv("LORA_TRAINER_LANGUAGE", "zh_CN")
    assert main(["--verbose", "train", "--config", str(config)]) == 2
    assert "有些设置需要修改" in capsys.readouterr().err


def test_the_api_answers_in_the_callers_language():
    from conftest import api_client

    client = api_client(types.SimpleNamespace(host=types.SimpleNamespace(name="stub"), get=lambda job_id: None))
    from lora_trainer.runner.api import PREFIX
    body = {"config": {"network_dim": "many"}, "language": "zh_CN"}
    answer = client.post(f"{PREFIX}/jobs", json=body).json()
    assert answer["error"] == "network_dim = 'many' 不是整数（在 请求的 config 中）"
    assert answer["advice"] == "修改上面提到的设置，然后重新发送请求" and answer["key"] == "files.in_source"
    english = client.post(f"{PREFIX}/jobs", json={**body, "language": "en"}).json()
    assert english["error"] == "network_dim = 'many' is not a whole number (in the request's config)"
    missing = client.get(f"{PREFIX}/jobs/nope", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).json()
    assert missing == {"error": "没有 id 为 nope 的任务", "advice": f"用 GET {PREFIX}/jobs 列出所有任务",
                       "key": "api.no_job"}
    assert client.get(f"{PREFIX}/jobs/nope?language=en").json()["error"] == "there is no job with id nope"


def test_the_tab_shows_settings_problems_and_a_failed_run_in_the_webuis_language():
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.config.validation import validate
    from lora_trainer.errors import ConfigError
    from lora_trainer.runner.messages import error_record
    from lora_trainer.train.messages import oom_advice
    from lora_trainer.ui import status
    from lora_trainer.ui.fields import with_label

    with pytest.raises(ConfigError) as err:
        validate(TrainConfig(resolution="500", max_train_epochs=None), need_paths=False)
    problems = [with_label(p) for p in err.value.problems]
    try:
        status.use_language(lambda: "zh_CN")
        box = status.message_html("error", "Fix these settings first", problems, err.value.advice)
        job = types.SimpleNamespace(error=error_record("the GPU ran out of memory during training",
                                                       oom_advice(TrainConfig(train_batch_size=4))))
        failed = status.error_html(job)
    finally:
        status.use_language(lambda: "en")
    assert "Resolution (resolution) 500 不是 64 的倍数；请改用 512" in box
    assert "请设置 max_train_epochs（例如 10）或 max_train_steps" in box
    assert "调低 train_batch_size（当前为 4）；开启 gradient_checkpointing" in failed
    assert str(problems[0]) == "Resolution (resolution) 500 is not a multiple of 64; use 512"


def test_keyed_text_stays_english_as_a_string():
    from lora_trainer.errors import ConfigError, TrainingDiverged
    from lora_trainer.text.messages import msg

    err = ConfigError(["a", msg("config.no_length")], msg("config.advice.or_empty"))
    assert str(err) == "Some settings need fixing:\n  - a\n  - set max_train_epochs (e.g. 10) or max_train_steps\n" \
                       "  What to do: or leave it empty"
    assert err.format("zh_CN").endswith("  - 请设置 max_train_epochs（例如 10）或 max_train_steps\n  解决方法：或者留空")
    nan = TrainingDiverged(msg("train.nan", value=float("nan"), step=3, epoch=1, files=msg("train.none_yet")))
    assert nan.key == "train.nan" and "暂无" in localized(nan.message, "zh_CN")
