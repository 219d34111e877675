"""privsim: an agent-based simulator of privacy dynamics in recommender systems."""

from simulator._allocator import keep_freed_memory

__version__ = "0.1.0"

keep_freed_memory()
