"""Crafted booking bases for the ticket end-to-end tests (R14-R19), on top of a generated region.

A test names each basis it cares about (`Basis`), and the drop's bokningsunderlag.csv holds
exactly those rows, so every ticket the sandbox ends up with has one expected fate. Bookings
stay the generated ones; a basis is "booked" by linking it to one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import polars as pl

from mvg_sync.generator import Region, next_region

BASIS_ID_BASE = 29_000_000
PRIMARY_UNIT = "SE2321000198-E1001"  # Storvik Din hälsocentral, Primärvård, in Clinic24
SPECIALIST_UNIT = "SE2321000198-E1023"  # Hjärtmottagning Gävle, Specialistvård, in Clinic24
PRIMARY_SERVICE = "Primärvård|mottagning|läkare"
SPECIALIST_SERVICE = "Hjärtmottagning|mottagning|läkare"
PHYSICAL = "Mottagningsbesök"
DIGITAL = "Distansbesök - video"
WEB_MARKER = "Bokning via webbtidbok"


@dataclass(frozen=True)
class Basis:
    """One row of bokningsunderlag.csv in the test's own terms (Cosmic's Swedish statuses)."""

    basis_id: int
    monitoring_date: date
    status: str = "Planerad"
    unit: str = PRIMARY_UNIT
    care_service: str = PRIMARY_SERVICE
    contact_type: str = PHYSICAL
    visit_type: str = "Nybesök"
    referral: str | None = None
    booking_id: int | None = None
    booked_at: datetime | None = None  # naive Stockholm wall time, as Cosmic writes it
    patient: int = 0  # index into the region's adult patients

    @property
    def key(self) -> str:
        return str(self.basis_id)


def basis_id(n: int) -> int:
    return BASIS_ID_BASE + n


def local_day(region: Region, days: int) -> date:
    """The Stockholm date `days` after the region's extraction day."""
    return region.as_of.date() + timedelta(days=days)


def bases_frame(region: Region, bases: list[Basis]) -> pl.DataFrame:
    """bokningsunderlag.csv rows for `bases`, typed exactly like the generator's frame."""
    adults = region.patients.filter(~pl.col("is_child"))
    changed = region.as_of.replace(tzinfo=None) - timedelta(hours=1)
    rows = [
        {
            "UnderlagsID": b.basis_id,
            "Personnummer": adults["Personnummer"][b.patient],
            "Namn": adults["Namn"][b.patient],
            "Vårdtjänst": b.care_service,
            "Kontakttyp": b.contact_type,
            "Besökstyp": b.visit_type,
            "EnhetHSAID": b.unit,
            "Enhet": region.units.filter(pl.col("EnhetHSAID") == b.unit)["Enhet"][0],
            "Bevakningsdatum": b.monitoring_date,
            "Status": b.status,
            "BokningsID": b.booking_id,
            "BokadTid": b.booked_at,
            "Remiss": b.referral,
            "Akut": "Nej",
            "Registreringsdatum": changed - timedelta(days=20),
            "Ändrad": changed,
        }
        for b in bases
    ]
    return pl.DataFrame(rows, schema=region.booking_bases.schema)


def with_bases(region: Region, bases: list[Basis]) -> Region:
    """The region whose booking-basis file holds exactly `bases`."""
    return replace(region, booking_bases=bases_frame(region, bases))


def future_bookings(region: Region, *, via_web: bool) -> pl.DataFrame:
    """Generated Bokad bookings ahead of the extraction, not linked to a basis, by booking info."""
    info = pl.col("Bokningsinformation").fill_null("").str.contains(WEB_MARKER, literal=True)
    return region.bookings.filter(
        (pl.col("Status") == "Bokad")
        & (pl.col("BokadTid") > region.as_of.replace(tzinfo=None))
        & pl.col("UnderlagsID").is_null()
        & (info if via_web else ~info)
    ).sort("BokningsID")


def book(region: Region, basis: Basis, booking: dict) -> tuple[Region, Basis]:
    """Cosmic books `basis` with `booking` (a row of `future_bookings`): both sides linked."""
    bookings = region.bookings.with_columns(
        pl.when(pl.col("BokningsID") == booking["BokningsID"])
        .then(pl.lit(basis.basis_id, dtype=pl.Int64))
        .otherwise(pl.col("UnderlagsID"))
        .alias("UnderlagsID")
    )
    booked = replace(
        basis, status="Bokad", booking_id=booking["BokningsID"], booked_at=booking["BokadTid"]
    )
    return replace(region, bookings=bookings), booked


DIGITAL_SERVICE = "Primärvård|distans video|läkare"
BULK_BASE = 1_000


@dataclass(frozen=True)
class Lifecycle:
    """Two drops whose bases walk every ticket path of R14-R19, with the expected outcome.

    `after_first` / `after_second`: Clinic24's ticket status per basis after each drop's run;
    `never`: bases that must never reach Clinic24; `held`: basis -> rule held in `holds`.
    """

    first: Region
    second: Region
    after_first: dict[str, str]
    after_second: dict[str, str]
    never: frozenset[str]
    held: dict[str, str]


def lifecycle(region: Region, *, later: datetime, seed: int = 5, bulk: int = 0) -> Lifecycle:
    """Drop 1 at `region.as_of`, drop 2 at `later` (same day), over the named bases below.

    `bulk` adds that many plain due bases (issued in drop 1); in drop 2 two in three of them
    are closed or removed, so a crash test has more than one batch of ticket changes.
    """
    due = local_day(region, 10)
    web = future_bookings(region, via_web=True).row(0, named=True)
    staff = future_bookings(region, via_web=False).row(0, named=True)
    names = {
        "web_booked": Basis(basis_id(1), due),
        "staff_booked": Basis(basis_id(2), due, patient=1),
        "closed": Basis(basis_id(3), due, patient=2),
        "removed": Basis(basis_id(4), due, patient=3, visit_type="Återbesök"),
        "vanished": Basis(basis_id(5), due, patient=4),
        "closed_before_due": Basis(basis_id(6), local_day(region, 60), patient=5),
        "stays": Basis(basis_id(7), due, patient=6, care_service=DIGITAL_SERVICE, contact_type=DIGITAL),
        "r17": Basis(basis_id(8), due, patient=7, unit=SPECIALIST_UNIT, care_service=SPECIALIST_SERVICE),
        "r18": Basis(basis_id(9), due, patient=8, contact_type=DIGITAL),
        "specialist": Basis(
            basis_id(10), due, patient=9, unit=SPECIALIST_UNIT, care_service=SPECIALIST_SERVICE,
            referral="RID12345678",
        ),
        "removed_unticketed": Basis(basis_id(11), due, patient=10, status="Makulerad"),
        "r17_r18": Basis(
            basis_id(12), due, patient=11, unit=SPECIALIST_UNIT, care_service=SPECIALIST_SERVICE,
            contact_type=DIGITAL,
        ),
    }
    arriving = Basis(basis_id(13), local_day(region, 20), patient=12)
    n_adults = region.patients.filter(~pl.col("is_child")).height
    extra = [Basis(basis_id(BULK_BASE + i), due, patient=i % n_adults) for i in range(bulk)]
    first = with_bases(region, [*names.values(), *extra])

    second = next_region(first, seed=seed, as_of=later)[0]
    second, web_booked = book(second, names["web_booked"], web)
    second, staff_booked = book(second, names["staff_booked"], staff)
    ended_extra = [
        replace(b, status=("Avslutad" if i % 3 == 1 else "Makulerad")) if i % 3 else b
        for i, b in enumerate(extra)
    ]
    later_bases = {
        **names,
        "web_booked": web_booked,
        "staff_booked": staff_booked,
        "closed": replace(names["closed"], status="Avslutad"),
        "removed": replace(names["removed"], status="Makulerad"),
        "closed_before_due": replace(names["closed_before_due"], status="Avslutad"),
    }
    del later_bases["vanished"]
    second = with_bases(second, [*later_bases.values(), arriving, *ended_extra])

    issued = ["web_booked", "staff_booked", "closed", "removed", "vanished", "stays", "specialist"]
    after_first = {names[n].key: "active" for n in issued} | {b.key: "active" for b in extra}
    after_second = {
        **after_first,
        names["web_booked"].key: "completed",
        names["staff_booked"].key: "revoked",
        names["closed"].key: "revoked",
        names["removed"].key: "revoked",
        names["vanished"].key: "revoked",
        arriving.key: "active",
    } | {b.key: "revoked" for b in ended_extra if b.status != "Planerad"}
    never = frozenset(
        names[n].key for n in ("closed_before_due", "r17", "r18", "removed_unticketed", "r17_r18")
    )
    held = {names["r17"].key: "R17", names["r18"].key: "R18", names["r17_r18"].key: "R17"}
    return Lifecycle(first, second, after_first, after_second, never, held)
