"""The platform's defenses, in the order their hooks run, and the scenario checks that follow
from what each declares.

Adding a defense: write its module (settings, declarations, hooks: see `protocol`) and add
its class to `DEFENSES`. The `platform.defenses` section of a scenario, its reference, the
checks against the model and the other defenses, and the retrain loop all follow from here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import create_model

from simulator.defenses.adversarial.defense import AdversarialTraining
from simulator.defenses.apr.defense import APR
from simulator.defenses.detection.defense import FakeProfileDetection
from simulator.defenses.dp.defense import PrivateTraining
from simulator.defenses.protocol import Defense
from simulator.defenses.unlearning.defense import AttributeUnlearning
from simulator.foundations import plugins
from simulator.foundations.plugins import installed
from simulator.foundations.settings import DefenseSection, Section
from simulator.recommenders.registry import capabilities, models_with, why_lacking

# Hook order: screen the data, set the training hooks, train (DP-SGD or the model's own
# fit), then edit the trained model.
# Installed defenses (`simulator.foundations.plugins`) come after privsim's own.
DEFENSES: tuple[type[Defense], ...] = (
    FakeProfileDetection,
    APR,
    AdversarialTraining,
    PrivateTraining,
    AttributeUnlearning,
    *(defense for _, defense in installed(plugins.DEFENSES)),
)
BY_KEY: dict[str, type[Defense]] = {d.key: d for d in DEFENSES}

if TYPE_CHECKING:

    class DefensesConfig(Section):
        """The platform's defenses; each is off unless its section is present."""

        def __getattr__(self, key: str) -> DefenseSection | None: ...

else:
    DefensesConfig = create_model(
        "DefensesConfig",
        __base__=Section,
        __doc__="The platform's defenses; each is off unless its section is present.",
        **{d.key: (d.settings | None, None) for d in DEFENSES},
    )


def defense_summary_columns(columns: list[str]) -> list[str]:
    """The columns among `columns` that a defense's summary shows (`summary_columns`)."""
    patterns = [re.compile(p) for d in DEFENSES for p in d.summary_columns]
    return [c for c in columns if any(p.fullmatch(c) for p in patterns)]


def configured(config: Any) -> dict[str, DefenseSection]:
    """The defense sections present in a `DefensesConfig`, by key, in hook order."""
    sections = {d.key: getattr(config, d.key) for d in DEFENSES}
    return {key: section for key, section in sections.items() if section is not None}


def consumption_blockers(config: Any) -> list[str]:
    """The enabled defenses that cannot train a model ranked by consumption."""
    return [key for key, section in configured(config).items()
            if section.enabled and not BY_KEY[key].with_consumption]


def platform_defense_problems(model: str, item_features: bool, config: Any) -> str | None:
    """Why the configured defenses cannot run with this platform model, or None."""
    present = configured(config)
    have = capabilities(model)
    for key, section in present.items():
        defense = BY_KEY[key]
        if not defense.requires <= have:
            models = " or ".join(models_with(defense.requires))
            return (f"defenses.{key} trains {models} models, not {model!r}"
                    f"{why_lacking(model, defense.requires)}")
        if not section.enabled:
            continue
        problem = defense.conflicts(section, {k: s for k, s in present.items() if k != key})
        if problem is not None:
            return problem
    for key in present:
        if item_features and not BY_KEY[key].with_item_features:
            return (f"defenses.{key} cannot yet run with item_features (it reads the item "
                    "factors without the side information)")
    return None


def clean_twin_config(config: Any) -> Any:
    """The defenses of the attack-free twin platform: those kept on it (`on_clean_twin`)."""
    dropped = {d.key: None for d in DEFENSES if not d.on_clean_twin}
    return config.model_copy(update=dropped)
