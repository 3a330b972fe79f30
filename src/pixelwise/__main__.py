"""``python -m pixelwise`` is the ``pixelwise`` command."""

import sys

from .cli import main

sys.exit(main())
