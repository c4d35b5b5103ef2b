"""Swedish words for the codes and English reasons the sync stores, for the human report views.

One table for every report: statuses, kinds and reasons are stored as stable English codes
(the state store, `status`, the spec's CSV values) and turned into Swedish only where a unit
manager reads them (HTML, XLSX). A reason keeps its rule id (`R18: …`) so a reader can look the
rule up. A reason no pattern here knows is shown as stored: it is still free of patient data,
and an untranslated line is better than a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import polars as pl

# Outbox entry statuses (mvg_sync/store/types.py: OutboxStatus).
OUTBOX_STATUS = {
    "pending": "Väntar",
    "done": "Klar",
    "held": "Spärrad",
    "superseded": "Ersatt",
    "dead": "Misslyckad",
}
# Drop outcomes (drops.outcome).
DROP_OUTCOME = {
    "accepted": "Godkänd",
    "rejected": "Avvisad",
    "duplicate": "Dubblett",
    "stale": "Inaktuell",
}
RESOURCE_TYPE = {"Appointment": "Bokning", "ServiceRequest": "Bokningsbiljett"}
CHANGE_KIND = {
    "create": "Skapa",
    "rebook": "Omboka",
    "update": "Uppdatera",
    "cancel": "Avboka",
    "issue": "Utfärda",
    "revoke": "Återkalla",
    "complete": "Förbruka",
}
# tickets.csv `status` (operations.md) in the order the report shows them.
TICKET_STATUS = {
    "pending": "Väntande",
    "issued": "Utfärdad",
    "used": "Använd",
    "revoked": "Återkallad",
    "rejected": "Avvisad",
}
EVENT_TYPE = {"cancel": "Avbokad", "rebook": "Ombokad"}
# R24–R27 breaches of an e-service event, as eservice.csv `breaches` lists them.
BREACH = {
    "R24": "R24 ändrad mindre än 24 h före besöket",
    "R25": "R25 ombokad utanför -7/+14 dagar",
    "R26": "R26 vårdtjänsten får inte av-/ombokas av patienten",
    "R27": "R27 underlaget lades inte åter på väntelistan",
}
# Quarantine `rule` values that are not rule ids.
QUARANTINE_RULE = {
    "contract": "kontrakt",
    "manifest": "manifest",
    "quality": "datakvalitet",
    "internal": "internt fel",
}
QUALITY_WORDS = {"accepted": "godkänd", "rejected": "avvisad"}

# Reason codes of holds and out-of-scope bookings (rules/booking_scope.py, booking_plan.py),
# each with the rule that set it.
REASON_CODE = {
    "needs-primary-guardian": "R12: behöver primär vårdnadshavare",
    "missing-role": "R05: vårdtjänsten saknar roll i Clinic24",
    "unit-not-in-clinic24": "R01: enheten finns inte i Clinic24",
    "unit-left-clinic24": "R09: enheten har lämnat Clinic24",
    "hidden-contact": "R03: dold kontakt",
    "care-service-not-in-catalogue": "R02: vårdtjänsten saknas i katalogen",
    "not-web-bookable": "R02: vårdtjänsten är inte webbokningsbar",
    "not-yet-booked": "R06: ännu inte bokad",
    "visit-under-way": "R06: besöket pågår eller är utfört",
    "unknown-status": "R06: okänd bokningsstatus",
}
# Whole English phrases, without their rule id (a leading `Rnn: ` or `Rnn ` is kept apart).
PHRASE = {
    "needs-primary-guardian": "behöver primär vårdnadshavare",
    "care service quarantined in the catalogue": "vårdtjänstens katalograd ligger i karantän",
    "care service has no Clinic24 role": "vårdtjänsten saknar roll i Clinic24",
    "monitoring date has passed": "bevakningsdatum har passerat",
    "specialist-care unit without referral": "specialistvårdsenhet utan remiss",
    "unit missing from unit extract (care level unknown) and no referral":
        "enheten saknas i enhetsuttaget (vårdnivå okänd) och remiss saknas",
    "booking not in this run, outcome deferred": "bokningen saknas i denna körning, utfallet avvaktas",
    "required value missing": "obligatoriskt värde saknas",
    "required unless Status is Planerad": "obligatoriskt utom när Status är Planerad",
    "empty": "tomt värde",
    "bad format": "felaktigt format",
    "invalid date": "ogiltigt datum",
    "future birth date": "födelsedatum i framtiden",
    "bad check digit": "fel kontrollsiffra",
    "bad HSA-id": "felaktigt HSA-id",
    "bad date-time": "felaktig tidpunkt",
    "bad date": "felaktigt datum",
    "nonexistent local time (DST gap)": "lokal tid som inte finns (sommartidsbyte)",
    "ambiguous local time (DST overlap)": "tvetydig lokal tid (vintertidsbyte)",
    "redriven": "skickas om (redrive)",
    "(diagnostics withheld)": "(detaljer undanhållna)",
    "header row missing or not terminated": "rubrikraden saknas eller är oavslutad",
    "header row has an empty or quoted column name": "rubrikraden har ett tomt eller citerat kolumnnamn",
    "header row names a column twice": "rubrikraden nämner en kolumn två gånger",
    "empty file (no header row)": "tom fil (ingen rubrikrad)",
    "breaks the raw-file contract (columns or types)": "bryter mot filkontraktet (kolumner eller typer)",
    "listed in the manifest but missing": "finns i manifestet men saknas",
    "declared windows-1252 but starts with a UTF-8 BOM": "angiven som windows-1252 men börjar med UTF-8-BOM",
}
_DIGITAL = {"digital": "digital", "physical": "fysisk"}

_RULE_PREFIX = re.compile(r"^(R\d\d)(?::\s*|\s+)(.*)$", re.S)
# (pattern, Swedish template): groups are file names, headers, counts and codes, never patient data.
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^contact type '(.*)' contradicts (digital|physical) care service \(expected '(.*)'\)$"),
     lambda m: f"kontakttyp '{m[1]}' motsäger {_DIGITAL[m[2]]} vårdtjänst (väntat '{m[3]}')"),
    (re.compile(r"^visit type '(.*)' is not Nybesök or Återbesök$"),
     lambda m: f"besökstyp '{m[1]}' är varken Nybesök eller Återbesök"),
    (re.compile(r"^invalid (personnummer|HSA-id|date-time|date): (.*)$"), lambda m: _invalid(m)),
    (re.compile(r"^not one of the values allowed in (.+)$"),
     lambda m: f"inte ett av de tillåtna värdena i {m[1]}"),
    (re.compile(r"^end is not after (.+)$"), lambda m: f"slutet ligger inte efter {m[1]}"),
    (re.compile(r"^stale: Clinic24 holds a newer source-sequence \(409\)$"),
     lambda m: "inaktuell: Clinic24 har redan en nyare ändring (409)"),
    (re.compile(r"^superseded by plan (\S+)$"), lambda m: f"ersatt av plan {m[1]}"),
    (re.compile(r"^transient: (.+)$"),
     lambda m: "tillfälligt fel: " + ("inget svar" if m[1] == "no answer" else f"HTTP {m[1]}")),
    (re.compile(r"^(\d{3})(?: ([\w-]+))?(?:: (.*))?$"),
     lambda m: f"avvisad av Clinic24 (HTTP {m[1]}{', ' + m[2] if m[2] else ''})"
               + (f": {translate_reason(m[3])}" if m[3] else "")),
    (re.compile(r"^held: (\d+) cancellations exceed ([\d.]+)% of (\d+) live synced bookings "
                r"\(([\d.]+)\) and the floor of (\d+)$"),
     lambda m: f"spärrad: {m[1]} avbokningar överstiger {_pct(m[2])} av {m[3]} synkade bokningar "
               f"({_num(m[4])}) och golvet {m[5]}"),
    (re.compile(r"^passed: (\d+) cancellations, limit ([\d.]+)% of (\d+) live synced bookings "
                r"\(([\d.]+)\), floor (\d+)$"),
     lambda m: f"godkänd: {m[1]} avbokningar, gräns {_pct(m[2])} av {m[3]} synkade bokningar "
               f"({_num(m[4])}), golv {m[5]}"),
    (re.compile(r"^([\w.-]+\.(?:csv|json)): (.+)$"), lambda m: f"{m[1]}: {_file_reason(m[2])}"),
    (re.compile(r"^quality: (.+)$"), lambda m: f"datakvalitet: {m[1]}"),
    (re.compile(r"^internal error: (\w+)$"), lambda m: f"internt fel: {m[1]}"),
    (re.compile(r"^(.+) for over (\d+) minutes$"),
     lambda m: f"{translate_reason(m[1])} i mer än {m[2]} minuter"),
]
_INVALID = {"personnummer": "ogiltigt personnummer", "HSA-id": "ogiltigt HSA-id",
            "date-time": "ogiltig tidpunkt", "date": "ogiltigt datum"}
_FILE_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^sha256 differs from the manifest(.*)$"),
     lambda m: "sha256 stämmer inte med manifestet" + (f" ({m[1].strip(' ()')})" if m[1] else "")),
    (re.compile(r"^(\d+) data rows but the manifest says (\d+)$"),
     lambda m: f"{m[1]} datarader men manifestet anger {m[2]}"),
    (re.compile(r"^empty \(0 data rows\); it would cancel every booking$"),
     lambda m: "tom (0 datarader); den skulle avboka varje bokning"),
    (re.compile(r"^missing required column (.+)$"), lambda m: f"obligatorisk kolumn saknas: {m[1]}"),
    (re.compile(r"^unknown column (.+) ignored$"), lambda m: f"okänd kolumn {m[1]} ignorerad"),
    (re.compile(r"^lists no (.+)$"), lambda m: f"tar inte upp {m[1]}"),
]


def _invalid(m: re.Match[str]) -> str:
    # `invalid personnummer: R13: bad check digit` -> `R13: ogiltigt personnummer: fel kontrollsiffra`
    detail = translate_reason(m[2]) or ""
    ruled = re.match(r"^(R\d\d): (.*)$", detail, re.S)
    what = _INVALID[m[1]]
    return f"{ruled[1]}: {what}: {ruled[2]}" if ruled else f"{what}: {detail}"


def _num(text: str) -> str:
    return text.replace(".", ",")


def _pct(text: str) -> str:
    return f"{_num(text)}\u00a0%"


def _file_reason(text: str) -> str:
    for pattern, render in _FILE_PATTERNS:
        match = pattern.match(text)
        if match:
            return render(match)
    return PHRASE.get(text, text)


def translate_reason(text: str | None) -> str | None:
    """A stored reason in Swedish, its rule id first (`R18: kontakttyp …`); several `; `-joined
    reasons are translated one by one. Unknown text is returned as it is."""
    if text is None or text == "":
        return text
    if "; " in text and not text.startswith("quality: "):
        return "; ".join(translate_reason(part) or "" for part in text.split("; "))
    if text in REASON_CODE:
        return REASON_CODE[text]
    ruled = _RULE_PREFIX.match(text)
    if ruled:
        inner = translate_reason(ruled[2]) or ""
        return inner if inner.startswith(f"{ruled[1]}: ") else f"{ruled[1]}: {inner}"
    if text in PHRASE:
        return PHRASE[text]
    for pattern, render in _PATTERNS:
        match = pattern.match(text)
        if match:
            return render(match)
    return text


def translated(column: str, mapping: Mapping[str, str], alias: str | None = None) -> pl.Expr:
    """`column` through a code table as an expression; a code the table lacks is kept."""
    col = pl.col(column).cast(pl.String)
    return col.replace_strict(dict(mapping), default=col, return_dtype=pl.String).alias(alias or column)


Translation = Mapping[str, str] | Callable[[str | None], str | None]


def translate_frame(frame: pl.DataFrame, columns: Mapping[str, Translation]) -> pl.DataFrame:
    """`frame` with each named column through a code table or a reason translator.

    A translator runs once per distinct value (reasons repeat), never per row.
    """
    exprs = []
    for name, mapping in columns.items():
        if callable(mapping):
            values = frame.get_column(name).cast(pl.String).unique().to_list()
            mapping = {v: mapping(v) or "" for v in values if v is not None}
        exprs.append(translated(name, mapping))
    return frame.with_columns(exprs)
