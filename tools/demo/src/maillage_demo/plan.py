"""The demo's plan: a synthetic region and a week of activity, derived from a seed alone.

Pure: no I/O, no clock, no global random state. The same (seed, sites, days) always gives
the same plan, and the outcomes the observatory must show follow from the plan
(`Plan.expected`), so a run can be checked against the statistics service.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from maillage_demo import region

ScheduledOutcome = Literal["done", "cancelled", "noshow"]
ExpertiseOutcome = Literal["answered", "rejected"]
Assistance = Literal["assisted", "simple"]

_FAMILY_NAMES = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Muller", "Schmitt", "Meyer", "Weber", "Klein", "Schneider", "Wagner", "Becker", "Hoffmann",
)  # fmt: skip
_GIVEN_NAMES = (
    "Camille", "Claire", "Julien", "Nicolas", "Sophie", "Thomas", "Marie", "Pierre", "Anne",
    "Lucas", "Emma", "Hugo", "Léa", "Louis", "Chloé", "Paul", "Manon", "Antoine", "Inès",
)  # fmt: skip
_SITE_PREFIX = {
    "medico_social": "Foyer d'accueil médicalisé",
    "msp": "Maison de santé pluriprofessionnelle",
    "cpts": "CPTS",
    "centre_de_sante": "Centre de santé",
    "paramedical": "Cabinet infirmier",
    "ehpad": "EHPAD",
    "pharmacie": "Pharmacie",
    "etablissement_de_sante": "Hôpital de proximité",
    "collectivite": "Espace santé communal",
}
_DEVICE_SETS: tuple[tuple[str, ...], ...] = (
    ("oximeter", "blood_pressure_monitor", "thermometer", "stethoscope"),
    ("oximeter", "blood_pressure_monitor", "dermatoscope", "otoscope"),
    ("oximeter", "ecg", "stethoscope", "scale"),
)


@dataclass(frozen=True, slots=True)
class KioskPlan:
    key: str
    label: str
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SitePlan:
    key: str
    name: str
    category: str
    deployment_model: str
    commune: region.Commune
    latitude: float
    longitude: float
    under_served: bool
    act_profile: str
    specialties_needed: tuple[str, ...]
    kiosks: tuple[KioskPlan, ...]

    @property
    def departement(self) -> str:
        return self.commune.departement


@dataclass(frozen=True, slots=True)
class ResponderPlan:
    key: str
    rpps: str
    family_name: str
    given_name: str
    specialty: str
    commune: region.Commune
    on_duty: bool


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A nurse searches free slots for the day and books one; then it happens (or not)."""

    site: str
    specialty: str
    assistance: Assistance
    outcome: ScheduledOutcome
    slot_choice: int
    media_seconds: float
    kind: Literal["scheduled"] = "scheduled"


@dataclass(frozen=True, slots=True)
class OnDemand:
    """A kiosk raises an on-demand request; an on-duty responder accepts; the call runs."""

    site: str
    kiosk: str
    specialty: str
    media_seconds: float
    kind: Literal["on_demand"] = "on_demand"


@dataclass(frozen=True, slots=True)
class Expertise:
    site: str
    responder: str
    specialty: str
    outcome: ExpertiseOutcome
    level: Literal[1, 2]
    kind: Literal["expertise"] = "expertise"


@dataclass(frozen=True, slots=True)
class Measurements:
    """A kiosk uploads a batch of device readings for one patient (consent granted)."""

    site: str
    kiosk: str
    patient: str
    count: int
    kind: Literal["measurements"] = "measurements"


@dataclass(frozen=True, slots=True)
class KioskOutage:
    """A kiosk stops sending heartbeats until the fleet watchdog sees it offline, then
    comes back (one alert raised, then cleared)."""

    site: str
    kiosk: str
    kind: Literal["outage"] = "outage"


Action = Scheduled | OnDemand | Expertise | Measurements | KioskOutage


@dataclass(frozen=True, slots=True)
class DayPlan:
    day: int
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Expected:
    """What the observatory must count once the plan has run."""

    sites: int
    responders: int
    kiosks: int
    teleconsultations: int
    scheduled_teleconsultations: int
    on_demand_teleconsultations: int
    assisted_teleconsultations: int
    cancellations: int
    no_shows: int
    expertises: int
    expertises_answered: int
    expertises_rejected: int
    measurements: int
    kiosk_outages: int


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    sites: tuple[SitePlan, ...]
    responders: tuple[ResponderPlan, ...]
    days: tuple[DayPlan, ...]
    patients_per_site: int = field(default=3)

    def site(self, key: str) -> SitePlan:
        return next(s for s in self.sites if s.key == key)

    def responder(self, key: str) -> ResponderPlan:
        return next(r for r in self.responders if r.key == key)

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(action for day in self.days for action in day.actions)

    def expected(self) -> Expected:
        actions = self.actions
        scheduled = [a for a in actions if isinstance(a, Scheduled)]
        done = [a for a in scheduled if a.outcome == "done"]
        on_demand = [a for a in actions if isinstance(a, OnDemand)]
        expertises = [a for a in actions if isinstance(a, Expertise)]
        return Expected(
            sites=len(self.sites),
            responders=len(self.responders),
            kiosks=sum(len(s.kiosks) for s in self.sites),
            teleconsultations=len(done) + len(on_demand),
            scheduled_teleconsultations=len(done),
            on_demand_teleconsultations=len(on_demand),
            # On-demand requests are raised by kiosks: assisted by the site's staff.
            assisted_teleconsultations=sum(a.assistance == "assisted" for a in done)
            + len(on_demand),
            cancellations=sum(a.outcome == "cancelled" for a in scheduled),
            no_shows=sum(a.outcome == "noshow" for a in scheduled),
            expertises=len(expertises),
            expertises_answered=sum(a.outcome == "answered" for a in expertises),
            expertises_rejected=sum(a.outcome == "rejected" for a in expertises),
            measurements=sum(a.count for a in actions if isinstance(a, Measurements)),
            kiosk_outages=sum(isinstance(a, KioskOutage) for a in actions),
        )


def luhn_completed(digits: str) -> str:
    """`digits` followed by its Luhn check digit (RPPS numbers carry one)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return digits + str((10 - total % 10) % 10)


def apportion(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split `total` in proportion to `weights` (largest remainders, ties by key order)."""
    weight_sum = sum(weights.values())
    exact = {key: total * weight / weight_sum for key, weight in weights.items()}
    shares = {key: int(value) for key, value in exact.items()}
    order = sorted(weights, key=lambda key: (-(exact[key] - shares[key]), list(weights).index(key)))
    for key in order[: total - sum(shares.values())]:
        shares[key] += 1
    return shares


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def build_plan(seed: int, sites: int = 160, days: int = 7) -> Plan:
    """The region and its week for `seed`: about 1.25 responders per site, like Grand Est's
    200 doctors for 163 sites."""
    if sites < 1 or days < 1:
        raise ValueError("a plan needs at least one site and one day")
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    site_plans = _sites(rng, sites)
    responders = _responders(rng, max(len(region.SPECIALTY_DEMAND), round(sites * 200 / 163)))
    # An accepted on-demand request reserves its kiosk for the slot (BOOKING_ONDEMAND_SLOT_
    # MINUTES of real time): each kiosk raises at most one request in the whole run.
    free_kiosks = [(site, kiosk) for site in site_plans for kiosk in site.kiosks]
    rng.shuffle(free_kiosks)
    day_plans = tuple(
        _day(rng, day, days, site_plans, responders, free_kiosks) for day in range(days)
    )
    return Plan(seed=seed, sites=site_plans, responders=responders, days=day_plans)


def _sites(rng: random.Random, count: int) -> tuple[SitePlan, ...]:
    per_departement = apportion(count, region.SITES_PER_DEPARTEMENT)
    plans: list[SitePlan] = []
    for departement, share in per_departement.items():
        communes = region.communes_of(departement)
        for _ in range(share):
            number = len(plans) + 1
            commune = rng.choice(communes)
            category = _weighted(rng, region.SITE_TYPOLOGY)
            model = _weighted(rng, region.DEPLOYMENT_MODELS)
            profile = _weighted(rng, region.ACT_PROFILE)
            needed = sorted(
                {region.GENERAL_MEDICINE, *rng.sample(sorted(region.SPECIALTY_DEMAND), 2)}
            )
            kiosk_count = 0 if profile == "expertise" else 2 if model == "hotspot_dedie" else 1
            kiosks = tuple(
                KioskPlan(
                    key=f"kiosk-{number:03d}-{k + 1}",
                    label=f"Cabine {k + 1}",
                    devices=rng.choice(_DEVICE_SETS),
                )
                for k in range(kiosk_count)
            )
            plans.append(
                SitePlan(
                    key=f"site-{number:03d}",
                    name=f"{_SITE_PREFIX[category]} de {commune.name} {number}",
                    category=category,
                    deployment_model=model,
                    commune=commune,
                    # A few hundred metres around the town centre: distinct map points.
                    latitude=round(commune.latitude + rng.uniform(-0.01, 0.01), 5),
                    longitude=round(commune.longitude + rng.uniform(-0.01, 0.01), 5),
                    under_served=commune.rural and rng.random() < 0.6,
                    act_profile=profile,
                    specialties_needed=tuple(needed),
                    kiosks=kiosks,
                )
            )
    return tuple(plans)


def _responders(rng: random.Random, count: int) -> tuple[ResponderPlan, ...]:
    # At least one responder per specialty, the rest in proportion to the sites' demand.
    specialties = apportion(count - len(region.SPECIALTY_DEMAND), region.SPECIALTY_DEMAND)
    plans: list[ResponderPlan] = []
    for specialty, extra in specialties.items():
        for _ in range(extra + 1):
            number = len(plans) + 1
            plans.append(
                ResponderPlan(
                    key=f"responder-{number:03d}",
                    rpps=luhn_completed(f"1000{number:06d}"),
                    family_name=rng.choice(_FAMILY_NAMES),
                    given_name=rng.choice(_GIVEN_NAMES),
                    specialty=specialty,
                    commune=rng.choice(region.COMMUNES),
                    # General practitioners take on-demand requests (the roadmap's
                    # "soins non programmés").
                    on_duty=specialty == region.GENERAL_MEDICINE,
                )
            )
    return tuple(plans)


def _day(
    rng: random.Random,
    day: int,
    days: int,
    sites: tuple[SitePlan, ...],
    responders: tuple[ResponderPlan, ...],
    free_kiosks: list[tuple[SitePlan, KioskPlan]],
) -> DayPlan:
    actions: list[Action] = []
    with_kiosks = [s for s in sites if s.kiosks]
    on_duty = sum(r.on_duty for r in responders)
    scheduled_count = max(3, round(len(sites) * 0.12))
    # An accepted request keeps its responder busy for the slot: never more requests in the
    # whole run than responders on duty.
    on_demand_count = min(max(1, round(len(sites) * 0.04)), on_duty // days)
    expertise_count = max(2, round(len(sites) * 0.03))
    for _ in range(scheduled_count):
        site = rng.choice(sites)
        roll = rng.random()
        outcome: ScheduledOutcome = (
            "cancelled" if roll < 0.1 else "noshow" if roll < 0.2 else "done"
        )
        actions.append(
            Scheduled(
                site=site.key,
                specialty=rng.choice(site.specialties_needed),
                assistance="assisted"
                if site.act_profile == "assisted" and site.kiosks
                else "simple",
                outcome=outcome,
                slot_choice=rng.randrange(8),
                media_seconds=round(rng.uniform(0.5, 1.5), 2),
            )
        )
    for _ in range(min(on_demand_count, len(free_kiosks))):
        site, kiosk = free_kiosks.pop()
        actions.append(
            OnDemand(
                site=site.key,
                kiosk=kiosk.key,
                specialty=region.GENERAL_MEDICINE,
                media_seconds=round(rng.uniform(0.5, 1.5), 2),
            )
        )
    for _ in range(expertise_count):
        site = rng.choice(sites)
        responder = rng.choice(responders)
        actions.append(
            Expertise(
                site=site.key,
                responder=responder.key,
                specialty=responder.specialty,
                outcome="rejected" if rng.random() < 0.2 else "answered",
                level=1 if rng.random() < 0.8 else 2,
            )
        )
    for site in with_kiosks:
        if rng.random() < 0.3:
            actions.append(
                Measurements(
                    site=site.key,
                    kiosk=rng.choice(site.kiosks).key,
                    patient=f"{site.key}-patient-{rng.randrange(3) + 1}",
                    count=rng.randint(2, 6),
                )
            )
    if day == days // 2 and with_kiosks:
        site = rng.choice(with_kiosks)
        actions.append(KioskOutage(site=site.key, kiosk=site.kiosks[0].key))
    rng.shuffle(actions)
    return DayPlan(day=day, actions=tuple(actions))


def summary(plan: Plan) -> dict[str, int]:
    """Counts per action kind, for the progress line."""
    return dict(Counter(action.kind for action in plan.actions))
