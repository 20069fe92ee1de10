"""``python -m ignity ...`` is the ``ignity`` command."""

from .cli import main

raise SystemExit(main())
