"""``python -m batchapply_reference.conformance TARGET``."""

import sys

from batchapply_reference.conformance._cli import main

sys.exit(main())
