"""The languages the Evaluate sub-tab can write its findings in (the sentences carry numbers, so the tab
formats them itself; the Chinese templates are in ``lora_trainer/text/zh_CN.json``)."""
from __future__ import annotations

from ...text.messages import translations

ZH_CN_MESSAGES: dict[str, str] = translations("zh_CN")

LANGUAGES: dict[str, dict[str, str] | None] = {"English": None, "中文": ZH_CN_MESSAGES}
