"""The shilling attacker: fake accounts whose ratings push or nuke target items
(`attackers: [{kind: shilling}]`), built from public statistics only, optionally watching
the platform through probe accounts and adapting."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from simulator.attacks.declared import declare
from simulator.attacks.fake_profiles import (
    PublicStats,
    fake_profiles,
    filler_count,
    profile_count,
)
from simulator.attacks.protocol import Attacker, AttackerContext, Board
from simulator.attacks.targets import configured_or_by_popularity
from simulator.foundations.random_streams import random_stream
from simulator.foundations.settings import MAX_ITEMS, MAX_STEPS, Scheduled, Section
from simulator.world.base import Interactions, World

if TYPE_CHECKING:
    from simulator.recommenders.base import Recommender


ATTACK_MODELS = ("random", "average", "bandwagon", "segment", "love_hate", "reverse_bandwagon")


class ShillingAttackerConfig(Section):
    """A profile-injection attacker: fake users whose ratings push or nuke target items."""

    kind: Literal["shilling"] = "shilling"
    model: Literal[ATTACK_MODELS] = Field(  # type: ignore[valid-type]
        "average", description="how fake profiles rate their selected and filler items"
    )
    intent: Literal["push", "nuke"] = "push"
    targets: list[int] | None = Field(
        None, description="target item indices (0-based); default: chosen by popularity"
    )
    target_popularity: Literal["unpopular", "median", "popular"] = Field(
        "unpopular", description="without targets: public rating count of the chosen targets"
    )
    n_targets: int = Field(1, ge=1, le=MAX_ITEMS, description="without targets: how many to choose")
    attack_size: float = Field(
        0.03, gt=0.0, le=1.0, description="fake profiles as a share of genuine users"
    )
    filler_size: float = Field(
        0.03, gt=0.0, le=1.0, description="filler items per profile as a share of all items"
    )
    selected: list[int] | None = Field(
        None, description="selected items (bandwagon, segment, reverse_bandwagon); default: "
        "chosen from public statistics",
    )
    n_selected: int = Field(10, ge=1, le=MAX_ITEMS)
    start_step: int = Field(
        0, ge=0, le=MAX_STEPS, description="first step at which profiles are injected"
    )
    spread_steps: int = Field(
        1, ge=1, le=MAX_STEPS, description="inject the profiles evenly over this many steps"
    )
    adaptive: bool = Field(
        False, description="watch the targets through probe accounts after every retrain and "
        "react: inject more, and move fillers toward what the platform recommends",
    )
    probes: int = Field(
        5, ge=1, le=10_000, description="adaptive: probe accounts that only observe"
    )
    goal: float = Field(
        0.5, gt=0.0, le=1.0, description="adaptive: share of probes with a target in the "
        "top-k that counts as success (push), or without one (nuke)",
    )
    reserve: float = Field(
        0.5, ge=0.0, lt=1.0, description="adaptive: share of the profiles held back for "
        "re-injection when the goal is not reached",
    )
    declared_attributes: Literal["marginal", "flipped"] = Field(
        "marginal", description="what each fake account declares about itself (gender, age, "
        "occupation) at sign-up, which defenses trained on declared attributes take at face "
        "value: drawn from the public class shares, or the class its own ratings look least "
        "like (to turn the platform's read-outs around)",
    )
    known_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="share of genuine users whose attributes the "
        "attacker knows (public profiles): its class shares and its flipped declarations",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ShillingAttackerConfig:
        if self.model in ("love_hate", "reverse_bandwagon") and self.intent == "push":
            raise ValueError(f"model {self.model} is a nuke attack: set intent: nuke")
        for name in ("targets", "selected"):
            values = getattr(self, name)
            if values is not None and (not values or len(set(values)) != len(values)
                                       or min(values) < 0):
                raise ValueError(f"{name}: give distinct item indices >= 0")
        return self


# Implicit-feedback platforms record that a user interacted, not how much they liked it, so
# a fake user only interacts with items it wants promoted: ratings below this are not sent.
IMPLICIT_THRESHOLD = 4.0
# Length of the recommendation list a probe account is shown (what the attacker observes).
OBSERVED_LIST = 50
# The top-k a push attack wants its targets in.
GOAL_K = 10


@dataclass
class Declarations:
    """Where the fake accounts' declared attributes go and what the attacker knows to choose
    them: `accounts` are the platform's per-account attribute codes (shared, every account;
    the attacker fills its own slots), `public_labels` the genuine users' attributes it
    knows (-1 elsewhere), `n_classes` each attribute's class count."""

    accounts: dict[str, np.ndarray]
    public_labels: dict[str, np.ndarray]
    n_classes: dict[str, int]
    rng: np.random.Generator


@dataclass
class Injection:
    """What the attacker sends the platform at one step: new fake ratings, and the fake
    users whose earlier ratings the new ones replace (edited profiles)."""

    ratings: Interactions
    replaced_users: np.ndarray


class ShillingAttacker(Attacker):
    """Creates fake accounts (user slots `first_slot ...`) and rates items through them.

    Knowledge it assumes: only public statistics of the genuine users' disclosed ratings
    (rating counts and means per item, the global mean and spread; see `PublicStats`), never
    held-out data or the model. Targets without an explicit list are chosen by public
    popularity. The adaptive mode also watches the platform the way any user can: through
    the recommendation lists its probe accounts are shown (black box).

    Schedule: the profiles are injected evenly over `spread_steps` steps from `start_step`.
    Adaptive mode holds back `reserve` of them; after every retrain it looks at the targets'
    ranks in its probes' lists and, while its goal is not met, injects a quarter of the
    reserve at the next step and moves every fake profile's fillers onto the items the
    platform currently recommends (so the targets co-occur with what is in favour).
    """

    kind = "shilling"
    title = "a shilling attacker (fake accounts)"
    settings = ShillingAttackerConfig
    label_prefix = "shilling"
    poisons = True
    reads = ("public ratings", "recommendations")
    phases = ("inject", "probe")
    example = {"kind": "shilling", "attack_size": 0.05}

    def __init__(self, *, settings: ShillingAttackerConfig, context: AttackerContext) -> None:
        super().__init__(settings=settings, context=context)
        config = settings
        world = context.world
        n_items = world.n_items
        self.declarations = Declarations(
            context.accounts,
            public_labels(world, config.known_fraction,
                          random_stream(context.seed, "poisoner_public_labels", context.index)),
            {a: len(labels) for a, labels in world.attribute_labels.items()},
            random_stream(context.seed, "poisoner_declarations", context.index))
        self.n_items = n_items
        self.first_slot = context.first_slot
        self.implicit = context.implicit
        self.draws = random_stream(context.seed, "poisoner", context.index)
        self.total = profile_count(config.attack_size, context.n_genuine)
        self.n_probes = config.probes if config.adaptive else 0
        self.n_slots = self.total + self.n_probes
        self.filler = filler_count(config.filler_size, n_items)
        held = int(round(config.reserve * self.total)) if config.adaptive else 0
        held = min(held, self.total - 1)
        self.reserve = held
        self.reserve_step = max(1, math.ceil(held / 4)) if held else 0
        edges = np.round(np.linspace(0, self.total - held, config.spread_steps + 1))
        self.schedule = np.diff(edges).astype(int)
        self.targets: np.ndarray | None = None
        self.selected: np.ndarray | None = None
        self.injected = 0
        self.extra_due = 0
        self.filler_pool: np.ndarray | None = None
        self.observed_success = math.nan
        self.goal_met: bool | None = None
        self._probe_items: dict[int, np.ndarray] = {}

    @classmethod
    def scheduled(cls, settings: Any, index: int) -> list[Scheduled]:
        """Its injections, from `start_step` over `spread_steps`."""
        last = settings.start_step + settings.spread_steps - 1
        key = f"attackers.{index}.start_step"
        if settings.spread_steps > 1:
            key += f" + spread_steps - 1 = {last}"
        return [Scheduled(settings.start_step, last,
                          f"{settings.model} {settings.intent} attack", key, True,
                          "its fake profiles reach the model only at a retrain")]

    # -- who is who --------------------------------------------------------------------------
    @property
    def profile_users(self) -> np.ndarray:
        """Slots of the fake profiles injected so far."""
        return np.arange(self.first_slot, self.first_slot + self.injected, dtype=np.int64)

    @property
    def probe_users(self) -> np.ndarray:
        """Slots of the probe accounts (after the profiles' slots)."""
        start = self.first_slot + self.total
        return np.arange(start, start + self.n_probes, dtype=np.int64)

    @property
    def started(self) -> bool:
        """Whether the attack has started (its first profiles or probes are in)."""
        return self.injected > 0 or bool(self._probe_items)

    # -- acting ------------------------------------------------------------------------------
    def act(self, step: int, public: Interactions) -> Injection:
        """This step's fake ratings, given the public genuine ratings."""
        cfg = self.config
        none = Injection(Interactions.empty(), np.zeros(0, np.int64))
        if len(public) < 2:
            return none
        stats = PublicStats.from_ratings(public, self.n_items)
        if self.targets is None:
            # Chosen as soon as there is public data, so the targets' standing before the
            # attack is measured too.
            self._choose_items(stats, public)
        if step < cfg.start_step:
            return none
        parts: list[Interactions] = []
        replaced = np.zeros(0, np.int64)
        if self.n_probes and not self._probe_items:
            parts.append(self._probes(stats, step))
        if self.filler_pool is not None and self.injected:
            # Adaptive shift: every existing profile is rewritten with fillers from the pool.
            replaced = self.profile_users
            parts.append(self._profiles(stats, self.first_slot, self.injected, step))
            self.filler_pool = None
        index = step - cfg.start_step
        count = int(self.schedule[index]) if index < len(self.schedule) else 0
        count += min(self.extra_due, self.reserve)
        self.reserve -= min(self.extra_due, self.reserve)
        self.extra_due = 0
        count = min(count, self.total - self.injected)
        if count:
            parts.append(self._profiles(stats, self.first_slot + self.injected, count, step))
            self.injected += count
        ratings = Interactions.concat(parts) if parts else Interactions.empty()
        return Injection(ratings, replaced)

    def _choose_items(self, stats: PublicStats, public: Interactions) -> None:
        cfg = self.config
        self.targets = configured_or_by_popularity(
            cfg.targets, cfg.target_popularity, cfg.n_targets, stats.item_count, self.draws,
            "targets",
        )
        if cfg.selected is not None:
            self.selected = np.asarray(cfg.selected, dtype=np.int64)
        elif cfg.model == "segment":
            self.selected = segment_items(public, stats, self.targets, cfg.n_selected)

    def _profiles(self, stats: PublicStats, first: int, count: int, step: int) -> Interactions:
        assert self.targets is not None
        cfg = self.config
        ratings = fake_profiles(
            cfg.model, cfg.intent, self.targets, count, self.filler, stats, self.draws,
            selected=self.selected, n_selected=cfg.n_selected, first_user=first,
            timestamp=step, filler_pool=self.filler_pool,
        )
        if self.implicit:
            ratings = ratings.subset(ratings.rating >= IMPLICIT_THRESHOLD)
        return ratings

    def _probes(self, stats: PublicStats, step: int) -> Interactions:
        """Ordinary-looking accounts: popular-weighted items at their public mean rating."""
        assert self.targets is not None
        weight = stats.item_count.astype(np.float64)
        weight[self.targets] = 0.0
        n = min(self.filler, int((weight > 0).sum()))
        users, items = [], []
        for probe in self.probe_users:
            chosen = self.draws.choice(self.n_items, n, replace=False, p=weight / weight.sum())
            self._probe_items[int(probe)] = chosen
            users.append(np.full(n, probe, np.int64))
            items.append(chosen.astype(np.int64))
        item = np.concatenate(items)
        rating = np.clip(np.round(stats.item_mean[item]), 1, 5).astype(np.float32)
        user = np.concatenate(users)
        return Interactions(user, item, rating, np.full(len(user), step, np.int64))

    # -- phases (run by the model through Mesa's AgentSet) -----------------------------------
    def inject(self, board: Board) -> None:
        """Phase: send this step's fake ratings to the platform (rewritten profiles replace
        their earlier ratings)."""
        injection = self.act(board.step, board.public)
        self.declare(injection.ratings, board.public)
        board.platform.data.drop_users(injection.replaced_users)
        board.platform.ingest(injection.ratings)
        if len(injection.ratings):
            board.event("profile_injection", self.label,
                        float(len(np.unique(injection.ratings.user))), 0.0, {
                            "ratings": len(injection.ratings),
                            "profiles_total": self.injected,
                            "rewritten": len(injection.replaced_users),
                            "targets": self.targets.tolist() if self.targets is not None else None,
                        })

    def declare(self, ratings: Interactions, public: Interactions) -> None:
        """New fake accounts declare their attributes at sign-up (`declared_attributes`);
        accounts that declared before keep what they declared."""
        known = self.declarations
        if known is None or not len(ratings):
            return
        users = np.unique(ratings.user)
        for name, accounts in known.accounts.items():
            new = users[accounts[users] < 0]
            if len(new):
                accounts[new] = declare(
                    self.config.declared_attributes, ratings, new, public,
                    known.public_labels[name], known.n_classes[name], self.n_items, known.rng,
                )

    def probe(self, board: Board) -> None:
        """Phase, after a retrain: adaptive attackers look at the new model through their
        probe accounts."""
        if self.n_probes and self.started:
            success = self.observe(board.platform.recommender)
            board.event("attack_observation", self.label, success, 0.0, {
                "goal_met": self.goal_met, "reserve_left": self.reserve,
            })

    # -- observing ---------------------------------------------------------------------------
    def observe(self, recommender: Recommender) -> float:
        """After a retrain: the share of probes with a target in their top-10 (push), or the
        targets' mean rank percentile in the probes' lists (nuke). Adaptive attackers that
        miss their goal schedule more profiles and a filler shift."""
        if not self.n_probes or self.targets is None or not self._probe_items:
            return math.nan
        import torch

        probes = self.probe_users
        with torch.no_grad():
            scored = recommender.score(torch.as_tensor(probes, device=recommender.device))
            scores = scored.float().cpu().numpy()
        for row, probe in enumerate(probes):
            scores[row, self._probe_items[int(probe)]] = -np.inf
        target_scores = scores[:, self.targets]
        # As the platform's own measurement: items scored the same rank ahead of a target.
        ranks = (scores[:, None, :] >= target_scores[:, :, None]).sum(2) - 1
        unseen = np.isfinite(scores).sum(1, keepdims=True)
        if self.config.intent == "push":
            success = float((ranks < GOAL_K).mean())
        else:
            success = float((ranks / np.maximum(unseen - 1, 1)).mean())
        self.observed_success = success
        self.goal_met = success >= self.config.goal
        if not self.goal_met:
            k = min(OBSERVED_LIST, scores.shape[1])
            shown = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            pool = np.setdiff1d(np.unique(shown), self.targets)
            self.filler_pool = pool
            if self.reserve:
                self.extra_due = self.reserve_step
        return success


def segment_items(
    public: Interactions, stats: PublicStats, targets: np.ndarray, n: int
) -> np.ndarray:
    """A segment attack's selected items without a given list: what the targets' audience
    likes. The segment is the public users who rated a target 4 or more; items are ranked by
    how many of them also rated the item 4 or more, over the square root of the item's
    popularity (so blockbusters everyone likes do not win by size alone). Without such
    users, the best-rated items among those at least as popular as the median item."""
    liked = public.rating >= IMPLICIT_THRESHOLD
    fans = np.unique(public.user[liked & np.isin(public.item, targets)])
    counts = stats.item_count.astype(np.float64)
    if len(fans):
        rows = liked & np.isin(public.user, fans)
        score = np.bincount(public.item[rows], minlength=stats.n_items) / np.sqrt(
            np.maximum(counts, 1.0)
        )
        candidate = score > 0
    else:
        score = stats.item_mean
        candidate = counts >= max(1.0, float(np.median(counts)))
    candidate[targets] = False
    order = np.lexsort((np.arange(len(counts)), -score))
    order = order[candidate[order]]
    return order[:n].astype(np.int64)


def public_labels(world: World, fraction: float, rng: np.random.Generator
                  ) -> dict[str, np.ndarray]:
    """The genuine users' attributes an attacker knows: a seeded `fraction` of the users made
    their profile public (-1 for the others)."""
    public = rng.random(world.n_users) < fraction
    return {name: np.where(public, codes, -1).astype(np.int64)
            for name, codes in world.attributes.items()}
