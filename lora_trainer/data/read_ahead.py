"""Work on the next few chunks in threads while the caller consumes the current one, results in order.

Decoding and resizing a picture is CPU work that PIL does without holding the GIL: a 4032 × 3024 phone
photo takes about 0.2 s on one core, a 1216 × 832 PNG about 36 ms. Latent caching used to load each chunk
only after the VAE had encoded the one before, on one core.
"""
from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_THREADS = 4


def read_ahead(fn: Callable[[T], R], chunks: Iterable[T], threads: int | None = None) -> Iterator[R]:
    """``fn(chunk)`` for each chunk, yielded in the chunks' order, computed by up to ``threads`` threads
    (default: 4, at most the cores) at most ``2 × threads`` chunks ahead of the consumer. With one
    thread, or one chunk, no thread is started. An exception of ``fn`` is raised where its chunk's
    result would have been yielded; chunks still running then finish before it leaves (their results
    are dropped)."""
    chunks = list(chunks)
    threads = min(threads or MAX_THREADS, os.cpu_count() or 1, len(chunks))
    if threads <= 1:
        for chunk in chunks:
            yield fn(chunk)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="lora-trainer-read-ahead") as pool:
        waiting = iter(chunks)
        running = deque(pool.submit(fn, chunk) for chunk in itertools.islice(waiting, 2 * threads))
        try:
            while running:
                result = running.popleft().result()
                following = next(waiting, None)
                if following is not None:
                    running.append(pool.submit(fn, following))
                yield result
        finally:
            for future in running:
                future.cancel()
