"""``python -m lbsim COMMAND ...``: the same program as the ``lbsim`` command."""

import sys

try:
    from lbsim.cli import main
except KeyboardInterrupt:  # Ctrl-C while the modules load: as main() reports it
    print("lbsim: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
