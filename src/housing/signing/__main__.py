"""``python -m housing.signing keygen|sign|verify``."""

import sys

from housing.signing.cli import main

sys.exit(main())
