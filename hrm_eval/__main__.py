"""`python -m hrm_eval --mode MODE ...`: the command line of an installed package, the same as
the `hrm-eval` script and `python deploy.py` (`--help` lists the modes)."""

import sys

from hrm_eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
