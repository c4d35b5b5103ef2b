"""A throwaway PostgreSQL for the tests (issue 15): initdb and pg_ctl in a temp folder, as an unprivileged user.

Debian's `postgresql` package provides the binaries (`make postgresql` installs it). The
server listens only on 127.0.0.1 at a free port, with fsync off (nothing here must survive a
crash of the machine), and password authentication, so a wrong password is a real refusal.
Use the session fixture `pg_server` (tests/conftest.py) or `start()`; the server is stopped
and its folder removed when the session ends.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "postgres"
DATABASE = "mvg"


class NoPostgres(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def find_bin() -> Path:
    """The folder holding initdb/pg_ctl/postgres: $PG_BIN, Debian's newest /usr/lib/postgresql/*/bin, or PATH."""
    if os.environ.get("PG_BIN"):
        if (Path(os.environ["PG_BIN"]) / "initdb").exists():
            return Path(os.environ["PG_BIN"])
        raise NoPostgres(f"PG_BIN={os.environ['PG_BIN']} holds no initdb: point it at PostgreSQL's bin folder, or unset it")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise NoPostgres(
        "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH): "
        "run `make postgresql` (apt-get install postgresql) or set PG_BIN"
    )


def _run_as() -> str | None:
    """initdb refuses root: the account the server runs as (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):  # Debian's package creates `postgres`
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "mvg-pgtest"], check=True)
    return "mvg-pgtest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running throwaway server; `url()` gives a postgresql:// URL to one of its databases."""

    base: Path
    bindir: Path
    user: str | None
    port: int
    password: str
    _stopped: bool = field(default=False, repr=False)

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = DATABASE, *, password: str | None = None, **query: str) -> str:
        pw = self.password if password is None else password
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql://{SUPERUSER}:{pw}@127.0.0.1:{self.port}/{database}" + (f"?{tail}" if tail else "")

    def admin(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=10)

    def _cmd(self, *args: str, **kw) -> subprocess.CompletedProcess:
        argv = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.base, **kw)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def start() -> Server:
    """initdb a new cluster in a temp folder and start it; the caller (or atexit) stops it."""
    bindir = find_bin()
    user = _run_as()
    base = Path(tempfile.mkdtemp(prefix="mvg-pg-"))
    password = secrets.token_hex(12)
    if user:
        info = pwd.getpwnam(user)
        os.chown(base, info.pw_uid, info.pw_gid)
    base.chmod(0o700)
    (base / "pw").write_text(password + "\n")
    if user:
        os.chown(base / "pw", info.pw_uid, info.pw_gid)
    server = Server(base=base, bindir=bindir, user=user, port=0, password=password)
    done = server._cmd(
        "initdb", "-D", str(server.data), "-U", SUPERUSER, "--pwfile", str(base / "pw"),
        "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
    )
    if done.returncode:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
    (base / "pw").unlink()
    last = ""
    for _attempt in range(5):  # a free port can be taken between the probe and the bind
        server.port = _free_port()
        conf = (
            f"listen_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = ''\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            "timezone = 'UTC'\n"
        )
        with (server.data / "postgresql.conf").open("a") as f:
            f.write(conf)
        done = server._cmd("pg_ctl", "-D", str(server.data), "-l", str(base / "log"), "-w", "-t", "60", "start")
        if done.returncode == 0:
            atexit.register(server.stop)
            with server.admin() as con:
                con.execute(f"CREATE DATABASE {DATABASE}")
            return server
        last = (base / "log").read_text(errors="replace")[-500:] if (base / "log").exists() else done.stderr
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last.strip()}")
