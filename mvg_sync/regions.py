"""Several regions on one Prefect server (issue 15.3): the region file, its Prefect objects and deployments.

One description, `deploy/regions.toml`, lists the regions. From it:
- `mvg-sync setup-prefect --regions FILE` writes each region's Variables (`<name>_<region>`) and
  Secret blocks (`clinic24-client-secret-<region>`, `mvg-state-password-<region>`), the secrets
  read from the environment (`CLINIC24_CLIENT_SECRET_<REGION>`, `MVG_STATE_PASSWORD_<REGION>`);
- `mvg-sync deployments --regions FILE` writes a prefect.yaml with every deployment of the
  checked-in prefect.yaml once per region: named `<deployment>-<region>`, on the region's own
  work queue, with its own concurrency limits, its environment templated from its Variables
  and `MVG_REGION=<region>` so the flow finds its Secret blocks.
The deployments' shape (schedules, parameters, limits, entrypoints) stays in prefect.yaml, once.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from mvg_sync.clinic24.baseurl import check_base_url
from mvg_sync.settings import (
    CLIENT_ID_VARIABLE,
    CLIENT_SECRET_BLOCK,
    REGION_CODE,
    STATE_PASSWORD_BLOCK,
    region_block,
    region_variable,
    split_password,
)

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "prefect.yaml"
VARIABLE_TAGS = ["mvg-sync"]

# region file key -> the environment variable it becomes in the region's flow runs
KEYS = {
    "landing_dir": "MVG_LANDING_DIR",
    "state_dir": "MVG_STATE_DIR",
    "report_dir": "MVG_REPORT_DIR",
    "clinic24_base_url": "CLINIC24_BASE_URL",
    "clinic24_client_id": "CLINIC24_CLIENT_ID",
    "state_url": "MVG_STATE_URL",
    "state_schema": "MVG_STATE_SCHEMA",
    "max_cancel_share": "MVG_MAX_CANCEL_SHARE",
    "cancel_guard_floor": "MVG_CANCEL_GUARD_FLOOR",
    "retention_days": "MVG_RETENTION_DAYS",
}
THRESHOLDS = {"max_cancel_share": "0.05", "cancel_guard_floor": "20", "retention_days": "60"}
REQUIRED = ("landing_dir", "state_dir", "report_dir", "clinic24_base_url", "clinic24_client_id")
FOLDERS = ("landing_dir", "state_dir", "report_dir")
TEMPLATED = re.compile(r"^\{\{\s*prefect\.variables\.([a-z0-9_]+)\s*\}\}$")


class RegionFileError(ValueError):
    """The region file is wrong; the message names the region and key, and what to do."""


@dataclass(frozen=True)
class Region:
    """One region as the region file describes it (no secret: those come from the environment)."""

    code: str
    name: str
    values: dict[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        """Prefect Variable name -> value for this region."""
        out = {}
        for key, value in self.values.items():
            base = CLIENT_ID_VARIABLE if key == "clinic24_client_id" else KEYS[key].lower()
            out[region_variable(base, self.code)] = value
        return out

    @property
    def env_suffix(self) -> str:
        return self.code.upper().replace("-", "_")


def load_regions(path: Path) -> list[Region]:
    """Read and check the region file; RegionFileError names every problem at once."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegionFileError(f"region file {path} not found; pass --regions deploy/regions.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegionFileError(f"region file {path} is not valid TOML: {exc}") from None
    unknown_top = set(data) - {"defaults", "regions"}
    problems = [f"unknown table [{name}] (only [defaults] and [regions.<code>])" for name in sorted(unknown_top)]
    defaults = data.get("defaults", {})
    tables = data.get("regions", {})
    if not tables:
        problems.append("no [regions.<code>] table")
    regions = []
    for code, table in tables.items():
        where = f"[regions.{code}]"
        if not REGION_CODE.fullmatch(code):
            problems.append(f"{where}: the code must be lowercase letters, digits and dashes (e.g. gavleborg)")
            continue
        merged = {**defaults, **table}
        unknown = set(merged) - set(KEYS) - {"name"}
        problems += [f"{where}: unknown key {key}" for key in sorted(unknown)]
        problems += [f"{where}: {key} is missing" for key in REQUIRED if not str(merged.get(key, "")).strip()]
        values = {key: str(merged[key]) for key in KEYS if key in merged and str(merged[key]).strip()}
        # The deployment templates every threshold; a missing Variable would arrive as "".
        for key, default in THRESHOLDS.items():
            values.setdefault(key, default)
        for key in FOLDERS:
            if key in values:
                values[key] = values[key].replace("{region}", code)
                if not Path(values[key]).is_absolute():
                    problems.append(f"{where}: {key} must be absolute (a worker runs elsewhere): {values[key]}")
        if "clinic24_base_url" in values:
            try:
                check_base_url(values["clinic24_base_url"])
            except Exception as exc:  # noqa: BLE001 - reported as the region's problem
                problems.append(f"{where}: {exc}")
        if "state_url" in values:
            if split_password(values["state_url"])[1] is not None:
                problems.append(f"{where}: state_url holds a password; remove it and set "
                                f"MVG_STATE_PASSWORD_{code.upper().replace('-', '_')} for setup-prefect")
            # Regions sharing a database keep apart by schema: one per region unless stated.
            values.setdefault("state_schema", code.replace("-", "_"))
        regions.append(Region(code=code, name=str(merged.get("name", code)), values=values))
    problems += _shared(regions)
    if problems:
        raise RegionFileError(f"region file {path}: " + "; ".join(problems))
    return regions


def _shared(regions: list[Region]) -> list[str]:
    """Anything two regions would share: a folder, or one database schema."""
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for region in regions:
        keys = [(key, str(Path(region.values[key]))) for key in FOLDERS if key in region.values]
        if "state_url" in region.values:
            keys.append(("state database schema", f"{region.values['state_url']}#{region.values['state_schema']}"))
        for key, value in keys:
            kind = "folder" if key in FOLDERS else key
            other = seen.setdefault((kind, value), region.code)
            if other != region.code:
                problems.append(f"regions {other} and {region.code} share the {kind} {value}")
    return problems


def render_deployments(regions: list[Region], template: Path = TEMPLATE) -> str:
    """The prefect.yaml for `regions`: every deployment of `template` once per region."""
    base = yaml.safe_load(template.read_text(encoding="utf-8"))
    deployments = []
    for region in regions:
        for deployment in base["deployments"]:
            d = {"name": f"{deployment['name']}-{region.code}", **copy.deepcopy(deployment)}
            d["name"] = f"{deployment['name']}-{region.code}"
            d["description"] = f"{region.name}: {deployment.get('description', '')}".strip()
            d["tags"] = [*deployment.get("tags", []), f"region:{region.code}"]
            pool = d["work_pool"]
            # One work queue per region: a region's backlog never delays another's runs.
            pool["work_queue_name"] = region.code
            env = pool.setdefault("job_variables", {}).setdefault("env", {})
            for name, value in list(env.items()):
                match = TEMPLATED.match(str(value))
                if match:
                    env[name] = "{{ prefect.variables." + region_variable(match.group(1), region.code) + " }}"
            env["MVG_REGION"] = region.code
            # per-region names in the pool's other job variables (e.g. Kubernetes volume claims)
            pool["job_variables"] = _fill_region(pool["job_variables"], region.code)
            deployments.append(d)
    document = {key: value for key, value in base.items() if key not in ("definitions", "deployments")}
    document["deployments"] = deployments
    header = (
        "# GENERATED by `mvg-sync deployments --regions` from prefect.yaml and the region file;\n"
        "# edit those and generate again. Deploy from the checkout the worker runs:\n"
        "#   prefect --no-prompt deploy --all --prefect-file <this file>\n"
        f"# Regions: {', '.join(r.code for r in regions)}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def _fill_region(value, code: str):
    if isinstance(value, dict):
        return {key: _fill_region(item, code) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill_region(item, code) for item in value]
    return value.replace("{region}", code) if isinstance(value, str) else value


@dataclass
class RegionSecrets:
    """The secrets setup would save for one region (never shown)."""

    client_secret: str | None = field(default=None, repr=False)
    state_password: str | None = field(default=None, repr=False)


def secrets_from_environment(region: Region, environ: dict[str, str] | None = None) -> RegionSecrets:
    env = os.environ if environ is None else environ
    return RegionSecrets(
        client_secret=env.get(f"CLINIC24_CLIENT_SECRET_{region.env_suffix}") or None,
        state_password=env.get(f"MVG_STATE_PASSWORD_{region.env_suffix}") or None,
    )


def setup_regions(path: Path, out: TextIO | None = None) -> int:
    """Write every region's Variables and Secret blocks; nothing unless the whole file is good."""
    out = out or sys.stderr
    try:
        regions = load_regions(path)
    except RegionFileError as exc:
        out.write(f"setup-prefect: nothing written; {exc}\n")
        return 1
    secrets = {r.code: secrets_from_environment(r) for r in regions}
    missing = [
        f"CLINIC24_CLIENT_SECRET_{r.env_suffix} is not set (region {r.code})"
        for r in regions
        if secrets[r.code].client_secret is None and not _is_loopback(r)
    ]
    if missing:
        out.write("setup-prefect: nothing written; fix the environment first:\n")
        out.writelines(f"  - {line}\n" for line in missing)
        return 1

    from prefect.blocks.system import Secret
    from prefect.variables import Variable

    for region in regions:
        for name, value in sorted(region.variables().items()):
            Variable.set(name, value, tags=[*VARIABLE_TAGS, f"region:{region.code}"], overwrite=True)
            out.write(f"variable {name} = {value}\n")
        for env, base in (("MVG_STATE_URL", "mvg_state_url"), ("MVG_STATE_SCHEMA", "mvg_state_schema")):
            name = region_variable(base, region.code)
            if env not in {KEYS[k] for k in region.values} and Variable.get(name, default=None) is not None:
                Variable.unset(name)
                out.write(f"variable {name} removed (no {base.removeprefix('mvg_')} for region {region.code})\n")
        for secret, base in ((secrets[region.code].client_secret, CLIENT_SECRET_BLOCK),
                             (secrets[region.code].state_password, STATE_PASSWORD_BLOCK)):
            block = region_block(base, region.code)
            if secret is not None:
                Secret(value=secret).save(block, overwrite=True)
                out.write(f"secret block {block} saved (value not shown)\n")
    out.write(
        "next: mvg-sync deployments --regions FILE --out prefect.regions.yaml, "
        "prefect --no-prompt deploy --all --prefect-file prefect.regions.yaml\n"
    )
    return 0


def _is_loopback(region: Region) -> bool:
    from mvg_sync.clinic24.baseurl import is_loopback_url

    return is_loopback_url(region.values.get("clinic24_base_url", ""))


def deployments_command(args: argparse.Namespace) -> int:
    """`mvg-sync deployments --regions FILE [--out FILE]`."""
    try:
        template = Path(args.template) if getattr(args, "template", None) else TEMPLATE
        text = render_deployments(load_regions(Path(args.regions)), template)
    except RegionFileError as exc:
        sys.stderr.write(f"deployments: {exc}\n")
        return 1
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {args.out}; next: prefect --no-prompt deploy --all --prefect-file {args.out}\n")
    else:
        sys.stdout.write(text)
    return 0
