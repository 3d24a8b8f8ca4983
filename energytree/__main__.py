"""Run the command line: ``python -m energytree``."""

from energytree.cli import main

raise SystemExit(main())
