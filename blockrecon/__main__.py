"""``python -m blockrecon`` runs the ``blockrecon`` command."""

import sys

from blockrecon.cli import main

sys.exit(main())
