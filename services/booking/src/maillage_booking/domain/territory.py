"""French départements and their regions (INSEE 2016 regions), for local-first dispatch."""

from __future__ import annotations

_REGIONS: dict[str, tuple[str, ...]] = {
    "84": ("01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74"),
    "27": ("21", "25", "39", "58", "70", "71", "89", "90"),
    "53": ("22", "29", "35", "56"),
    "24": ("18", "28", "36", "37", "41", "45"),
    "94": ("2A", "2B"),
    "44": ("08", "10", "51", "52", "54", "55", "57", "67", "68", "88"),
    "32": ("02", "59", "60", "62", "80"),
    "11": ("75", "77", "78", "91", "92", "93", "94", "95"),
    "28": ("14", "27", "50", "61", "76"),
    "75": ("16", "17", "19", "23", "24", "33", "40", "47", "64", "79", "86", "87"),
    "76": ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"),
    "52": ("44", "49", "53", "72", "85"),
    "93": ("04", "05", "06", "13", "83", "84"),
    "01": ("971",),
    "02": ("972",),
    "03": ("973",),
    "04": ("974",),
    "06": ("976",),
}
_REGION_OF = {dep: region for region, deps in _REGIONS.items() for dep in deps}


def region_of(departement: str) -> str | None:
    """INSEE region code of a département, None when unknown."""
    return _REGION_OF.get(departement)


def proximity_tier(site_departement: str, served: tuple[str, ...] | list[str]) -> int | None:
    """1 when the responder serves the site's département, 2 its region, None otherwise."""
    if site_departement in served:
        return 1
    region = region_of(site_departement)
    if region is not None and any(region_of(dep) == region for dep in served):
        return 2
    return None
