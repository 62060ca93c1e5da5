"""Host adapters: the only code that imports the WebUI's ``modules.*``, ``modules_forge`` or ``backend``."""
from .base import Checkpoint, HostAdapter, PreviewRequest, PreviewUnavailable
from .detect import detect_host, host_kind

__all__ = ["Checkpoint", "HostAdapter", "PreviewRequest", "PreviewUnavailable", "detect_host", "host_kind"]
