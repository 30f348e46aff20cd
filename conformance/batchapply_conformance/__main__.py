"""``python -m batchapply_conformance TARGET``."""

import sys

from batchapply_conformance._cli import main

sys.exit(main())
