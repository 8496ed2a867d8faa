"""``python -m app.cli``: what ``optgate dev`` uses to start its children."""

import sys

from app.cli import main

sys.exit(main())
