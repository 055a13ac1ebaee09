"""``python -m node.devnet ARGS`` is ``forklab devnet ARGS``."""

from node.commands.devnet import main

raise SystemExit(main())
