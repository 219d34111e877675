"""Mesa agents of privsim: users, the platform and attackers."""

from agents.attackers import InferenceAttacker
from agents.platform import PlatformAgent
from agents.users import UserAgent, UserPopulation

__all__ = ["InferenceAttacker", "PlatformAgent", "UserAgent", "UserPopulation"]
