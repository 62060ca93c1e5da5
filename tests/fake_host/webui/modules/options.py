"""Fake ``modules.options``: OptionInfo, options_section and an Options store."""
from __future__ import annotations


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before="", comment_after="", infotext=None, restrict_api=False,
                 category_id=None) -> None:
        self.default, self.label, self.component, self.component_args = default, label, component, component_args
        self.onchange, self.section, self.refresh, self.infotext = onchange, section, refresh, infotext
        self.comment_before, self.comment_after = comment_before, comment_after
        self.restrict_api, self.category_id = restrict_api, category_id
        self.do_not_save = False

    def info(self, text):
        self.comment_after += f"<span class='info'>({text})</span>"
        return self

    def html(self, html):
        self.comment_after += html
        return self

    def link(self, label, url):
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label, js_func):
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def needs_restart(self):
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self):
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


def options_section(section_identifier, options_dict):
    for value in options_dict.values():
        if len(section_identifier) == 2:
            value.section = section_identifier
        elif len(section_identifier) == 3:
            value.section = section_identifier[0:2]
            value.category_id = section_identifier[2]
    return options_dict


class Options:
    def __init__(self) -> None:
        object.__setattr__(self, "data", {})
        object.__setattr__(self, "data_labels", {})
        object.__setattr__(self, "handlers", {})

    def add_option(self, key, info) -> None:
        self.data_labels[key] = info
        self.data.setdefault(key, info.default)

    def get_default(self, key):
        info = self.data_labels.get(key)
        return info.default if info else None

    def set(self, key, value, is_api=False, run_callbacks=True) -> bool:
        self.data[key] = value
        if run_callbacks:
            for fn in self.handlers.get(key, []):
                fn()
        return True

    def onchange(self, key, func, call=False) -> None:
        self.handlers.setdefault(key, []).append(func)
        if call:
            func()

    def save(self, filename) -> None:
        pass

    def __getattr__(self, key):
        data = object.__getattribute__(self, "data")
        if key in data:
            return data[key]
        labels = object.__getattribute__(self, "data_labels")
        if key in labels:
            return labels[key].default
        raise AttributeError(key)

    def __setattr__(self, key, value):
        self.data[key] = value
