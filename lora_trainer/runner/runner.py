"""The job queue the WebUI tab and the HTTP API share: one worker thread, one job training at a time.

The runner lives in this imported module (``get_runner()``), not in the host's re-executed script
file, so a browser refresh or "Reload UI" finds the running job again. Nothing raised while a job
runs leaves the worker thread: it becomes the job's error, in plain words with advice.
"""
from __future__ import annotations

import copy
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from ..config.allowed_folders import same_output
from ..config.schema import TrainConfig
from ..config.validation import validate
from ..errors import ConfigError, TrainerError
from ..hosts.base import HostAdapter, PreviewRequest, PreviewUnavailable, checkpoint_family, is_inside, lora_family
from ..text.messages import msg, sentence
from ..train import events as ev
from . import outputs, processes
from .history import JobHistory, beyond_keep, default_dir
from .job import ACTIVE, Job, PreviewSettings, new_job_id
from .memory import release_memory
from .messages import error_record
from .previews import one_colour, overflowed, preview_failure, preview_model, save_previews
from .processes import PACKAGE_PARENT
from .progress import apply_event


UNEXPECTED_ADVICE = msg("runner.unexpected.advice")


@dataclass
class _Entry:
    """A job with what only the runner touches."""
    job: Job
    cfg: TrainConfig
    previews: PreviewSettings
    stop: ev.StopRequest = field(default_factory=ev.StopRequest)
    kinds: dict = field(default_factory=dict)       # LoRA path → "epoch" | "final" | "interrupted"
    rendered: dict = field(default_factory=dict)    # step → preview records (same weights, same images)
    rendering: bool = False
    notes_seen: set = field(default_factory=set)
    gpus: tuple = ()                                # several: trained in one process per GPU (processes.py)


class Runner:
    def __init__(self, host: HostAdapter, state_dir: Optional[str] = "") -> None:
        """``state_dir``: where job records are kept ("" = the host's own folder, None = nowhere)."""
        self.host = host
        self._cond = threading.Condition(threading.Lock())
        self._entries: dict[str, _Entry] = {}
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._history = JobHistory(default_dir(host) if state_dir == "" else state_dir)
        for job in self._history.load():
            self._entries[job.id] = _Entry(job, TrainConfig(), PreviewSettings(enabled=False))

    # --- public ----------------------------------------------------------------------------------
    def submit(self, cfg: TrainConfig, previews: Optional[PreviewSettings] = None,
               notes: Iterable[str] = (), gpus: Iterable[str] = ()) -> Job:
        """Queue a run (on ``gpus``: more than one trains in other processes). Raises ``ConfigError`` (with every
        problem listed) when it could not start."""
        cfg = self.host.allowed_folders().check_config(cfg)   # a shared WebUI: only its allowed folders
        validate(cfg)
        if not cfg.logging_dir:   # a WebUI keeps run folders out of its Lora folder
            try:
                runs = self.host.runs_dir()
            except Exception:
                runs = ""
            cfg = cfg.replace(logging_dir=runs) if runs else cfg
        previews = previews or PreviewSettings()
        if previews.enabled and previews.render_problems("previews."):
            raise ConfigError(previews.render_problems("previews."))
        final = os.path.join(cfg.output_dir, f"{cfg.output_name}.safetensors")
        job = Job(id=new_job_id(), output_name=cfg.output_name, created_at=time.time(), config=cfg.to_dict(),
                  preview_settings=previews.to_dict(), output_dir=cfg.output_dir,
                  trigger=outputs.trigger_word(cfg.train_data_dir, cfg.output_name),
                  family=checkpoint_family(cfg.pretrained_model_name_or_path), gpus=[str(g) for g in gpus])
        for note in notes:
            job.add_log(note)
        if os.path.exists(final):
            job.add_log(sentence("job.replaces", path=final))
        if self.host.name != "standalone":
            try:
                if not is_inside(cfg.output_dir, self.host.lora_dir()):
                    job.add_log(sentence("job.outside_lora_dir", folder=self.host.lora_dir()))
            except Exception:
                pass
        entry = _Entry(job, cfg, previews, gpus=tuple(str(g) for g in gpus))
        with self._cond:
            if self._closed:
                raise TrainerError(msg("runner.closing"), msg("runner.closing.advice"))
            for other in self._entries.values():
                if other.job.active and same_output(other.cfg.output_dir, other.cfg.output_name, cfg.output_dir,
                                                    cfg.output_name):
                    raise ConfigError(msg("runner.same_output", job_id=other.job.id, status=other.job.status,
                                          name=cfg.output_name, folder=cfg.output_dir), msg("runner.same_output.advice"))
            self._entries[job.id] = entry
            self._start_worker()
            self._cond.notify_all()
            snapshot = copy.deepcopy(job)
        self._persist(entry)
        return snapshot

    def jobs(self) -> list[Job]:
        """Copies of every job, newest first."""
        with self._cond:
            jobs = [copy.deepcopy(e.job) for e in self._entries.values()]
        return sorted(jobs, key=lambda j: j.created_at or 0.0, reverse=True)

    def get(self, job_id: str) -> Optional[Job]:
        with self._cond:
            entry = self._entries.get(job_id)
            return copy.deepcopy(entry.job) if entry else None

    def current(self) -> Optional[Job]:
        """The job being prepared, trained or stopped now."""
        with self._cond:
            for entry in self._entries.values():
                if entry.job.status in ("preparing", "training", "stopping"):
                    return copy.deepcopy(entry.job)
        return None

    def stop(self, job_id: str) -> bool:
        """A queued job is cancelled; a running one stops at its next step and saves ``-interrupted``."""
        with self._cond:
            entry = self._entries.get(job_id)
            if entry is None or entry.job.done:
                return False
            job = entry.job
            if job.status == "queued":
                job.status, job.finished_at = "cancelled", time.time()
                job.add_log(sentence("job.cancelled"))
                rendering = False
            else:
                if job.status != "stopping":
                    job.status = "stopping"
                    job.add_log(sentence("job.stopping"))
                entry.stop.request()
                rendering = entry.rendering
            self._persist_locked(entry)
            self._cond.notify_all()
        if rendering:
            self._host_call(entry, "interrupt")
        return True

    def remove(self, job_id: str) -> bool:
        """Forget a finished, stopped, failed or cancelled job (its files stay on disk)."""
        with self._cond:
            entry = self._entries.get(job_id)
            if entry is None or not entry.job.done:
                return False
            del self._entries[job_id]
        self._history.delete(job_id)
        return True

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Optional[Job]:
        """Block until the job is over (or ``timeout`` seconds pass); returns its copy."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                entry = self._entries.get(job_id)
                if entry is None or entry.job.done:
                    return copy.deepcopy(entry.job) if entry else None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return copy.deepcopy(entry.job)
                self._cond.wait(left)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel queued jobs, stop the running one and wait for the worker (tests, process exit)."""
        with self._cond:
            self._closed = True
            ids = [i for i, e in self._entries.items() if e.job.active]
        for job_id in ids:
            self.stop(job_id)
        with self._cond:
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # --- worker ----------------------------------------------------------------------------------
    def _start_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="lora-trainer-runner", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        if PACKAGE_PARENT not in sys.path:   # A1111 takes the extension folder off sys.path after the tab's
            sys.path.append(PACKAGE_PARENT)  # script is imported; the worker imports torch-heavy modules later
        while True:
            with self._cond:
                entry = self._next_queued()
                while entry is None and not self._closed:
                    self._cond.wait()
                    entry = self._next_queued()
                if entry is None:
                    return
                entry.job.status, entry.job.started_at = "preparing", time.time()
                self._cond.notify_all()
            try:
                self._run(entry)
            except BaseException:   # the bookkeeping itself failed: never let the thread die
                traceback.print_exc()
                with self._cond:
                    if not entry.job.done:
                        self._fail(entry, msg("runner.ended"), UNEXPECTED_ADVICE)
                        self._persist_locked(entry)
            with self._cond:
                self._cond.notify_all()

    def _next_queued(self) -> Optional[_Entry]:
        queued = [e for e in self._entries.values() if e.job.status == "queued"]
        return min(queued, key=lambda e: e.job.created_at or 0.0) if queued else None

    def _run(self, entry: _Entry) -> None:
        job = entry.job
        self._log(entry, sentence("job.started", name=job.output_name, host=self.host.name))
        self._persist(entry)
        result, error = None, None
        try:
            self._host_call(entry, "free_vram")
            train = processes.trainer_for(entry.gpus)
            result = train(entry.cfg, listener=lambda event: self._on_event(entry, event), stop=entry.stop,
                           log=lambda *parts: self._log(entry, parts[0] if len(parts) == 1 else
                                                        " ".join(str(p) for p in parts)))
        except TrainerError as err:
            error = (err.message, err.advice)
        except ImportError as err:
            error = (msg("runner.import_failed", error=err), msg("runner.import_failed.advice"))
        except BaseException as err:
            traceback.print_exc()
            error = (msg("runner.unexpected", kind=type(err).__name__, error=err), UNEXPECTED_ADVICE)
        release_memory()   # before the host's model returns to the GPU
        if result is not None and not result.stopped:
            self._write_sidecar(entry, result)
        if any(f["kind"] in ("final", "epoch", "interrupted") for f in job.files):
            self._host_call(entry, "refresh_loras")
        with self._cond:
            more = self._next_queued() is not None and not self._closed
        if not more:
            self._host_call(entry, "restore_vram")
        with self._cond:   # the status changes last: whoever waits for it sees the host settled
            if error is not None:
                self._fail(entry, *error)
            elif result is not None:
                job.status = "stopped" if result.stopped else "finished"
                job.finished_at = time.time()
                job.run_dir = result.run_dir
                job.add_log(sentence("job.stopped" if result.stopped else "job.finished", steps=result.steps))
            self._persist_locked(entry)
            for job_id in beyond_keep([e.job for e in self._entries.values()]):   # as many as a restart loads
                del self._entries[job_id]
            self._cond.notify_all()

    def _fail(self, entry: _Entry, message: Any, advice: Any) -> None:
        """Record a failure (the lock is held)."""
        job = entry.job
        job.status, job.finished_at = "failed", time.time()
        job.error = error_record(message, advice)
        job.add_log(sentence("job.failed_advice", message=message, advice=advice) if advice
                    else sentence("job.failed", message=message))

    # --- events from the training loop (worker thread) ------------------------------------------
    def _on_event(self, entry: _Entry, event) -> None:
        try:
            self._apply_event(entry, event)
        except Exception as err:   # a listener error must never end the training
            traceback.print_exc()
            self._log(entry, sentence("job.not_recorded", error=err))

    def _apply_event(self, entry: _Entry, event) -> None:
        with self._cond:
            persist = apply_event(entry.job, entry.kinds, event)
        if isinstance(event, ev.SampleWanted):
            self._previews(entry, event)
        if persist:
            self._persist(entry)

    # --- previews --------------------------------------------------------------------------------
    def _previews(self, entry: _Entry, event: ev.SampleWanted) -> None:
        settings = entry.previews
        if not settings.enabled or entry.stop.requested or entry.kinds.get(event.lora_path) == "interrupted":
            return
        if event.step in entry.rendered:   # the final file holds the last epoch file's weights: same pictures
            return
        req = PreviewRequest(**settings.render_fields(), lora_path=event.lora_path,
                             base_model_path=entry.cfg.pretrained_model_name_or_path, trigger=entry.job.trigger)
        req.prompts = list(req.prompts)
        model, note = preview_model(self.host, req)
        if note:
            self._note_once(entry, note)
        with self._cond:
            entry.rendering = True
        started = time.monotonic()
        try:
            images = self.host.generate_previews(req)
            seconds = time.monotonic() - started
            self.host.render_clock.record(req, len(images), seconds)   # the grid's time estimate
        except Exception as err:
            if not isinstance(err, PreviewUnavailable) and not overflowed(err):
                traceback.print_exc()
            self._note_once(entry, preview_failure(err, os.path.basename(event.lora_path)))
            return
        finally:
            with self._cond:
                entry.rendering = False
        records, problem = save_previews(images, entry.job.run_dir or entry.cfg.effective_logging_dir, event,
                                         settings, entry.job.trigger, model, seconds)
        if problem:
            self._note_once(entry, problem)
        entry.rendered[event.step] = records
        with self._cond:
            entry.job.previews.extend(records)
            if records:
                entry.job.add_log(sentence("job.previews_saved", name=os.path.basename(event.lora_path),
                                           count=len(records)))
        if one_colour(images):   # after the count: what the pictures most likely mean
            self._note_once(entry, sentence("job.previews_one_colour", name=os.path.basename(event.lora_path)))

    # --- after the run ---------------------------------------------------------------------------
    def _write_sidecar(self, entry: _Entry, result) -> None:
        final = next((f["path"] for f in entry.job.files if f["kind"] == "final"), None)
        family = lora_family(final) if final else None
        files, problem = outputs.write_cards(entry.job, entry.cfg, entry.previews.weight, result.steps, family)
        if problem:
            self._log(entry, problem)
        with self._cond:
            entry.job.files.extend(files)

    # --- helpers ---------------------------------------------------------------------------------
    def _host_call(self, entry: _Entry, method: str) -> None:
        """A host action that must not end the job when it fails (its failure is noted)."""
        try:
            getattr(self.host, method)()
        except Exception as err:
            traceback.print_exc()
            self._note_once(entry, sentence("job.host_failed", action=msg(f"job.host.{method}"),
                                            kind=type(err).__name__, error=err))

    def _log(self, entry: _Entry, line: str) -> None:
        with self._cond:
            entry.job.add_log(line)

    def _note_once(self, entry: _Entry, line: str) -> None:
        with self._cond:
            if line not in entry.notes_seen:
                entry.notes_seen.add(line)
                entry.job.add_log(line)

    def _persist(self, entry: _Entry) -> None:
        with self._cond:
            self._persist_locked(entry)

    def _persist_locked(self, entry: _Entry) -> None:
        """Save the job's record (lock held: records are written in the order the job changed, and a
        job seen as over has its final record on disk)."""
        problem = self._history.save(entry.job)
        if problem and problem not in entry.notes_seen:
            entry.notes_seen.add(problem)
            entry.job.add_log(problem)


_RUNNER: Optional[Runner] = None
_RUNNER_LOCK = threading.Lock()


def get_runner(host: Optional[HostAdapter] = None) -> Runner:
    """The process-wide runner, created on first use (with ``detect_host()`` when no host is given).

    Later calls return the same runner and keep its adapter: it knows whether the host model is
    off the GPU, so a re-executed tab script must not replace it.
    """
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            if host is None:
                from ..hosts.detect import detect_host
                host = detect_host()
            _RUNNER = Runner(host)
        return _RUNNER


def existing_runner() -> Optional[Runner]:
    """The runner if one was created, without creating one (for hooks that must stay cheap)."""
    return _RUNNER


__all__ = ["ACTIVE", "Job", "PreviewSettings", "Runner", "existing_runner", "get_runner"]
