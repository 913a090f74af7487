"""`python -m slicedim_lab.cli` = `slicedim`."""

import sys

from . import main

sys.exit(main())
