"""energytree."""
