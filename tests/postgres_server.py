"""A throwaway PostgreSQL server on loopback for the ledger's tests (Debian's ``postgresql``).

``initdb`` into a temp dir, then ``postgres`` itself (not ``pg_ctl``, so its PID is ours to stop)
on a free loopback port, with trust authentication for the user ``gateway``. As root (CI may run
as root; PostgreSQL refuses to), the cluster belongs to the ``postgres`` system user. Stopped by
PID, fast shutdown (SIGINT), then SIGKILL if it lingers.

``scripts/test`` starts one for the whole run (``python -m tests.postgres_server DIR`` prints its
PID and DSN) and exports ``GATEWAY_TEST_POSTGRES_DSN``; without it, the session fixture starts
one. Tests that stop PostgreSQL on purpose start a server of their own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from tests.redis_server import free_port

ENV_DSN = "GATEWAY_TEST_POSTGRES_DSN"
USER = "gateway"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    if found:
        return Path(found[-1]).parent
    binary = shutil.which("postgres")
    if binary is None:
        raise RuntimeError("PostgreSQL is not installed; run scripts/install --dev")
    return Path(binary).resolve().parent


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


class PostgresServer:
    """One ``postgres`` process; ``start`` and ``stop`` may alternate (same port, same data)."""

    def __init__(
        self, port: int | None = None, *, fsync: bool = False, password: str | None = None
    ) -> None:
        """``password``: the user's password, checked (SCRAM) on TCP connections; without it
        every connection is trusted."""
        self.bin = bin_dir()
        self.password = password
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self._initdb()

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def dsn(self, database: str = "postgres") -> str:
        # sslmode=disable: loopback; with SSL asyncpg stat()s ~/.postgresql/* on each connect.
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def _initdb(self) -> None:
        auth = ["--auth=trust"]
        if self.password is not None:
            secret = self.folder / "pwfile"
            secret.write_text(self.password + "\n")
            if self._as:
                os.chown(secret, self._as["user"], self._as["group"])
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, *auth,
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.folder,
            **self._as,
        )  # fmt: skip

    def start(self) -> PostgresServer:
        args = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(self.folder), "-c", "max_connections=200"]  # fmt: skip
        if not self.fsync:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = (self.folder / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=log, cwd=self.folder, start_new_session=True, **self._as
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: sessions are cut at once
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


async def fresh_database(admin_dsn: str) -> str:
    """Create an empty database on the server of ``admin_dsn``; its DSN."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, query = admin_dsn.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


if __name__ == "__main__":
    # scripts/test: start a server that outlives this process; print "PID DSN FOLDER".
    server = PostgresServer().start()
    if server.proc is None:
        sys.exit(1)
    print(server.proc.pid, server.dsn(), server.folder)  # noqa: T201
