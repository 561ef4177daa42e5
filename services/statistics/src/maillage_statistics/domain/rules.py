"""The written rules behind the observatory's indicators (no I/O).

Every definition a reader of the regional bilan may question lives here, in plain Python,
so it is unit-tested and documented once; the SQL in `db/` only counts.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SMALL_COUNT_THRESHOLD = 5
"""Open-data cells under this count are suppressed (statistical secrecy)."""
TIME_ZONE = "Europe/Paris"
"""Months and days of every indicator are calendar ones in this zone."""
PARIS = ZoneInfo(TIME_ZONE)


class UsageStatus(enum.StrEnum):
    """A site's use of telehealth over the last months (the bilan's three colours)."""

    REGULAR = "regular"
    TRANSITION = "transition"
    NONE = "none"


class SiteActType(enum.StrEnum):
    """The act a site is deployed for, as the bilan's 'types d'actes des sites' counts them."""

    ASSISTED_TELECONSULTATION = "assisted_teleconsultation"
    SIMPLE_TELECONSULTATION = "simple_teleconsultation"
    TELEEXPERTISE = "teleexpertise"


@dataclass(frozen=True, slots=True)
class UsageRule:
    """Regular use = at least `sessions_per_month` sessions in each of the last `months` months.

    Transition = at least one session in those months without being regular; none otherwise.
    """

    sessions_per_month: int = 4
    months: int = 3

    def __post_init__(self) -> None:
        if self.sessions_per_month < 1 or self.months < 1:
            raise ValueError("the usage rule needs k >= 1 sessions in each of m >= 1 months")

    def window(self, reference: date) -> list[date]:
        """First days of the `months` complete calendar months before `reference`'s month."""
        previous = reference.replace(day=1) - timedelta(days=1)
        return month_starts(previous, self.months)

    def status(self, monthly_sessions: Sequence[int]) -> UsageStatus:
        """`monthly_sessions`: counts of the last `months` months (missing months count 0)."""
        window = list(monthly_sessions)[-self.months :]
        window = [0] * (self.months - len(window)) + window
        if all(count >= self.sessions_per_month for count in window):
            return UsageStatus.REGULAR
        if any(count > 0 for count in window):
            return UsageStatus.TRANSITION
        return UsageStatus.NONE


@dataclass(frozen=True, slots=True)
class Filters:
    """The observatory's slicing: period [since, until), territory and site/act attributes."""

    since: datetime | None = None
    until: datetime | None = None
    departement: str | None = None
    site_category: str | None = None
    deployment_model: str | None = None
    specialty: str | None = None

    def __post_init__(self) -> None:
        for instant in (self.since, self.until):
            if instant is not None and instant.tzinfo is None:
                raise ValueError("period bounds must be timezone-aware")
        if self.since and self.until and self.until <= self.since:
            raise ValueError("the period must end after it starts")


def site_act_type(assisted: int, simple: int, expertises: int) -> SiteActType | None:
    """The site's predominant act; ties favour assisted, then simple (the roadmap's priority).

    A site without any act in the period has no act type (it is left out of the shares).
    """
    if assisted + simple + expertises == 0:
        return None
    best = max(assisted, simple, expertises)
    if assisted == best:
        return SiteActType.ASSISTED_TELECONSULTATION
    if simple == best:
        return SiteActType.SIMPLE_TELECONSULTATION
    return SiteActType.TELEEXPERTISE


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Each key's share of the total (0.0-1.0, rounded to 4 places); empty total → all 0."""
    total = sum(counts.values())
    return {key: round(count / total, 4) if total else 0.0 for key, count in counts.items()}


def suppress_small(count: int | None) -> int | None:
    """Hide a count under the threshold (but keep zero: a true zero discloses nobody)."""
    if count is None or count == 0:
        return count
    return None if count < SMALL_COUNT_THRESHOLD else count


def month_starts(until: date, months: int) -> list[date]:
    """First days of the `months` calendar months ending with the month of `until`."""
    year, month = until.year, until.month
    starts: list[date] = []
    for _ in range(months):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts[::-1]


def paris_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=PARIS)


def next_month(day: date) -> date:
    """The first day of the month after the month of `day`."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def monthly_average(total: int, months: int) -> float:
    """Average per month over a period of `months` (at least one) months."""
    return round(total / max(months, 1), 1)


def months_between(since: date, until: date) -> int:
    """Calendar months touched by [since, until] (both included), at least 1."""
    return max((until.year - since.year) * 12 + until.month - since.month + 1, 1)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile (same definition as PostgreSQL percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


HISTOGRAM_RATIO = 1.05
"""Width of a histogram bucket: bucket b holds values in [1.05^b, 1.05^(b+1))."""
ZERO_BUCKET = -32768
"""The bucket of values <= 0 (read back as 0)."""


def histogram_bucket(value: float) -> int:
    """The log-spaced bucket of `value` (the same rule as the rollup triggers' SQL)."""
    if value <= 0:
        return ZERO_BUCKET
    return math.floor(math.log(value) / math.log(HISTOGRAM_RATIO))


def bucket_value(bucket: int) -> float:
    """The bucket's geometric middle: within ±2.5 % of every value the bucket holds."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return float(HISTOGRAM_RATIO ** (bucket + 0.5))


def histogram_percentile(counts: Mapping[int, int], fraction: float) -> float | None:
    """`percentile` (linear interpolation, as percentile_cont) read from bucket counts.

    The two ranks the exact percentile interpolates between are located in their buckets and
    each replaced by its bucket's middle (within ±2.5 % of the value); their interpolation is
    then within ±2.5 % of the exact percentile (positive values).
    """
    buckets = sorted((bucket, n) for bucket, n in counts.items() if n > 0)
    total = sum(n for _, n in buckets)
    if not total:
        return None
    position = (total - 1) * fraction
    low, high = math.floor(position), math.ceil(position)

    def at(rank: int) -> float:
        seen = 0
        for bucket, n in buckets:
            seen += n
            if rank < seen:
                return bucket_value(bucket)
        return bucket_value(buckets[-1][0])

    lower = at(low)
    return lower + (at(high) - lower) * (position - low)
