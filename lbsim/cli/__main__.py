"""``python -m lbsim.cli``: the same as ``python -m lbsim`` (kept for scripts that use it)."""

import sys

from lbsim.cli import main

sys.exit(main())
