"""``python -m minibull``: the same as the ``minibull`` command."""

import sys

from .cli import main

sys.exit(main())
