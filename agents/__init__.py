"""Mesa agents of privsim: the user population, the platform (and its clean twin) and the
agent that runs each attacker."""

from agents.attacker import AttackerAgent
from agents.platform import PlatformAgent
from agents.twin import CleanTwin
from agents.users import UserPopulation

__all__ = ["AttackerAgent", "CleanTwin", "PlatformAgent", "UserPopulation"]
