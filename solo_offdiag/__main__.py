"""``python -m solo_offdiag`` is the ``solo-offdiag`` console script."""

import sys

from solo_offdiag.cli.main import main

sys.exit(main())
