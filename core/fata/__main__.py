"""``python -m fata`` is the ``fata`` command."""

from fata.cli import main

raise SystemExit(main())
