"""Private PostgreSQL and RabbitMQ instances that fault tests may stop and restart.

Other people run tests against the machine's shared servers at the same time, so tests
that kill or restart a server start their own: a PostgreSQL cluster (``initdb`` +
``pg_ctl``) and a RabbitMQ node (its own node name, ports, epmd, data and log dirs), each
in a temporary directory, on free local ports, removed at the end.

``start_private_postgres()`` / ``start_private_rabbitmq()`` raise :class:`Unavailable`
with the reason when the binaries are missing or the server does not come up; callers
turn that into a skip (or a failure under ``CANVASFLOW_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class Unavailable(RuntimeError):
    """A private server could not be started (missing binaries, refused to start...)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise Unavailable(f"{what} did not come up within {timeout:.0f}s")
        time.sleep(0.2)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- PostgreSQL -------------------------------------------------------------------------------


def _pg_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True
        ).stdout.strip()
        if (Path(bindir) / "initdb").exists():
            return Path(bindir)
    raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")


@dataclass
class PrivatePostgres:
    """A throwaway cluster: ``url`` reaches its ``postgres`` database over TCP, trust auth."""

    root: Path
    port: int
    bindir: Path
    as_user: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, *args],
            capture_output=True,
            text=True,
            check=check,
            cwd=str(self.root),
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if done.returncode != 0:
            raise Unavailable(
                f"pg_ctl start failed: {done.stderr or done.stdout}\n"
                f"{_tail(self.root / 'postgres.log')}"
            )

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False
        )

    def running(self) -> bool:
        return (
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "status", check=False
            ).returncode
            == 0
        )

    def create_database(self, name: str) -> str:
        """A new database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_private_postgres() -> PrivatePostgres:
    """initdb a cluster in a fresh temporary directory and start it on a free port."""
    bindir = _pg_bindir()
    # /tmp itself, not pytest's tmp dirs: the postgres user must be able to traverse it.
    root = Path(tempfile.mkdtemp(prefix="cf-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, PermissionError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise Unavailable(f"no postgres OS user to run a private cluster as: {exc}") from exc
        os.chmod(root, 0o700)
        as_user = ["runuser", "-u", "postgres", "--"]
    pg = PrivatePostgres(root, free_port(), bindir, as_user)
    done = pg._run(
        str(bindir / "initdb"),
        "-D",
        str(pg.data),
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-sync",
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"initdb failed: {done.stderr or done.stdout}")
    try:
        pg.start()
    except Unavailable:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return pg


# -- RabbitMQ -------------------------------------------------------------------------------


def _rabbit_bindir() -> Path:
    for candidate in ("/usr/lib/rabbitmq/bin", "/opt/rabbitmq/sbin", "/usr/local/sbin"):
        if (Path(candidate) / "rabbitmq-server").exists() and (
            Path(candidate) / "rabbitmqctl"
        ).exists():
            return Path(candidate)
    server = shutil.which("rabbitmq-server")
    if server and shutil.which("rabbitmqctl"):
        return Path(server).parent
    raise Unavailable("rabbitmq-server / rabbitmqctl not found")


LOOPBACK_ONLY = "-kernel inet_dist_use_interface {127,0,0,1}"


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node of our own: its node name, AMQP/dist/epmd ports and directories."""

    root: Path
    bindir: Path
    nodename: str
    port: int
    dist_port: int
    epmd_port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            {
                "HOME": str(self.root),  # its own Erlang cookie
                "RABBITMQ_NODENAME": self.nodename,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": LOOPBACK_ONLY,
                "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.root / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
                "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.root / "plugins-expand"),
                # not the machine's config files: they pin the shared node's name and port
                "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
                "RABBITMQ_PID_FILE": str(self.root / "rabbitmq.pid"),
            }
        )
        return env

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.root / f"server-{self.starts}.log", "ab")
        self.starts += 1
        self.process = subprocess.Popen(
            [str(self.bindir / "rabbitmq-server")],
            env=self.env(),
            cwd=str(self.root),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait(self._accepts_amqp, timeout, f"RabbitMQ node {self.nodename}")
        except Unavailable as exc:
            raise Unavailable(
                f"{exc}\n{_tail(self.root / f'server-{self.starts - 1}.log')}"
            ) from None

    def _accepts_amqp(self) -> bool:
        from kombu import Connection

        if self.process is not None and self.process.poll() is not None:
            raise Unavailable(f"rabbitmq-server exited with {self.process.returncode}")
        with Connection(self.url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return True

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self.env(),
            cwd=str(self.root),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        """Stop the node (``rabbitmqctl stop``); durable queues and persistent messages stay."""
        if self.process is None:
            return
        self.ctl("stop")
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            epmd = shutil.which("epmd") or next(
                iter(glob.glob("/usr/lib/erlang/erts-*/bin/epmd")), None
            )
            if epmd:  # the epmd our node started on its private port
                subprocess.run(
                    [epmd, "-port", str(self.epmd_port), "-kill"],
                    capture_output=True,
                    env=self.env(),
                    timeout=10,
                    check=False,
                )
            shutil.rmtree(self.root, ignore_errors=True)


def start_private_rabbitmq() -> PrivateRabbitMQ:
    """Start a RabbitMQ node in a fresh temporary directory on free ports (~10 s)."""
    bindir = _rabbit_bindir()
    root = Path(tempfile.mkdtemp(prefix="cf-rmq-"))
    (root / "enabled_plugins").write_text("[].\n")
    node = PrivateRabbitMQ(
        root, bindir, f"cf{secrets.token_hex(4)}@localhost", free_port(), free_port(), free_port()
    )
    try:
        node.start()
    except Exception:
        node.destroy()
        raise
    return node
