"""HTTP routes of the Dataset workbench, beside the job routes: import, check, fix, caption edits, undo.

No ``from __future__ import annotations``: FastAPI reads the endpoint's ``Request`` annotation at run time.

Bodies are plain JSON; every path is checked against the host's allowed folders; every refusal answers
``{"error": what, "advice": how to fix}`` with status 400. A body may ask for its sentences in another language
(``"language": "zh_CN"``; else the caller's Accept-Language, English by default), the refusals too.
"""

import os
from typing import Any, Callable

from ..config.allowed_folders import AllowedFolders
from ..errors import ConfigError, TrainerError
from ..text.messages import msg
from .messages import request_language

PREFIX = "/lora-trainer/v1/dataset"
OPERATIONS = ("add", "remove", "replace", "move_to_front", "fold")


def _field(body: dict, name: str, kind: type, default: Any = None, required: bool = False) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise ConfigError(msg("api.lacks", name=name), msg("api.lacks.advice", name=name))
        return default
    value = body[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(msg("api.wrong_kind", name=name, kind=kind.__name__),
                          msg("api.wrong_kind.advice", name=name, kind=kind.__name__))
    return value


def _finding(f, language: str) -> dict:
    return {"key": f.key, "level": f.level, "blocking": f.blocking, "message": f.text(language),
            "advice": f.advice.format(language), "paths": f.paths,
            "fix": {"kind": f.fix.kind, "label": f.fix.label.format(language)} if f.fix else None}


def dataset_check(body: dict, allowed: AllowedFolders) -> dict:
    from ..dataset.checks import CheckSettings, check_dataset
    from ..dataset.fixes import workbench_folder

    folder = allowed.check(_field(body, "train_data_dir", str, required=True), "train_data_dir")
    settings = CheckSettings(resolution=_field(body, "resolution", int, 512),
                             enable_bucket=_field(body, "enable_bucket", bool, True),
                             min_bucket_reso=_field(body, "min_bucket_reso", int, 256),
                             goal=_field(body, "goal", str, "character"), trigger=_field(body, "trigger", str, ""),
                             token_limit=_field(body, "max_token_length", int, 75))
    findings = check_dataset(folder, settings, cache_dir=workbench_folder(folder) / "scan")
    language = _field(body, "language", str, "en")
    return {"train_data_dir": folder, "findings": [_finding(f, language) for f in findings],
            "ready": not any(f.blocking for f in findings)}


def dataset_fix(body: dict, allowed: AllowedFolders) -> dict:
    from ..dataset.checks import CheckSettings, check_dataset
    from ..dataset.fixes import apply_fix, workbench_folder
    from ..dataset.messages import said

    folder = allowed.check(_field(body, "train_data_dir", str, required=True), "train_data_dir")
    key, trigger = _field(body, "key", str, required=True), _field(body, "trigger", str, "")
    findings = check_dataset(folder, CheckSettings(trigger=trigger), cache_dir=workbench_folder(folder) / "scan")
    finding = next((f for f in findings if f.key == key and f.fix), None)
    if finding is None:
        raise ConfigError(msg("api.no_finding", key_name=key), msg("api.no_finding.advice", prefix=PREFIX))
    result = apply_fix(finding.fix, folder, trigger)
    language = _field(body, "language", str, "en")
    return {"done": result.done, "problems": [said(p, language) for p in result.problems], "setting": result.setting}


def dataset_import(body: dict, allowed: AllowedFolders) -> dict:
    from ..dataset.importing import import_pictures, plan_import
    from ..dataset.messages import said
    from ..dataset.project import Project

    project = Project.create(allowed.check(_field(body, "project", str, required=True), "project"))
    source = allowed.check(_field(body, "source", str, required=True), "source")
    plan = plan_import(project, source, recursive=_field(body, "recursive", bool, False))
    result = import_pictures(project, plan, _field(body, "trigger", str, required=True), _field(body, "repeats", int),
                             _field(body, "class_word", str, ""), _field(body, "goal", str, "character"),
                             leave_out=set() if _field(body, "keep_duplicates", bool, False) else None)
    language = _field(body, "language", str, "en")
    return {"project": str(project.root), "imported": result.imported, "captions": result.captions,
            "skipped": [{"path": p, "why": said(w, language)} for p, w in result.skipped],
            "duplicates": [{"kind": g.kind, "paths": g.paths} for g in plan.duplicates],
            "unreadable": [{"path": p.path, "why": said(p.error, language)} for p in plan.unreadable],
            "training": project.training_settings()}


def dataset_edit(body: dict, allowed: AllowedFolders) -> dict:
    from ..dataset import caption_edit as ce
    from ..dataset.fixes import history_for
    from ..dataset.messages import said

    folder = allowed.check(_field(body, "folder", str, required=True), "folder")
    operation = _field(body, "operation", str, required=True)
    tags = [str(t) for t in _field(body, "tags", list, [])]
    if operation not in OPERATIONS:
        raise ConfigError(msg("api.operation", operation=operation), msg("api.operation.advice",
                                                                          names=", ".join(OPERATIONS)))
    edit = {"add": lambda: ce.add_tags(tags, front=_field(body, "front", bool, False)),
            "remove": lambda: ce.remove_tags(tags),
            "replace": lambda: ce.replace_tag(tags[0] if tags else "", _field(body, "replacement", str, "")),
            "move_to_front": lambda: ce.move_to_front(tags),
            "fold": lambda: ce.fold_traits(_field(body, "trigger", str, required=True), tags)}[operation]()
    concepts = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                if os.path.isdir(os.path.join(folder, n)) and not n.startswith(".")] or [folder]
    changes = ce.plan_edit(ce.read_captions(concepts), edit)
    out = {"changes": [{"image": c.image, "before": c.before, "after": c.after} for c in changes]}
    if _field(body, "apply", bool, False):
        label = ce.edit_label(operation, tags, _field(body, "replacement", str, ""), _field(body, "trigger", str, ""))
        applied = history_for(folder).apply(changes, label)
        language = _field(body, "language", str, "en")
        out.update(written=len(applied.written),
                   conflicts=[{"path": p, "why": said(w, language)} for p, w in applied.conflicts])
    return out


def dataset_undo(body: dict, allowed: AllowedFolders) -> dict:
    from ..dataset.fixes import history_for
    from ..dataset.messages import said

    history = history_for(allowed.check(_field(body, "folder", str, required=True), "folder"))
    language = _field(body, "language", str, "en")
    label = history.last_label(language)
    applied = history.undo()
    return {"undone": label, "written": len(applied.written),
            "conflicts": [{"path": p, "why": said(w, language)} for p, w in applied.conflicts]}


ROUTES: dict[str, Callable[[dict, AllowedFolders], dict]] = {
    "/check": dataset_check, "/fix": dataset_fix, "/import": dataset_import, "/edit": dataset_edit,
    "/undo": dataset_undo}


def register_dataset_api(app, host, dependencies: list) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    def route(handler):
        async def endpoint(request: Request):
            def refused(message, advice) -> JSONResponse:
                return JSONResponse(status_code=400, content={"error": message.format(language),
                                                              "advice": advice.format(language), "key": message.key})

            language = request_language(request)
            try:
                body = await request.json()
            except Exception:
                return refused(msg("api.bad_json"), msg("api.send_object"))
            if not isinstance(body, dict):
                return refused(msg("api.not_object"), msg("api.send_object"))
            language = request_language(request, body)
            body = {**body, "language": language}
            try:
                return JSONResponse(content=await run_in_threadpool(handler, body, host.allowed_folders()))
            except TrainerError as err:
                return JSONResponse(status_code=400, content={"error": err.message_in(language),
                                                              "advice": err.advice_in(language), "key": err.key})
            except OSError as err:
                return refused(msg("api.file_error", error=err), msg("api.file_error.advice"))
        return endpoint

    for path, handler in ROUTES.items():
        app.add_api_route(PREFIX + path, route(handler), methods=["POST"], dependencies=list(dependencies))
