"""Mesa agents of privsim: the user population, the platform (and its clean twin) and
attackers."""

from agents.inference_attacker import InferenceAttacker
from agents.item_owner import ItemOwner
from agents.platform import PlatformAgent
from agents.shilling_attacker import ShillingAttacker
from agents.twin import CleanTwin
from agents.users import UserPopulation

__all__ = [
    "CleanTwin", "InferenceAttacker", "ItemOwner", "PlatformAgent", "ShillingAttacker",
    "UserPopulation",
]
