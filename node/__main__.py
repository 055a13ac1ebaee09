"""``python -m node`` is the ``forklab`` command."""

from node.cli import main

raise SystemExit(main())
