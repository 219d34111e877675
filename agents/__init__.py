"""Mesa agents of privsim: users, the platform and attackers."""

from agents.attackers import InferenceAttacker
from agents.item_owner import ItemOwner
from agents.platform import PlatformAgent
from agents.shilling import ShillingAttacker
from agents.users import UserAgent, UserPopulation

__all__ = [
    "InferenceAttacker", "ItemOwner", "PlatformAgent", "ShillingAttacker", "UserAgent",
    "UserPopulation",
]
