"""The job queue shared by the WebUI tab and the HTTP API."""
from .job import Job, PreviewSettings
from .runner import Runner, get_runner

__all__ = ["Job", "PreviewSettings", "Runner", "get_runner"]
