"""``python -m vfs`` runs the command line."""

from vfs.cli import main

raise SystemExit(main())
