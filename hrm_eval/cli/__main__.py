import sys

from hrm_eval.cli import main

sys.exit(main())
