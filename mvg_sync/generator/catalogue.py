"""Static vocabulary of the sample region: units, care services, names, reasons, free texts."""

from __future__ import annotations

from dataclasses import dataclass

HSA_PREFIX = "SE2321000198-"

PROFESSIONS = ("Läkare", "Sjuksköterska", "Fysioterapeut", "Psykolog", "Kurator")
# the profession as it is written inside a care-service name
PROFESSION_IN_SERVICE = {
    "läkare": "Läkare",
    "sjuksköterska": "Sjuksköterska",
    "fysioterapeut": "Fysioterapeut",
    "psykolog": "Psykolog",
    "kurator": "Kurator",
}

DIGITAL = "digital"
PHYSICAL = "physical"
PHONE = "phone"
ADMIN = "admin"
HIDDEN = "hidden"

PV = "Primärvård"
SV = "Specialistvård"
RT = "Strålbehandling"  # radiotherapy: a specialist unit whose services are locked (R26)
ANY = "any"


@dataclass(frozen=True)
class CareService:
    """One row of vardtjanster.csv plus what the generator needs to use it."""

    name: str
    profession: str  # Yrkesroll of the staff who give it
    kind: str  # DIGITAL / PHYSICAL / PHONE / ADMIN / HIDDEN
    level: str  # PV / SV / RT / ANY: which units offer it
    web: bool
    role: str | None
    may_rebook: bool = True
    may_cancel: bool = True
    weight: float = 1.0

    @property
    def in_scope(self) -> bool:
        """Web-bookable, not hidden, with a role: what the sync pushes (R02, R03, R05)."""
        return self.web and self.kind != HIDDEN and self.role is not None


def _svc(name: str, kind: str, level: str, role: str | None, weight: float = 1.0) -> CareService:
    profession = PROFESSION_IN_SERVICE[name.split("|")[2]]
    return CareService(name, profession, kind, level, True, role, weight=weight)


# R05: the one web-bookable service that nobody gave a Clinic24 role; used rarely.
MISCONFIGURED_SERVICE = "Primärvård|distans video|sjuksköterska|inkontinens"
HIDDEN_SERVICE = "Dold kontakt"

CARE_SERVICES: tuple[CareService, ...] = (
    # primary care nurse, digital (the seed's list for one MVG schedule marker)
    _svc("Andningssystem|distans video|sjuksköterska|spirometri", DIGITAL, PV, "sjukskoterska-spirometri"),
    _svc("Levnadsvanor|distans video|sjuksköterska|hälsosamtal", DIGITAL, PV, "sjukskoterska-halsosamtal"),
    _svc("Levnadsvanor|distans video|sjuksköterska|tobaksavänjare", DIGITAL, PV, "sjukskoterska-tobak"),
    _svc("Omläggning|distans video|sjuksköterska", DIGITAL, PV, "sjukskoterska-omlaggning"),
    _svc("Primärvård|distans video|sjuksköterska", DIGITAL, PV, "sjukskoterska-allman", 4.0),
    _svc("Primärvård|distans video|sjuksköterska|astma/KOL", DIGITAL, PV, "sjukskoterska-astma-kol"),
    _svc("Primärvård|distans video|sjuksköterska|bvc", DIGITAL, PV, "sjukskoterska-bvc"),
    _svc("Primärvård|distans video|sjuksköterska|diabetes", DIGITAL, PV, "sjukskoterska-diabetes", 2.0),
    _svc("Primärvård|distans video|sjuksköterska|distrikt", DIGITAL, PV, "sjukskoterska-distrikt"),
    _svc("Primärvård|distans video|sjuksköterska|hjärtsvikt", DIGITAL, PV, "sjukskoterska-hjartsvikt"),
    _svc("Primärvård|distans video|sjuksköterska|hypertoni", DIGITAL, PV, "sjukskoterska-hypertoni"),
    _svc(MISCONFIGURED_SERVICE, DIGITAL, PV, None, 0.1),
    _svc("Primärvård|distans video|sjuksköterska|osteoporos", DIGITAL, PV, "sjukskoterska-osteoporos"),
    _svc("Psykisk hälsa|distans video|sjuksköterska|pst", DIGITAL, PV, "sjukskoterska-pst"),
    # primary care, other professions
    _svc("Primärvård|distans video|läkare", DIGITAL, PV, "lakare-allman", 4.0),
    _svc("Primärvård|mottagning|läkare", PHYSICAL, PV, "lakare-allman-fysiskt", 5.0),
    _svc("Diabetes|uppföljning|läkare", PHYSICAL, PV, "lakare-diabetes"),
    _svc("Psykisk hälsa|utredning|läkare", PHYSICAL, PV, "lakare-psykisk-halsa"),
    _svc("Primärvård|mottagning|sjuksköterska", PHYSICAL, PV, "sjukskoterska-allman-fysiskt", 4.0),
    _svc("Primärvård|distans video|fysioterapeut", DIGITAL, PV, "fysioterapeut-allman", 2.0),
    _svc("Primärvård|mottagning|fysioterapeut", PHYSICAL, PV, "fysioterapeut-allman-fysiskt", 3.0),
    _svc("Psykisk hälsa|distans video|psykolog", DIGITAL, PV, "psykolog-psykisk-halsa", 1.5),
    _svc("Psykisk hälsa|samtal|psykolog", PHYSICAL, PV, "psykolog-samtal", 1.5),
    _svc("Psykisk hälsa|distans video|kurator", DIGITAL, PV, "kurator-psykisk-halsa", 1.5),
    _svc("Psykisk hälsa|samtal|kurator", PHYSICAL, PV, "kurator-samtal", 1.5),
    # specialist outpatient care
    _svc("Hjärtmottagning|mottagning|läkare", PHYSICAL, SV, "lakare-kardiologi", 3.0),
    _svc("Hjärtmottagning|distans video|läkare|uppföljning", DIGITAL, SV, "lakare-kardiologi-uppfoljning", 2.0),
    _svc("Hjärtmottagning|mottagning|sjuksköterska", PHYSICAL, SV, "sjukskoterska-kardiologi", 2.0),
    _svc("Hjärtmottagning|distans video|sjuksköterska|hjärtsvikt", DIGITAL, SV, "sjukskoterska-hjartsvikt-sv", 2.0),
    _svc("Ortopedi|mottagning|läkare", PHYSICAL, SV, "lakare-ortopedi", 2.0),
    _svc("Ortopedi|distans video|läkare|uppföljning", DIGITAL, SV, "lakare-ortopedi-uppfoljning"),
    _svc("Ortopedi|mottagning|fysioterapeut", PHYSICAL, SV, "fysioterapeut-ortopedi", 2.0),
    # radiotherapy at Strålbehandlingsmottagning Gävle: web-bookable, but locked for patients (R26)
    CareService("Strålbehandling|behandling|sjuksköterska", "Sjuksköterska", PHYSICAL, RT, True,
                "sjukskoterska-stralbehandling", False, False, 3.0),
    CareService("Strålbehandling|distans video|läkare|uppföljning", "Läkare", DIGITAL, RT, True,
                "lakare-stralbehandling", False, False, 1.0),
    # never synced: hidden contact (R03), phone and administration (not web-bookable, R02)
    CareService(HIDDEN_SERVICE, "Sjuksköterska", HIDDEN, ANY, True, "sjukskoterska-allman", weight=0.04),
    CareService("Telefon|telefon|sjuksköterska", "Sjuksköterska", PHONE, ANY, False, None, weight=0.05),
    CareService("Administration|administration|läkare", "Läkare", ADMIN, ANY, False, None, weight=0.02),
    CareService("Gruppbokning|mottagning|fysioterapeut", "Fysioterapeut", PHYSICAL, PV, False, None,
                weight=0.01),
)
# Shares above for HIDDEN/PHONE/ADMIN are fractions of a unit's total weight, not relative
# weights: they are applied as such in region.py so the mix stays stable across unit types.

CONTACT_TYPE = {
    DIGITAL: "Distansbesök - video",
    PHYSICAL: "Mottagningsbesök",
    PHONE: "Telefonkontakt",
    ADMIN: "Administrativ kontakt",
}
CONTACT_TYPES = ("Distansbesök - video", "Mottagningsbesök", "Telefonkontakt", "Administrativ kontakt",
                 "Hembesök")
VISIT_TYPES = ("Nybesök", "Återbesök")
BOOKING_STATUSES = ("Planerad", "Preliminärbokad", "Bokad", "Anländ", "Pågående", "Utförd", "Avbokad")
BASIS_STATUSES = ("Planerad", "Bokad", "Avslutad", "Makulerad")

UNIT_TYPES = ("Hälsocentral", "Specialistmottagning", "Strålbehandlingsmottagning")
# (name, type, care level, public); the order fixes HSA-ids, so only append.
UNITS: tuple[tuple[str, str, str, bool], ...] = (
    ("Storvik Din hälsocentral", "Hälsocentral", PV, True),
    ("Sandviken Hälsocentral Västra", "Hälsocentral", PV, True),
    ("Gävle Hälsocentral Brynäs", "Hälsocentral", PV, True),
    ("Gävle Hälsocentral Sätra", "Hälsocentral", PV, True),
    ("Gävle Hälsocentral Andersberg", "Hälsocentral", PV, True),
    ("Valbo Hälsocentral", "Hälsocentral", PV, True),
    ("Hille Hälsocentral", "Hälsocentral", PV, True),
    ("Skutskär Hälsocentral", "Hälsocentral", PV, True),
    ("Hofors Hälsocentral", "Hälsocentral", PV, True),
    ("Ockelbo Hälsocentral", "Hälsocentral", PV, True),
    ("Bollnäs Hälsocentral Söder", "Hälsocentral", PV, True),
    ("Arbrå Hälsocentral", "Hälsocentral", PV, True),
    ("Edsbyn Hälsocentral", "Hälsocentral", PV, True),
    ("Alfta Hälsocentral", "Hälsocentral", PV, True),
    ("Söderhamn Hälsocentral Norr", "Hälsocentral", PV, True),
    ("Ljusdal Hälsocentral", "Hälsocentral", PV, True),
    ("Färila Hälsocentral", "Hälsocentral", PV, True),
    ("Hudiksvall Hälsocentral Håsta", "Hälsocentral", PV, True),
    ("Delsbo Hälsocentral", "Hälsocentral", PV, True),
    ("Bergsjö Hälsocentral", "Hälsocentral", PV, True),
    ("Gävle Läkarhuset Älvgården", "Hälsocentral", PV, False),
    ("Sandviken Vårdcentral Björksätra", "Hälsocentral", PV, False),
    ("Hjärtmottagning Gävle", "Specialistmottagning", SV, True),
    ("Hjärtmottagning Hudiksvall", "Specialistmottagning", SV, True),
    ("Ortopedmottagning Gävle", "Specialistmottagning", SV, True),
    ("Ortopedmottagning Bollnäs", "Specialistmottagning", SV, True),
    ("Medicinmottagning Söderhamn", "Specialistmottagning", SV, True),
    ("Medicinmottagning Ljusdal", "Specialistmottagning", SV, True),
    ("Rehabmottagning Sandviken", "Specialistmottagning", SV, True),
    ("Strålbehandlingsmottagning Gävle", "Strålbehandlingsmottagning", SV, True),
)
RADIOTHERAPY_UNIT = "Strålbehandlingsmottagning Gävle"
# units Cosmic knows and Clinic24 does not (R01); public health centres so that they matter
UNITS_OUTSIDE_CLINIC24 = ("Hofors Hälsocentral", "Färila Hälsocentral")
# R22: this unit publishes no doctor time on one weekday
R22_GAP_UNIT = "Ockelbo Hälsocentral"
R22_GAP_PROFESSION = "Läkare"
# R23: this unit's nurse marker also carries a doctor's care service
R23_MIXED_UNIT = "Valbo Hälsocentral"
R23_MIXED_SERVICE = "Primärvård|distans video|läkare"

UNIT_PROFESSIONS = {
    PV: ("Läkare", "Sjuksköterska", "Fysioterapeut", "Psykolog", "Kurator"),
    SV: ("Läkare", "Sjuksköterska", "Fysioterapeut"),
    RT: ("Läkare", "Sjuksköterska"),
}

FIRST_NAMES = (
    "Åsa", "Örjan", "Märta", "Björn", "Jenny", "Molly", "Viljami", "Hedvig", "Marie", "Gerhard",
    "Albin", "Ängla", "Östen", "Göran", "Sören", "Håkan", "Maja", "Elsa", "Åke", "Lars",
    "Karin", "Ingrid", "Linnéa", "Agnes", "Ebba", "Oskar", "Nils", "Per", "Annika", "Signe",
    "Alice", "Olle", "Wilma", "Hugo", "Selma", "Tove", "Jöns", "Mårten", "Leila", "Ahmed",
)
LAST_NAMES = (
    "Häggsgård", "Öberg", "Åström", "Bäckström", "Sjögren", "Lindqvist", "Holmgren", "Bergqvist",
    "Fields Aarnio", "Andersson", "Eichmann", "Barton", "Jönsson", "Löfgren", "Ågren", "Strömbäck",
    "Nordström", "Hägglund", "Forsberg", "Ödman", "Persson", "Mäkelä", "Granström", "Sandén",
    "Wikström", "Hedlöf", "Ekdahl", "Åkerlund", "Björklund", "Nyström",
)
SECRETARIES = (
    "Albin Eichmann, Medicinsk sekreterare",
    "Karin Löfgren, Medicinsk sekreterare",
    "Östen Ågren, Undersköterska",
    "Märta Nyström, Sjuksköterska",
    "Göran Hedlöf, Läkare",
)
E_SERVICE_USER = "Mtwweb ServiceUser"

E_CANCEL = "Patienten avbokar via e-tjänst"
E_REBOOK = "Patienten ombokar via e-tjänst"
# (reason, relative weight); the e-service reason first
CANCEL_REASONS = ((E_CANCEL, 4.0), ("Patienten avbokar", 3.0), ("Felaktig registrering", 1.5),
                  ("Vårdgivaren avbokar", 1.0))
REBOOK_REASONS = ((E_REBOOK, 5.5), ("Patienten ombokar", 3.0), ("Vårdgivaren ombokar", 1.5))

# Free texts that need CSV quoting (; " and line breaks) and survive windows-1252.
FREE_TEXTS = (
    "Tolk: arabiska; boka dubbel tid",
    'Patienten önskar "morgontid"',
    "Ring före besöket\nnytt nummer i journalen",
    "Kallelse skickad; påminnelse via SMS",
    "Åsa Öberg följer med (dotter)",
    "Hörselnedsättning, tala tydligt",
    'Svårt med trappor; hiss "B"\r\nanvänds',
)
COMMENTS = ("Sjuk", "Krockar med arbete; ny tid önskas", 'Skrev "fel dag" i appen', "Ringde\nväxeln")
OTHER_MARKERS = ("Telefontid", "Reserverad tid")
MVG_MARKERS = ("MVG distans", "MVG distans + fysiskt", "MVG fysiskt")
