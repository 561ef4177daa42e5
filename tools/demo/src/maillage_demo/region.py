"""The shape of the Grand Est network, from the bilan of its telemedicine roadmap 2021-2023.

Figures come from /work/shared/seeds (the bilan and the roadmap): operational sites per
département, site typology, act types of sites, specialties called on, deployment models.
Communes are real (INSEE code, name, population from the directory's official list; the
coordinates are those of the town centre).
"""

from __future__ import annotations

from dataclasses import dataclass

# Operational sites per département in the bilan (163 in all).
SITES_PER_DEPARTEMENT: dict[str, int] = {
    "08": 8,
    "10": 36,
    "51": 9,
    "52": 27,
    "54": 19,
    "55": 17,
    "57": 12,
    "67": 6,
    "68": 12,
    "88": 17,
}

# Site typology of the bilan: 36 % médico-social (excluding EHPAD), 17 % coordinated practice
# (MSP, CPTS, centres de santé), 16 % paramedical, 13 % EHPAD; the remaining 18 % split
# between pharmacies, hospitals and local authorities.
SITE_TYPOLOGY: dict[str, int] = {
    "medico_social": 36,
    "msp": 9,
    "cpts": 4,
    "centre_de_sante": 4,
    "paramedical": 16,
    "ehpad": 13,
    "pharmacie": 8,
    "etablissement_de_sante": 6,
    "collectivite": 4,
}

# Roadmap step 6: 20 hotspots, 60 classic sites, 20 mobile units per 100 sites.
DEPLOYMENT_MODELS: dict[str, int] = {
    "hotspot_dedie": 10,
    "hotspot_mutualise": 10,
    "site_classique": 60,
    "unite_mobile_programmee": 12,
    "unite_mobile_non_programmee": 8,
}

# Act types of operational sites: 85 % assisted teleconsultation, 11 % simple, 4 % expertise.
ACT_PROFILE: dict[str, int] = {"assisted": 85, "simple": 11, "expertise": 4}

# Specialties called on by sites (number of sites in the bilan), by the directory's slugs:
# the TRE_R38 codes behind them are read from the directory (GET /reference/specialties),
# whose versioned list may remap a code.
SPECIALTY_DEMAND: dict[str, int] = {
    "medecine-generale": 123,
    "dermatologie": 50,
    "psychiatrie": 45,
    "cardiologie": 37,
    "neurologie": 27,
    "geriatrie": 20,
}
GENERAL_MEDICINE = "medecine-generale"

# Devices a kiosk may carry (directory DeviceKind values) and what they measure.
DEVICE_KINDS: tuple[str, ...] = (
    "oximeter",
    "blood_pressure_monitor",
    "thermometer",
    "stethoscope",
    "otoscope",
    "dermatoscope",
    "ecg",
    "scale",
)


@dataclass(frozen=True, slots=True)
class Commune:
    insee: str
    name: str
    departement: str
    population: int
    latitude: float
    longitude: float

    @property
    def rural(self) -> bool:
        # Small towns stand for the rural share (41 % of sites in the bilan).
        return self.population < 8_000


COMMUNES: tuple[Commune, ...] = (
    Commune("08105", "Charleville-Mézières", "08", 45560, 49.7621, 4.7262),
    Commune("08409", "Sedan", "08", 16667, 49.7019, 4.9403),
    Commune("08362", "Rethel", "08", 7444, 49.5097, 4.3675),
    Commune("08190", "Givet", "08", 6364, 50.1378, 4.8253),
    Commune("08490", "Vouziers", "08", 3825, 49.3975, 4.7011),
    Commune("10387", "Troyes", "10", 62088, 48.2973, 4.0744),
    Commune("10323", "Romilly-sur-Seine", "10", 14959, 48.5156, 3.7267),
    Commune("10033", "Bar-sur-Aube", "10", 4665, 48.2333, 4.7061),
    Commune("10034", "Bar-sur-Seine", "10", 2858, 48.1128, 4.3764),
    Commune("10268", "Nogent-sur-Seine", "10", 5537, 48.4936, 3.5025),
    Commune("51454", "Reims", "51", 177674, 49.2583, 4.0317),
    Commune("51108", "Châlons-en-Champagne", "51", 42971, 48.9566, 4.3631),
    Commune("51230", "Épernay", "51", 22174, 49.0400, 3.9600),
    Commune("51649", "Vitry-le-François", "51", 10996, 48.7247, 4.5844),
    Commune("51535", "Sézanne", "51", 4576, 48.7211, 3.7236),
    Commune("52121", "Chaumont", "52", 20827, 48.1114, 5.1392),
    Commune("52448", "Saint-Dizier", "52", 22858, 48.6383, 4.9497),
    Commune("52269", "Langres", "52", 7421, 47.8625, 5.3331),
    Commune("52060", "Bourbonne-les-Bains", "52", 1958, 47.9544, 5.7481),
    Commune("52250", "Joinville", "52", 2915, 48.4436, 5.1408),
    Commune("54395", "Nancy", "54", 103671, 48.6921, 6.1844),
    Commune("54329", "Lunéville", "54", 18262, 48.5894, 6.4964),
    Commune("54528", "Toul", "54", 15768, 48.6753, 5.8917),
    Commune("54323", "Longwy", "54", 15679, 49.5197, 5.7667),
    Commune("54547", "Vandœuvre-lès-Nancy", "54", 29942, 48.6567, 6.1683),
    Commune("55029", "Bar-le-Duc", "55", 14607, 48.7728, 5.1600),
    Commune("55545", "Verdun", "55", 16890, 49.1598, 5.3844),
    Commune("55122", "Commercy", "55", 5350, 48.7631, 5.5917),
    Commune("55463", "Saint-Mihiel", "55", 3772, 48.8878, 5.5428),
    Commune("55502", "Stenay", "55", 2403, 49.4917, 5.1867),
    Commune("57463", "Metz", "57", 122572, 49.1193, 6.1757),
    Commune("57672", "Thionville", "57", 42658, 49.3579, 6.1683),
    Commune("57227", "Forbach", "57", 20493, 49.1883, 6.8964),
    Commune("57631", "Sarreguemines", "57", 20143, 49.1100, 7.0686),
    Commune("57630", "Sarrebourg", "57", 12170, 48.7353, 7.0536),
    Commune("57606", "Saint-Avold", "57", 14755, 49.1042, 6.7072),
    Commune("67482", "Strasbourg", "67", 293771, 48.5734, 7.7521),
    Commune("67180", "Haguenau", "67", 36391, 48.8156, 7.7906),
    Commune("67462", "Sélestat", "67", 19589, 48.2594, 7.4542),
    Commune("67437", "Saverne", "67", 11460, 48.7414, 7.3622),
    Commune("67300", "Molsheim", "67", 9318, 48.5422, 7.4922),
    Commune("67544", "Wissembourg", "67", 7566, 49.0378, 7.9447),
    Commune("68224", "Mulhouse", "68", 104978, 47.7508, 7.3359),
    Commune("68066", "Colmar", "68", 66970, 48.0794, 7.3585),
    Commune("68297", "Saint-Louis", "68", 22805, 47.5900, 7.5600),
    Commune("68112", "Guebwiller", "68", 11243, 47.9086, 7.2103),
    Commune("68334", "Thann", "68", 7762, 47.8072, 7.1033),
    Commune("68004", "Altkirch", "68", 5687, 47.6239, 7.2394),
    Commune("88160", "Épinal", "88", 32251, 48.1724, 6.4496),
    Commune("88413", "Saint-Dié-des-Vosges", "88", 19251, 48.2847, 6.9492),
    Commune("88383", "Remiremont", "88", 7388, 48.0172, 6.5908),
    Commune("88321", "Neufchâteau", "88", 6732, 48.3556, 5.6961),
    Commune("88196", "Gérardmer", "88", 7581, 48.0733, 6.8775),
    Commune("88516", "Vittel", "88", 4780, 48.2019, 5.9467),
)

DEPARTEMENTS: tuple[str, ...] = tuple(SITES_PER_DEPARTEMENT)


def communes_of(departement: str) -> tuple[Commune, ...]:
    return tuple(c for c in COMMUNES if c.departement == departement)
