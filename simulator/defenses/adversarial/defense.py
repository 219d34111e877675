"""Privacy-adversarial training: the user embeddings are trained against read-out heads that
try to predict private attributes from them (gradient reversal, `defenses.adversarial`).

The adversary is built once, at the first retrain it acts on, and kept across retrains (its
heads keep learning); its read-out accuracy on the last epoch is reported after each fit.
It trains on the attributes accounts declared: beside poisoning attackers, fake accounts'
declarations (their attacker's choice) enter the read-outs as a genuine user's would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from simulator.defenses.adversarial.settings import AdversarialConfig
from simulator.defenses.protocol import Defense, DefenseContext, Retrain
from simulator.foundations.columns import SHARE, Column
from simulator.foundations.settings import DefenseSection

if TYPE_CHECKING:
    from simulator.defenses.adversarial.gradient_reversal import AttributeAdversary


class AdversarialTraining(Defense):
    """Sets the adversary on the model while active, and reports its read-out accuracy."""

    key = "adversarial"
    summary_columns = (r"adversary_readout_acc_\w+",)
    columns = (Column("adversary_readout_acc_{attribute}", *SHARE),)
    example = {"attributes": ["gender"], "weight": 1.0, "head_steps": 2}
    settings = AdversarialConfig
    requires: ClassVar[frozenset[str]] = frozenset({"user_adversary"})

    def __init__(self, *, config: DefenseSection, context: DefenseContext) -> None:
        super().__init__(config=config, context=context)
        self.adversary: AttributeAdversary | None = None

    def metric_names(self) -> list[str]:
        """One read-out accuracy per attribute."""
        config = self.config
        assert isinstance(config, AdversarialConfig)
        return [f"adversary_readout_acc_{a}" for a in config.attributes]

    def configure(self, retrain: Retrain) -> bool:
        """Train against the adversary while active; plain training otherwise."""
        active = self.active(retrain.step)
        if active and self.adversary is None:
            self.adversary = self._build()
        retrain.recommender.set_adversary(self.adversary if active else None)
        return active

    def _build(self) -> AttributeAdversary:
        from simulator.defenses.adversarial.gradient_reversal import AttributeAdversary

        config = self.config
        assert isinstance(config, AdversarialConfig)
        context = self.context
        return AttributeAdversary(
            {a: context.attributes[a] for a in config.attributes},
            n_classes={a: context.n_classes[a] for a in config.attributes},
            weight=config.weight, readout=config.readout, hidden=config.hidden, lr=config.lr,
            head_steps=config.head_steps, seed=context.seed,
        )

    def after_fit(self, retrain: Retrain) -> tuple[dict[str, float], bool]:
        """The read-out accuracy of the fit's last epoch, per attribute."""
        metrics: dict[str, Any] = {}
        if "adversarial" in retrain.used and self.adversary is not None \
                and self.adversary.history:
            for name, stats in self.adversary.history[-1].items():
                metrics[f"adversary_readout_acc_{name}"] = stats["accuracy"]
        return metrics, False
