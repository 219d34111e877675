"""Measurements: what is measured of the model at every step.

Each measurement (`base.Measurement`) reads the model after a step's phases (the
platform, the population, the attackers, the step board) and returns its columns of the
metrics row, and, when grouped, its columns of each group's row. The registry
(`registry.REGISTRY`) decides from a scenario's settings which measurements it gets and
in which order their columns come; `suite.Measurer` runs them.

This package sits above `simulator.metrics` (the computations on arrays) and the attacks,
above the agents: it reads them (through `base.ModelView`) and their step board, and the
model (`simulator.simulation`) is the only thing above that runs it.
"""
