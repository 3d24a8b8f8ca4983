"""Run the command line: ``python -m energytree``."""

from energytree.app.cli import main

raise SystemExit(main())
