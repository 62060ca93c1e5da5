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
from ..text.messages import msg
from ..train import events as ev
from . import outputs
from .history import JobHistory, beyond_keep, default_dir
from .job import ACTIVE, Job, PreviewSettings, new_job_id
from .memory import release_memory
from .messages import error_record
from .previews import preview_model, save_previews

# A1111 takes the extension folder off sys.path once the tab script is imported; the worker
# thread imports torch-heavy modules later, so it remembers where the package lives.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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
               notes: Iterable[str] = ()) -> Job:
        """Queue a run. Raises ``ConfigError`` (with every problem listed) when it could not start."""
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
                  family=checkpoint_family(cfg.pretrained_model_name_or_path))
        for note in notes:
            job.add_log(note)
        if os.path.exists(final):
            job.add_log(f"Note: {final} exists and will be replaced when this run finishes.")
        if self.host.name != "standalone":
            try:
                if not is_inside(cfg.output_dir, self.host.lora_dir()):
                    job.add_log(f"Note: the output folder is outside the WebUI's LoRA folder ({self.host.lora_dir()}): "
                                f"the Lora tab will not list the result until it is moved there.")
            except Exception:
                pass
        entry = _Entry(job, cfg, previews)
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
                job.add_log("Cancelled before it started.")
                rendering = False
            else:
                if job.status != "stopping":
                    job.status = "stopping"
                    job.add_log("Stopping: the -interrupted file and state are saved at the next step.")
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
        if _PACKAGE_PARENT not in sys.path:
            sys.path.append(_PACKAGE_PARENT)
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
        self._log(entry, f"Started {job.output_name} on {self.host.name}.")
        self._persist(entry)
        result, error = None, None
        try:
            self._host_call(entry, "free_vram")
            from ..train.loop import train
            result = train(entry.cfg, listener=lambda event: self._on_event(entry, event), stop=entry.stop,
                           log=lambda *parts: self._log(entry, " ".join(str(p) for p in parts)))
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
                job.add_log(("Stopped" if result.stopped else "Finished") + f" after {result.steps} steps.")
            self._persist_locked(entry)
            for job_id in beyond_keep([e.job for e in self._entries.values()]):   # as many as a restart loads
                del self._entries[job_id]
            self._cond.notify_all()

    def _fail(self, entry: _Entry, message: Any, advice: Any) -> None:
        """Record a failure (the lock is held)."""
        job = entry.job
        job.status, job.finished_at = "failed", time.time()
        job.error = error_record(message, advice)
        message, advice = job.error["message"], job.error["advice"]
        job.add_log(f"Failed: {message}" + (f" — What to do: {advice}" if advice else ""))

    # --- events from the training loop (worker thread) ------------------------------------------
    def _on_event(self, entry: _Entry, event) -> None:
        try:
            self._apply_event(entry, event)
        except Exception as err:   # a listener error must never end the training
            traceback.print_exc()
            self._log(entry, f"(could not record a progress update: {err})")

    def _apply_event(self, entry: _Entry, event) -> None:
        job = entry.job
        persist = False
        with self._cond:
            if isinstance(event, ev.Started):
                if job.status == "preparing":
                    job.status = "training"
                job.total_steps, job.epochs, job.step = event.total_steps, event.epochs, event.start_step
                job.run_dir = event.run_dir or job.run_dir
                job.plan_text, job.warnings = event.plan_text, list(event.warnings)
                job.add_log(event.plan_text)
                for warning in event.warnings:
                    job.add_log(f"Warning: {warning}")
            elif isinstance(event, ev.StepEnd):
                job.step, job.total_steps, job.epoch = event.step, event.total_steps, event.epoch
                if event.loss is not None:
                    job.losses.append([event.step, event.loss])
                job.lr = dict(event.lrs)
                job.it_per_s = event.it_per_s
                job.eta_s = (event.total_steps - event.step) / event.it_per_s if event.it_per_s else None
                if event.peak_memory_gb is not None:
                    job.vram_gb = event.peak_memory_gb
            elif isinstance(event, ev.EpochEnd):
                job.epoch = event.epoch
                job.epoch_losses.append([event.epoch, event.step, event.mean_loss])
                job.add_log(f"Epoch {event.epoch}: mean loss {event.mean_loss:.4f} (step {event.step}).")
                persist = True
            elif isinstance(event, ev.Validated):
                job.validation.append([event.epoch, event.step, event.loss])
                what = "held-out" if event.source == "holdout" else "training"
                job.add_log(f"Epoch {event.epoch}: validation loss {event.loss:.4f} ({event.images} {what} images).")
                persist = True
            elif isinstance(event, ev.FileSaved):
                gone = {os.path.normcase(os.path.abspath(p)) for p in event.removed_states}
                for record in job.files:   # states the run deleted (only the newest are kept)
                    if record.get("state_dir") and os.path.normcase(os.path.abspath(record["state_dir"])) in gone:
                        record["state_dir"] = None
                job.files.append({"path": event.path, "epoch": event.epoch, "step": event.step, "kind": event.kind,
                                  "state_dir": event.state_dir})
                entry.kinds[event.path] = event.kind
                job.add_log(f"Saved {event.path}")
                persist = True
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
        except PreviewUnavailable as err:
            self._note_once(entry, f"Previews skipped: {err.message}" + (f" ({err.advice})" if err.advice else ""))
            return
        except Exception as err:
            traceback.print_exc()
            if "out of memory" in str(err).lower():
                self._note_once(entry, "Previews ran out of GPU memory next to the training; training goes on. "
                                       "To see previews, make them smaller (width, height) or train with less "
                                       "memory (see the presets for your GPU).")
            else:
                self._note_once(entry, f"Previews failed ({type(err).__name__}: {err}); training goes on.")
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
                entry.job.add_log(f"Previews of {os.path.basename(event.lora_path)}: {len(records)} image(s).")

    # --- after the run ---------------------------------------------------------------------------
    def _write_sidecar(self, entry: _Entry, result) -> None:
        final = next((f["path"] for f in entry.job.files if f["kind"] == "final"), None)
        if final is None:
            return
        cfg, job = entry.cfg, entry.job
        last_loss = job.epoch_losses[-1][2] if job.epoch_losses else None
        model = os.path.basename(cfg.pretrained_model_name_or_path)
        try:
            path = outputs.write_sidecar(
                final, trigger=job.trigger, weight=entry.previews.weight,
                family=lora_family(final) or job.family,
                description=f"{job.output_name}: LoRA trained on {model} ({result.steps} steps, "
                            f"{job.epochs or cfg.max_train_epochs} epochs).",
                notes=f"Trained {time.strftime('%Y-%m-%d %H:%M')} with LoRA Trainer: rank {cfg.network_dim}, "
                      f"alpha {cfg.network_alpha:g}, learning rate {cfg.learning_rate:g}, optimizer "
                      f"{cfg.optimizer_type}, resolution {cfg.resolution}"
                      + (f", final mean loss {last_loss:.4f}" if isinstance(last_loss, float) else "") + ".")
            files = [{"path": path, "epoch": job.epoch, "step": job.step, "kind": "sidecar", "state_dir": None}]
            step = next((f["step"] for f in job.files if f["path"] == final), None)
            cover = next((p["path"] for p in job.previews if p["file"] == final or p["step"] == step), None)
            if cover:
                files.append({"path": outputs.write_cover(final, cover), "epoch": job.epoch, "step": job.step,
                              "kind": "cover", "state_dir": None})
        except OSError as err:
            self._log(entry, f"Could not write the Lora tab's card files beside {final}: {err}")
            return
        with self._cond:
            job.files.extend(files)

    # --- helpers ---------------------------------------------------------------------------------
    def _host_call(self, entry: _Entry, method: str) -> None:
        """A host action that must not end the job when it fails (its failure is noted)."""
        try:
            getattr(self.host, method)()
        except Exception as err:
            traceback.print_exc()
            self._note_once(entry, f"The WebUI could not {method.replace('_', ' ')}: {type(err).__name__}: {err}")

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
