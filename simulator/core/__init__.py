"""The simulation itself: the scenario schema, the Mesa model and its state, and the
foundations every layer uses (errors, devices, random streams, schedules)."""
