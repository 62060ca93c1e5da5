"""Job records on disk (one JSON file per job), so finished runs can still be listed after the
WebUI restarts. A job that was still running when the process ended is reported as such."""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Optional

from ..text.messages import msg, sentence
from .job import ACTIVE, Job
from .messages import error_record

KEEP = 100   # newest records loaded at start


def default_dir(host=None) -> str:
    """``$LORA_TRAINER_JOBS_DIR``; else the host's own folder (a WebUI: ``<data>/lora_trainer/jobs``), so that
    two WebUIs of one user keep their own lists; else ``standalone/jobs`` in the trainer's cache folder."""
    if os.environ.get("LORA_TRAINER_JOBS_DIR"):
        return os.environ["LORA_TRAINER_JOBS_DIR"]
    try:
        own = host.jobs_dir() if host is not None and hasattr(host, "jobs_dir") else ""
    except Exception:   # a host that cannot say (still starting up)
        own = ""
    if own:
        return own
    base = os.environ.get("LORA_TRAINER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "lora_trainer")
    return os.path.join(base, "standalone", "jobs")


class JobHistory:
    def __init__(self, folder: Optional[str]) -> None:
        self.folder = folder   # None: keep nothing

    def _path(self, job_id: str) -> str:
        return os.path.join(self.folder, f"{job_id}.json")

    def save(self, job: Job) -> Optional[str]:
        """Write the record; returns a problem in words instead of raising (training goes on)."""
        if not self.folder:
            return None
        from ..io.atomic import atomic_write

        try:
            os.makedirs(self.folder, exist_ok=True)
            with atomic_write(self._path(job.id)) as tmp:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(job.to_dict(), fh, ensure_ascii=False)
        except OSError as err:
            return sentence("job.record_unsaved", folder=self.folder, error=err.strerror or err)
        return None

    def delete(self, job_id: str) -> None:
        if self.folder:
            with contextlib.suppress(OSError):
                os.remove(self._path(job_id))

    def load(self) -> list[Job]:
        """Saved jobs, oldest first; unreadable records are skipped."""
        if not self.folder or not os.path.isdir(self.folder):
            return []
        jobs = []
        for name in os.listdir(self.folder):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                with open(os.path.join(self.folder, name), encoding="utf-8") as fh:
                    job = Job.from_dict(json.load(fh))
            except (OSError, ValueError, TypeError):
                continue
            if job.status in ACTIVE:
                _mark_lost(job)
            jobs.append(job)
        jobs.sort(key=lambda j: j.created_at or 0.0)
        return jobs[-KEEP:]


def beyond_keep(jobs: list[Job]) -> list[str]:
    """Ids of the finished jobs older than the newest ``KEEP``: a WebUI that runs for weeks need not hold
    every job's losses, log and previews in memory (and copy them at each poll); their records stay on disk."""
    done = sorted((j for j in jobs if j.done), key=lambda j: j.created_at or 0.0)
    return [j.id for j in done[:max(0, len(done) - KEEP)]]


def _mark_lost(job: Job) -> None:
    if job.status == "queued":
        job.status = "cancelled"
        job.add_log(sentence("job.lost_queued"))
    else:
        job.status = "failed"
        folder = job.run_dir or job.output_dir or msg("runner.run_folder")
        job.error = error_record(msg("runner.lost"), msg("runner.lost.advice", folder=folder))
    job.finished_at = job.finished_at or time.time()
