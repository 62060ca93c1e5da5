"""python -m lora_trainer train | demo | inspect"""
import sys

from .cli import main

sys.exit(main())
