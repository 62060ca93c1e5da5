"""Fake ``modules_forge.main_thread``: tasks run in the calling thread."""


def run_and_wait_result(func, *args, **kwargs):
    return func(*args, **kwargs)
