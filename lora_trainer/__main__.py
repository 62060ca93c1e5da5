"""python -m lora_trainer train | demo | inspect"""
import sys

from .cli.main import main

sys.exit(main())
