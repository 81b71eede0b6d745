"""``python -m nurturekit``: the same as the ``nurturekit`` command."""

import sys

from nurturekit.cli import main

sys.exit(main())
