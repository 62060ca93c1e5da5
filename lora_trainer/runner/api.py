"""HTTP routes for automation, served by the host's FastAPI app (or the standalone server).

Bodies are read as plain JSON (no pydantic models of our own), so the same code runs on
pydantic 1 (A1111's fastapi 0.94) and pydantic 2 (Forge's fastapi 0.104). Settings are checked by
the trainer core, and every refusal answers ``{"error": what, "advice": how to fix, "key": its message key}`` in
the caller's language: a ``language`` field of the body or the query ("zh_CN", "en"), else Accept-Language.
"""

import os
from typing import Optional

from ..config.files import config_from_dict, load_toml_text
from ..errors import ConfigError, TrainerError
from ..text.messages import Joined, key_of, localized, msg, sentence
from .job import PreviewSettings
from .gpus import chosen_gpus
from .previews import preview_size
from .messages import error_in, request_language
from .runner import Runner

PREFIX = "/lora-trainer/v1"
FIX_SETTINGS = msg("api.fix_settings")
BODY_HELP = msg("api.body_help")


def job_in(job, language: str) -> dict:
    """A job as JSON, its error, log, warnings and plan in ``language``."""
    data = job.in_language(language)
    data["error"] = error_in(data.get("error"), language)
    return data


def config_from_body(body) -> tuple:
    """(TrainConfig, warnings, PreviewSettings) from a request body; ``ConfigError`` when unusable."""
    if not isinstance(body, dict):
        raise ConfigError(msg("api.not_object"), BODY_HELP)
    has_config, has_toml = body.get("config") is not None, body.get("toml") is not None
    if has_config == has_toml:
        raise ConfigError(msg("api.one_of"), BODY_HELP)
    unknown = sorted(set(body) - {"config", "toml", "previews", "language", "gpus"})
    if unknown:
        raise ConfigError(msg("api.unknown_fields", names=", ".join(unknown)), BODY_HELP)
    if has_config:
        if not isinstance(body["config"], dict):
            raise ConfigError(msg("api.config_object"), BODY_HELP)
        cfg, warnings = config_from_dict(body["config"], source=sentence("api.request_config"))
    else:
        if not isinstance(body["toml"], str):
            raise ConfigError(msg("api.toml_text"), BODY_HELP)
        source = sentence("api.request_toml")
        cfg, warnings = config_from_dict(load_toml_text(body["toml"], source), source=source)
    previews = body.get("previews")
    if previews is None or isinstance(previews, dict):   # an unset size: the trained one, as in the tab
        width, height = preview_size(cfg)
        previews = {"width": width, "height": height, **(previews or {})}
    return cfg, warnings, PreviewSettings.from_dict(previews)


def _file_info(record: dict) -> dict:
    path = record.get("path") or ""
    exists = os.path.exists(path)
    return dict(record, exists=exists, size=os.path.getsize(path) if exists and os.path.isfile(path) else None)


def register_api(app, runner: Runner, dependencies: Optional[list] = None) -> None:
    """Add the ``/lora-trainer/v1`` routes to ``app``; ``dependencies`` guard every route (auth)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    deps = list(dependencies or [])

    def error(status: int, message, advice, language: str) -> JSONResponse:
        """``{"error", "advice", "key"}``: a ``TrainerError`` (``message`` None: ``advice`` is the error) or
        keyed sentences, in ``language``."""
        if isinstance(advice, TrainerError):
            err = advice
            content = {"error": err.message_in(language), "advice": err.advice_in(language) or
                       localized(FIX_SETTINGS, language), "key": err.key}
        else:
            content = {"error": localized(message, language), "advice": localized(advice, language),
                       "key": key_of(message)}
        return JSONResponse(status_code=status, content=content)

    def unknown(job_id: str, language: str) -> JSONResponse:
        return error(404, msg("api.no_job", job_id=job_id), msg("api.no_job.advice", prefix=PREFIX), language)

    async def start_job(request: Request):
        try:
            body = await request.json()
        except Exception:
            return error(400, msg("api.bad_json"), BODY_HELP, request_language(request))
        language = request_language(request, body)
        try:
            cfg, warnings, previews = config_from_body(body)
            gpus = chosen_gpus(body.get("gpus"))
            job = runner.submit(cfg, previews, notes=[sentence("api.warning", text=w) for w in warnings], gpus=gpus)
        except TrainerError as err:
            return error(400, None, err, language)
        return JSONResponse(status_code=201, content=job_in(job, language))

    def list_jobs(request: Request):
        language = request_language(request)
        return JSONResponse(content=[job_in(job, language) for job in runner.jobs()])

    def get_job(job_id: str, request: Request):
        job, language = runner.get(job_id), request_language(request)
        return JSONResponse(content=job_in(job, language)) if job else unknown(job_id, language)

    def stop_job(job_id: str, request: Request):
        job, language = runner.get(job_id), request_language(request)
        if job is None:
            return unknown(job_id, language)
        if job.done:
            return error(409, msg("api.already_done", job_id=job_id, status=job.status), msg("api.nothing_to_stop"),
                         language)
        runner.stop(job_id)
        return JSONResponse(content=job_in(runner.get(job_id), language))

    def job_files(job_id: str, request: Request):
        job = runner.get(job_id)
        if job is None:
            return unknown(job_id, request_language(request))
        return JSONResponse(content={"id": job.id, "output_dir": job.output_dir, "run_dir": job.run_dir,
                                     "files": [_file_info(f) for f in job.files],
                                     "previews": [_file_info(p) for p in job.previews]})

    def status():
        from ..install.check import check_environment, installed_versions

        check = check_environment(installed_versions())
        try:
            host = runner.host.describe()
        except Exception as err:   # a host that is still starting up
            host = {"host": runner.host.name, "error": f"{type(err).__name__}: {err}"}
        current = runner.current()
        return JSONResponse(content={
            **host, "install": {"ok": check.ok, "problems": check.problems, "command": check.pip_command()},
            "current_job": current.id if current else None,
            "queued": sum(1 for j in runner.jobs() if j.status == "queued")})

    routes = [("POST", "/jobs", start_job), ("GET", "/jobs", list_jobs), ("GET", "/jobs/{job_id}", get_job),
              ("POST", "/jobs/{job_id}/stop", stop_job), ("GET", "/jobs/{job_id}/files", job_files),
              ("GET", "/status", status)]
    for method, path, endpoint in routes:
        app.add_api_route(PREFIX + path, endpoint, methods=[method], dependencies=deps)
    from .dataset_api import ROUTES as DATASET_ROUTES, PREFIX as DATASET_PREFIX, register_dataset_api

    register_dataset_api(app, runner.host, deps)
    listed = [f"{method} {PREFIX}{path}" for method, path, _ in routes]
    listed += [f"POST {DATASET_PREFIX}{path}" for path in DATASET_ROUTES]
    add_fallback_route(app, listed, deps)


def add_fallback_route(app, listed: list, deps: list) -> None:
    """Any other path or method under the prefix answers 404 / 405 as ``{"error", "advice"}`` (the framework's
    own answer is ``{"detail"}``). A route added under the prefix later still gets its requests."""
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute
    from starlette.routing import Match

    def ours(scope) -> list:
        """The prefix's other routes and how each matches the request (FULL, or PARTIAL: another method)."""
        found = []
        for route in app.router.routes:
            if not isinstance(route, Fallback) and str(getattr(route, "path", "")).startswith(PREFIX):
                match = route.matches(scope)[0]
                if match is not Match.NONE:
                    found.append((route, match))
        return found

    class Fallback(APIRoute):
        def matches(self, scope):
            match, child = super().matches(scope)
            if match is Match.FULL and any(m is Match.FULL for _, m in ours(scope)):
                return Match.NONE, {}
            return match, child

    async def fallback(request: Request, rest: str = ""):
        allowed = sorted({m for route, _ in ours(request.scope) for m in getattr(route, "methods", ()) or ()})
        language, path = request_language(request), request.url.path
        if allowed:
            methods = Joined(allowed, msg("api.or"))
            return JSONResponse(status_code=405, headers={"Allow": ", ".join(allowed)}, content={
                "error": msg("api.wrong_method", path=path, method=request.method).format(language),
                "advice": msg("api.use_methods", methods=methods, path=path).format(language),
                "key": "api.wrong_method"})
        return JSONResponse(status_code=404, content={
            "error": msg("api.no_route", method=request.method, path=path).format(language),
            "advice": msg("api.routes", routes=", ".join(listed)).format(language), "key": "api.no_route"})

    app.router.add_api_route(PREFIX + "{rest:path}", fallback, dependencies=deps, route_class_override=Fallback,
                             methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False)
