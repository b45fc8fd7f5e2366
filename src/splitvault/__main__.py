"""``python -m splitvault`` is the ``splitvault`` command."""

from .cli import main

raise SystemExit(main())
