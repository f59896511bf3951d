"""`python -m rnnlab`: the `rnnlab` command."""

import sys

from rnnlab.cli import entry

sys.exit(entry())
