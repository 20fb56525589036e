#!/usr/bin/env python
"""hrm-eval command line: `python deploy.py --mode MODE ...` (`--help` lists the modes)."""

import sys

from hrm_eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
