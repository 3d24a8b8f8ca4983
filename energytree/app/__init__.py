"""The edge: the command line, the service wiring (the composition root), presentation
and the simulated site. It may use everything; nothing in the core, the optimiser or the
adapters uses it."""
