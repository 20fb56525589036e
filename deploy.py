#!/usr/bin/env python
"""hrm-eval command line: `python deploy.py --mode evaluate|inspect|score|build-data|generate|train|ensemble|compare|test`."""
import sys

from hrm_eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
