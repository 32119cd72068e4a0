"""``python -m prunekit ...``: the command line, as a module (what ``torchrun -m prunekit`` launches)."""

import sys

from prunekit.cli import main

sys.exit(main())
