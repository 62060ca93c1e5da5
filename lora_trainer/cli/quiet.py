"""Silence library chatter that means nothing to a user of the CLI.

diffusers' per-component loading bars, its float32-upcast notice for models we cast ourselves,
transformers' "Loading weights" bar of each text encoder (transformers 5) and its image-processor
fallbacks (we load no image processor) and bitsandbytes' optional kernel probe are printed on every
run; real warnings and errors still get through.
"""
from __future__ import annotations

import logging
import warnings


def quiet_libraries() -> None:
    for name in ("diffusers", "transformers", "bitsandbytes", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as dlog
        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
    except ImportError:
        pass
    try:
        from transformers.utils import logging as tlog
        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except ImportError:
        pass
    warnings.filterwarnings("ignore", message=".*torchvision.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
