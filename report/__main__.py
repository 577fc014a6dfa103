"""python -m report [key=value ...] (the same as python -m evaluate report)."""

import sys

from report.cli import main

sys.exit(main(sys.argv[1:]))
