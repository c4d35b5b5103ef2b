"""Tests for the sample-drop generator: determinism, manifest, dialect, encodings, ids, sizes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from argparse import Namespace
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_series_equal

from mvg_sync.generator import (
    FILES,
    generate_region,
    write_drop,
    write_sandbox_seed,
)
from mvg_sync.generator import catalogue as cat
from mvg_sync.generator.cli import main as generate_main
from mvg_sync.timeutil import STOCKHOLM

AS_OF = datetime(2026, 11, 26, 8, 5, tzinfo=STOCKHOLM)


@pytest.fixture(scope="module")
def region():
    return generate_region(seed=11, n_bookings=5000, as_of=AS_OF)


@pytest.fixture(scope="module")
def drop(region, tmp_path_factory):
    return write_drop(region, tmp_path_factory.mktemp("landing"))


def luhn_ok(ten: str) -> bool:
    """Independent Luhn check of a 10-digit YYMMDDNNNC string."""
    total = 0
    for i, ch in enumerate(ten[:9]):
        p = int(ch) * (2 if i % 2 == 0 else 1)
        total += p // 10 + p % 10
    return (10 - total % 10) % 10 == int(ten[9])


def read_cp1252(path: Path) -> pl.DataFrame:
    return pl.read_csv(path.read_bytes().decode("cp1252").encode(), separator=";",
                       infer_schema=False)


def test_same_seed_gives_byte_identical_drops(tmp_path):
    a = write_drop(generate_region(seed=5, n_bookings=300, as_of=AS_OF), tmp_path / "a")
    b = write_drop(generate_region(seed=5, n_bookings=300, as_of=AS_OF), tmp_path / "b")
    c = write_drop(generate_region(seed=6, n_bookings=300, as_of=AS_OF), tmp_path / "c")
    for name in [*FILES, "manifest.json"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "bokningar.csv").read_bytes() != (c / "bokningar.csv").read_bytes()


def test_manifest_matches_files(drop, region):
    manifest = json.loads((drop / "manifest.json").read_text(encoding="utf-8"))
    assert drop.name == manifest["extract_id"]
    assert re.fullmatch(r"\d{8}T\d{6}-\d{6}", manifest["extract_id"])
    assert manifest["extract_id"] == "20261126T080500-000001"
    assert manifest["sequence"] == 1
    assert manifest["extracted_at"] == "2026-11-26T08:05:00+01:00"
    assert manifest["source"] == "COSMIC"
    assert manifest["window"] == {"from": "2026-11-19", "to": "2027-02-24"}
    assert manifest["encoding"] == "windows-1252"
    assert set(manifest["files"]) == set(FILES)
    for name, entry in manifest["files"].items():
        data = (drop / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["rows"] == read_cp1252(drop / name).height == region.frame(name).height
    assert not list(drop.glob(".*"))  # no temporary manifest left behind


def test_write_drop_refuses_to_overwrite_a_drop(region, drop):
    with pytest.raises(FileExistsError):
        write_drop(region, drop.parent)


def test_bookings_lie_inside_the_window(region):
    starts = region.bookings["BokadTid"].drop_nulls().dt.date()
    assert starts.min() >= region.window_from
    assert starts.max() <= region.window_to
    slot_days = region.slots["Start"].dt.date()
    assert slot_days.min() >= region.window_from and slot_days.max() <= region.window_to


@pytest.mark.parametrize("encoding", ["windows-1252", "utf-8", "utf-8-sig"])
def test_encodings_round_trip_swedish_letters(tmp_path, encoding):
    region = generate_region(seed=2, n_bookings=2000, as_of=AS_OF)
    folder = write_drop(region, tmp_path, encoding=encoding)
    raw = (folder / "bokningar.csv").read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if encoding == "windows-1252":
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        text = raw.decode("cp1252")
        assert manifest["encoding"] == "windows-1252"
    else:
        assert raw.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
        text = raw.decode("utf-8-sig")
        assert manifest["encoding"] == "utf-8"
    assert "Häggsgård" in text
    assert "Vårdtjänst" in text.splitlines()[0]
    parsed = pl.read_csv(text.encode(), separator=";", infer_schema=False)
    assert_series_equal(parsed["Namn"], region.bookings["Namn"])
    assert_series_equal(parsed["Vårdtjänst"], region.bookings["Vårdtjänst"].cast(pl.String))


def test_crlf_and_quoting_of_free_text(drop, region):
    text = (drop / "bokningar.csv").read_bytes().decode("cp1252")
    outside_quotes = re.sub(r'"(?:[^"]|"")*"', "", text)
    assert outside_quotes.count("\n") == outside_quotes.count("\r\n") == region.bookings.height + 1
    info = region.bookings["Bokningsinformation"].drop_nulls()
    assert info.str.contains(";").any()
    assert info.str.contains('"').any()
    assert info.str.contains("\n").any()
    assert info.str.contains("Bokning via webbtidbok").any()
    assert info.str.contains(r"^Telefonnr:\+46").any()
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    header = rows[0]
    column = header.index("Bokningsinformation")
    from_file = [r[column] or None for r in rows[1:]]
    assert from_file == region.bookings["Bokningsinformation"].to_list()
    assert '"Patienten önskar ""morgontid"""' in text


def test_r13_personnummer_are_luhn_valid_in_every_form(region):
    patients = region.patients
    typed = patients["Personnummer"].to_list()
    forms = {
        "12": r"\d{12}", "12-": r"\d{8}-\d{4}", "10-": r"\d{6}-\d{4}", "10+": r"\d{6}\+\d{4}",
        "10": r"\d{10}", "spaced": r"\d{2} \d{6}-\d{4}",
    }
    seen = {k: 0 for k in forms}
    for value, pid, birth in zip(typed, patients["patient_id"], patients["birth_date"], strict=True):
        kind = next(k for k, rx in forms.items() if re.fullmatch(rx, value))
        seen[kind] += 1
        digits = re.sub(r"[ +\-]", "", value)
        assert luhn_ok(digits[-10:]), "row with invalid check digit"
        assert pid.endswith(digits[-10:]) and len(pid) == 12
        day = int(pid[6:8])
        assert date(int(pid[:4]), int(pid[4:6]), day - 60 if day > 60 else day) == birth
        if kind == "10+":
            assert AS_OF.year - birth.year >= 100
        if kind in ("10", "10-"):
            assert AS_OF.year - birth.year < 100
    assert all(seen.values()), seen
    coordination = patients.filter(pl.col("patient_id").str.slice(6, 2).cast(pl.Int32) > 60)
    assert coordination.height > 0


def test_r12_children_with_and_without_guardian(region):
    children = region.patients.filter(pl.col("is_child"))
    assert children.height > 0
    ages = (AS_OF.date() - children["birth_date"]).dt.total_days() / 365.25
    assert ages.max() < 13
    assert 0.4 <= children["has_guardian"].mean() <= 0.6
    digital_child = region.bookings.join(children, on="Personnummer").filter(
        pl.col("Kontakttyp") == "Distansbesök - video")
    assert digital_child["has_guardian"].n_unique() == 2


def test_sandbox_seed_files(region, tmp_path):
    units_path, guardians_path = write_sandbox_seed(region, tmp_path)
    units = pl.read_csv(units_path, separator=";")
    assert units.columns == ["EnhetHSAID"]
    assert units.height == region.units.height - 2
    assert set(region.units["EnhetHSAID"]) - set(units["EnhetHSAID"]) == {
        hsa for hsa, name in zip(region.units["EnhetHSAID"], region.units["Enhet"], strict=True)
        if name in cat.UNITS_OUTSIDE_CLINIC24
    }
    guardians = pl.read_csv(guardians_path, separator=";", infer_schema=False)
    assert guardians.columns == ["Personnummer"]
    children = region.patients.filter(pl.col("is_child"))
    assert set(guardians["Personnummer"]) < set(children["patient_id"])
    assert abs(guardians.height - children.height / 2) <= 1


def test_units_and_catalogue_shape(region):
    units = region.units
    assert units.height == 30
    assert units["EnhetHSAID"].str.contains(r"^SE\d{10}-[A-Za-z0-9]+$").all()
    assert (units["EnhetHSAID"].str.len_chars() <= 31).all()
    assert "Strålbehandlingsmottagning Gävle" in units["Enhet"].to_list()
    assert set(units["Offentlig"]) == {"Ja", "Nej"}
    services = region.care_services
    rt = services.filter(pl.col("Vårdtjänst").str.starts_with("Strålbehandling"))
    assert rt.height > 0 and (rt["PatientKanOmboka"] == "Nej").all() and (rt["PatientKanAvboka"] == "Nej").all()
    web_without_role = services.filter((pl.col("Webbtidbok") == "Ja") & pl.col("Clinic24Roll").is_null())
    assert web_without_role["Vårdtjänst"].to_list() == [cat.MISCONFIGURED_SERVICE]
    assert "Primärvård|distans video|sjuksköterska|diabetes" in services["Vårdtjänst"].to_list()
    staff = region.staff
    assert set(staff["Yrkesroll"]) == set(cat.PROFESSIONS)
    assert staff["ResursHSAID"].str.contains(r"^SE\d{10}-").all()


def test_rules_are_exercised_by_the_data(region):
    """R03, R05, R17, R22-R28 all have something to find in a 5 000-booking region."""
    b = region.bookings
    assert (b["Vårdtjänst"] == cat.HIDDEN_SERVICE).any()  # R03
    assert (b["Vårdtjänst"] == cat.MISCONFIGURED_SERVICE).any()  # R05
    assert set(b["Status"].cast(pl.String)) >= {"Planerad", "Preliminärbokad", "Bokad", "Anländ",
                                                 "Utförd", "Avbokad"}
    assert b.filter(pl.col("Status") == "Planerad")["BokadTid"].null_count() == b.filter(
        pl.col("Status") == "Planerad").height
    cancelled = b.filter(pl.col("Status") == "Avbokad")
    assert cancelled["Avbokningsorsak"].null_count() == 0
    bases = region.booking_bases
    specialist = bases.join(region.units.select("EnhetHSAID", "Verksamhetsområde").with_columns(
        pl.col("EnhetHSAID").cast(bases["EnhetHSAID"].dtype)), on="EnhetHSAID")
    spec = specialist.filter(pl.col("Verksamhetsområde") == "Specialistvård")
    assert 0 < spec["Remiss"].null_count() < spec.height  # R17

    ev = region.events
    e_service = ev.filter(pl.col("Orsak").is_in([cat.E_CANCEL, cat.E_REBOOK]))
    assert (e_service["Användare"] == cat.E_SERVICE_USER).any()
    assert (e_service["Användare"] != cat.E_SERVICE_USER).any()  # R28
    lead_hours = (e_service["TidigareTid"] - e_service["Datum"]).dt.total_hours()
    assert (lead_hours < 24).any() and (lead_hours >= 24).any()  # R24
    moves = ev.filter(pl.col("Typ") == "Ombokad")
    shift = (moves["NyTid"].dt.date() - moves["TidigareTid"].dt.date()).dt.total_days()
    assert ((shift < -7) | (shift > 14)).any() and shift.is_between(-7, 14).any()  # R25
    assert e_service["Vårdtjänst"].cast(pl.String).str.starts_with("Strålbehandling").any()  # R26
    assert (ev["Datum"] <= AS_OF.replace(tzinfo=None)).all()

    slots = region.slots
    assert set(slots["Schemamarkering"].cast(pl.String)) >= set(cat.MVG_MARKERS)
    unit, profession, gap_day = region.r22_gap
    published = slots.filter((pl.col("Webbtidbok") == "Ja") & (pl.col("Yrkesroll") == profession)
                             & (pl.col("Start").dt.date() == gap_day))
    assert unit not in published["EnhetHSAID"].cast(pl.String).to_list()  # R22 gap
    assert published["EnhetHSAID"].n_unique() > 20
    mixed = slots.filter(pl.col("EnhetHSAID") == region.r23_mixed_unit).group_by("TidID").agg(
        pl.col("Vårdtjänst").cast(pl.String).str.split("|").list.get(2).n_unique().alias("n"))
    assert (mixed["n"] > 1).any()  # R23
    per_slot = slots.group_by("TidID").agg(pl.len())
    assert (per_slot["len"] > 1).any()


def test_times_avoid_dst_gaps_on_a_spring_forward_day():
    spring = datetime(2027, 3, 28, 12, 0, tzinfo=STOCKHOLM)
    region = generate_region(seed=3, n_bookings=3000, as_of=spring)
    for frame in (region.bookings, region.booking_bases, region.events, region.slots):
        for name, dtype in frame.schema.items():
            if dtype == pl.Datetime("us"):
                # raises on a wall-clock time that does not exist in Stockholm
                frame[name].dt.replace_time_zone("Europe/Stockholm", non_existent="raise",
                                                 ambiguous="earliest")


@pytest.mark.parametrize("n", [50, 5000])
def test_sizes_scale(tmp_path, n):
    region = generate_region(seed=9, n_bookings=n, as_of=AS_OF)
    assert region.bookings.height == n
    assert region.bookings["BokningsID"].n_unique() == n
    assert region.booking_bases.height == max(10, n // 4)
    assert region.booking_bases["UnderlagsID"].n_unique() == region.booking_bases.height
    assert region.events["HändelseID"].n_unique() == region.events.height
    assert region.slots.select("TidID", "Vårdtjänst").n_unique() == region.slots.height
    folder = write_drop(region, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"]["bokningar.csv"]["rows"] == n


def test_cli_writes_a_drop(tmp_path, capsys):
    args = Namespace(out=str(tmp_path), bookings=50, seed=4, encoding="utf-8",
                     as_of="2026-11-26T08:05:00+01:00")
    assert generate_main(args) == 0
    folders = list(tmp_path.iterdir())
    assert [f.name for f in folders] == ["20261126T080500-000001"]
    assert (folders[0] / "manifest.json").exists()
    assert str(folders[0]) in capsys.readouterr().out


def test_naive_as_of_is_refused():
    with pytest.raises(ValueError):
        generate_region(seed=1, n_bookings=10, as_of=datetime(2026, 11, 26, 8, 5))  # noqa: DTZ001
