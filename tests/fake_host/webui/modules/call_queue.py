"""Fake ``modules.call_queue``: a real, non-reentrant queue lock."""
from __future__ import annotations

import functools
import threading

queue_lock = threading.Lock()


def wrap_queued_call(func):
    @functools.wraps(func)
    def f(*args, **kwargs):
        with queue_lock:
            return func(*args, **kwargs)
    return f


def wrap_gradio_gpu_call(func, extra_outputs=None):
    return wrap_queued_call(func)


def wrap_gradio_call(func, extra_outputs=None, add_stats=False):
    return func
