"""`gateway serve` as a child process for the process-level tests: config, start, port, stop.

Every config written here keeps the child's state under the test's ``tmp_path`` (the file ledger
and its spill directory unless the test configures ``[metering]`` itself), so no test writes to
the user's home directory.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests import identity

ROOT = Path(__file__).resolve().parent.parent


def serve(
    tmp_path: Path,
    sections: str,
    *,
    workers: int,
    drain_s: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `gateway serve` with the dev issuer, ``sections`` (TOML) and a private file ledger.

    The child's stderr goes to ``tmp_path / "gateway.log"``; ``GATEWAY*`` variables of this
    process are not inherited (``env`` adds variables).
    """
    metering = "" if "[metering]" in sections else f"""
[metering]
path = "{tmp_path / "usage.jsonl"}"
spill_dir = "{tmp_path / "spill"}"
"""  # fmt: skip
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[server]
port = 0
workers = {workers}
drain_timeout_s = {drain_s}
log_level = "warning"

[auth.dev_issuer]
enabled = true
issuer = "{identity.ISSUER}"
client_id = "{identity.CLIENT_ID}"
key_file = "{identity.key_file()}"
{metering}
{sections}
""")  # fmt: skip
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY")}
    child_env.update(env or {})
    with (tmp_path / "gateway.log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=log, cwd=ROOT, env=child_env,
        )  # fmt: skip


def wait_listening(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """The port the supervisor reports on its first stdout line."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, "gateway did not start"
    line = proc.stdout.readline().decode()
    assert "listening on http://127.0.0.1:" in line, line
    return int(line.split("127.0.0.1:")[1].split()[0])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child if it still runs (by its PID) and close its pipe."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
