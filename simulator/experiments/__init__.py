"""Running scenarios: one run, sweeps over seeds and settings, paired externality runs,
run folders and the shipped catalogue."""
