"""Loom's entry point: `python main.py` serves; `python main.py run|validate|convert|nodes ...` work headless."""

import sys

from cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
