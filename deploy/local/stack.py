#!/usr/bin/env python3
"""Local runtime for opex-bridge: one Apache Kafka broker (KRaft) and one PostgreSQL cluster.

Standard library only (Python 3.11+): it runs before any package is installed, and pytest
fixtures import it. Everything lives in folders that git ignores:

    .cache/kafka/libs/   broker jars, resolved by Maven from deploy/local/kafka/pom.xml
    .cache/kafka/cds/    the JVM's class-data-sharing archive (faster broker start)
    .run/kafka/          server.properties, data/, server.log, console.log, kafka.pid
    .run/pg/             data/ (initdb cluster; postmaster.pid), postgres.log, unix socket
    .run/stack.lock      serialises concurrent up/down/reset (flock)

See deploy/local/README.md for what was verified, timings and gotchas.

CLI (from the repo root)::

    python3 deploy/local/stack.py up     [--kafka-only|--pg-only] [--timeout S]
    python3 deploy/local/stack.py down   [--kafka-only|--pg-only]
    python3 deploy/local/stack.py status [--kafka-only|--pg-only]
    python3 deploy/local/stack.py env    [--kafka-only|--pg-only]
    python3 deploy/local/stack.py reset  [--kafka-only|--pg-only]

Python API::

    env = ensure_up(kafka=True, pg=True, timeout=90)   # StackEnv, a dict[str, str]
    env.started                                        # ("kafka", "pg") it started itself
    stop(env)                                          # stops only what ensure_up started
    endpoints(); repo_root(); down(); reset(); status_lines()

Ports: Kafka 127.0.0.1:19092 (controller 19093), PostgreSQL 127.0.0.1:15432; override with
OPEXBRIDGE_KAFKA_PORT / OPEXBRIDGE_PG_PORT.
"""

# Every subprocess here runs a fixed argv list (no shell, no outside input): S603 is noise.
# RUF100 is listed too so this line passes whether or not the config enables S603.
# ruff: noqa: S603, RUF100

import argparse
import base64
import contextlib
import errno
import fcntl
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "DB_NAME",
    "DB_USER",
    "KAFKA_PORT_ENV",
    "PG_PORT_ENV",
    "KafkaMeta",
    "StackEnv",
    "StackError",
    "down",
    "endpoints",
    "ensure_up",
    "kafka_port",
    "kafka_probe",
    "main",
    "pg_port",
    "repo_root",
    "reset",
    "resolve_kafka_jars",
    "status_lines",
    "stop",
]

KAFKA_PORT_ENV: Final = "OPEXBRIDGE_KAFKA_PORT"
PG_PORT_ENV: Final = "OPEXBRIDGE_PG_PORT"
KAFKA_CDS_ENV: Final = "OPEXBRIDGE_KAFKA_CDS"  # "0" turns the class-data-sharing archive off
DEFAULT_KAFKA_PORT: Final = 19092
DEFAULT_PG_PORT: Final = 15432
DEFAULT_TIMEOUT: Final = 90.0
HOST: Final = "127.0.0.1"
DB_NAME: Final = "opexbridge"
DB_USER: Final = "opexbridge"
PG_SUPERUSER: Final = "postgres"  # bootstrap superuser name given to initdb
PG_OS_USER: Final = "postgres"  # system user that runs initdb/postgres when we are root
KAFKA_NODE_ID: Final = 1
KAFKA_JVM_OPTS: Final = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    # C1 only: a broker that lives for one dev session or one CI run spent more CPU in
    # the C2 JIT compiler than in serving requests (12 s of 20 s during `make
    # bench-risk`); without C2 the same run costs the broker 9-11 s, on a 2-core box.
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
KAFKA_STOP_GRACE: Final = 30.0
MVN_TIMEOUT: Final = 900.0
LOG_TAIL_LINES: Final = 40

KAFKA: Final = "kafka"
PG: Final = "pg"


class StackError(RuntimeError):
    """A clear, user-facing failure of the local stack (the CLI prints it and exits 1)."""


class StackEnv(dict[str, str]):
    """The env mapping (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL) plus what this call started.

    It is a plain ``dict[str, str]`` (so ``os.environ.update(env)`` works); ``started``
    names the services ("kafka", "pg") that the ``ensure_up`` call started itself, i.e.
    the ones ``stop(env)`` will stop. Services that were already running are reused and
    not listed.
    """

    started: tuple[str, ...]

    def __init__(self, mapping: dict[str, str], started: Iterable[str] = ()) -> None:
        super().__init__(mapping)
        self.started = tuple(started)


# --------------------------------------------------------------------------- paths / config


def repo_root() -> Path:
    """The repository root: two levels above this script."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Paths:
    root: Path

    @property
    def run(self) -> Path:
        return self.root / ".run"

    @property
    def lock(self) -> Path:
        return self.run / "stack.lock"

    # Kafka
    @property
    def kafka_src(self) -> Path:
        return self.root / "deploy" / "local" / "kafka"

    @property
    def pom(self) -> Path:
        return self.kafka_src / "pom.xml"

    @property
    def log4j(self) -> Path:
        return self.kafka_src / "log4j2.xml"

    @property
    def libs(self) -> Path:
        return self.root / ".cache" / "kafka" / "libs"

    @property
    def libs_marker(self) -> Path:
        return self.libs / ".resolved"

    @property
    def cds_dir(self) -> Path:
        return self.root / ".cache" / "kafka" / "cds"

    @property
    def kafka_run(self) -> Path:
        return self.run / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_run / "data"

    @property
    def kafka_props(self) -> Path:
        return self.kafka_run / "server.properties"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka_run / "kafka.pid"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_run / "server.log"

    @property
    def kafka_console(self) -> Path:
        return self.kafka_run / "console.log"

    @property
    def kafka_cds_log(self) -> Path:
        return self.kafka_run / "cds.log"

    # PostgreSQL
    @property
    def pg_link(self) -> Path:
        return self.run / "pg"

    @property
    def pg_run(self) -> Path:
        """.run/pg, or where it links to (see _pg_prepare_dirs)."""
        return self.pg_link.resolve()

    @property
    def pg_data(self) -> Path:
        return self.pg_run / "data"

    @property
    def pg_log(self) -> Path:
        return self.pg_run / "postgres.log"

    @property
    def pg_pidfile(self) -> Path:
        return self.pg_data / "postmaster.pid"


def _paths() -> _Paths:
    return _Paths(repo_root())


def _port_from_env(var: str, default: int, span: int = 1) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{var}={raw!r} is not a port number") from None
    if not 1024 <= port <= 65535 - span:
        raise StackError(f"{var}={port} is out of range (1024..{65535 - span})")
    return port


def kafka_port() -> int:
    """Kafka PLAINTEXT port (the controller listener uses this + 1)."""
    return _port_from_env(KAFKA_PORT_ENV, DEFAULT_KAFKA_PORT, span=1)


def pg_port() -> int:
    """PostgreSQL TCP port on 127.0.0.1."""
    return _port_from_env(PG_PORT_ENV, DEFAULT_PG_PORT, span=0)


def endpoints() -> dict[str, str]:
    """The env mapping for clients of the local stack (ports from the env overrides)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{kafka_port()}",
        "DATABASE_URL": f"postgresql+psycopg://{DB_USER}@{HOST}:{pg_port()}/{DB_NAME}",
    }


def _env_for(services: Sequence[str]) -> dict[str, str]:
    eps = endpoints()
    out: dict[str, str] = {}
    if KAFKA in services:
        out["KAFKA_BOOTSTRAP_SERVERS"] = eps["KAFKA_BOOTSTRAP_SERVERS"]
    if PG in services:
        out["DATABASE_URL"] = eps["DATABASE_URL"]
    return out


# --------------------------------------------------------------------------- small helpers


def _say(msg: str) -> None:
    """A progress line, on stderr (stdout carries only `env`/`up`/`status` results)."""
    print(f"stack: {msg}", file=sys.stderr, flush=True)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(repo_root()))
    except ValueError:
        return str(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, lines: int = LOG_TAIL_LINES, since: int = 0) -> str:
    """The last lines of a log, only from byte offset ``since`` (this start's output)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            start = since if since <= size else 0  # rotated or truncated meanwhile
            fh.seek(max(start, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"  (no log at {path})"
    body = "\n".join("  | " + ln for ln in data.splitlines()[-lines:])
    if not body:
        return f"  ({path}: nothing logged by this start)"
    return f"  --- last lines of {path} ---\n{body}"


def _port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (bind test, SO_REUSEADDR like servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _port_answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


# Long-lived servers are started through a short-lived launcher, so they are never
# children of the calling process (a pytest run, say): nothing to reap, no "subprocess is
# still running" ResourceWarning when that process exits and leaves the stack up.
_LAUNCHER: Final = """\
import os, subprocess, sys
with open(sys.argv[1], "ab") as log:
    p = subprocess.Popen(sys.argv[3:], cwd=sys.argv[2], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
print(p.pid, flush=True)
os._exit(0)
"""


def _spawn_detached(cmd: Sequence[str], cwd: Path, log: Path) -> int:
    """Start cmd in its own session, output appended to log; returns its pid."""
    res = subprocess.run(
        [sys.executable, "-I", "-W", "ignore", "-c", _LAUNCHER, str(log), str(cwd), *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        return int(res.stdout.strip())
    except ValueError:
        raise StackError(f"could not start {cmd[0]}: {res.stderr.strip()}") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:  # a zombie (dead, not yet reaped) is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> list[str] | None:
    """argv of a process, or None when unknown (no /proc, or gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, ValueError, IndexError):
        return None


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.1)
    return not _pid_alive(pid)


def _terminate(pid: int, name: str, grace: float) -> None:
    """SIGTERM, wait up to grace seconds, then SIGKILL (the process and its group)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, grace):
        return
    _say(f"{name}: still running {grace:.0f}s after SIGTERM, sending SIGKILL")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10):
        raise StackError(f"{name}: pid {pid} survived SIGKILL")


_LogMarks = tuple[int, int]  # sizes of server.log and console.log when a start began


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end


# Lock around up/down/reset: across processes (several pytest workers may race) with
# flock on .run/stack.lock, across threads with an RLock; re-entrant within one thread.
_LOCK_DEPTH = 0
_THREAD_LOCK = threading.RLock()


@contextlib.contextmanager
def _locked(wait: float) -> Iterator[None]:
    if not _THREAD_LOCK.acquire(timeout=wait):
        raise StackError(f"another thread holds the stack lock (waited {wait:.0f}s)")
    try:
        with _flocked(wait):
            yield
    finally:
        _THREAD_LOCK.release()


@contextlib.contextmanager
def _flocked(wait: float) -> Iterator[None]:
    global _LOCK_DEPTH
    if _LOCK_DEPTH > 0:
        _LOCK_DEPTH += 1
        try:
            yield
        finally:
            _LOCK_DEPTH -= 1
        return
    p = _paths()
    p.run.mkdir(parents=True, exist_ok=True)
    fh = p.lock.open("a+")
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                fh.close()
                raise StackError(
                    f"another stack.py run holds {p.lock} (waited {wait:.0f}s)"
                ) from None
            if not announced:
                _say("waiting for another stack.py run to finish")
                announced = True
            time.sleep(0.2)
    _LOCK_DEPTH = 1
    try:
        yield
    finally:
        _LOCK_DEPTH = 0
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


# --------------------------------------------------------------------------- Kafka: jars


def _kafka_version(pom: Path) -> str:
    m = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    if not m:
        raise StackError(f"no <kafka.version> property in {pom}")
    return m.group(1)


def _libs_marker_text(p: _Paths) -> str:
    digest = hashlib.sha256(p.pom.read_bytes()).hexdigest()
    return f"kafka_2.13={_kafka_version(p.pom)}\npom-sha256={digest}\n"


def _libs_ready(p: _Paths) -> bool:
    try:
        marker = p.libs_marker.read_text()
    except OSError:
        return False
    return marker == _libs_marker_text(p) and any(p.libs.glob("kafka_2.13-*.jar"))


def resolve_kafka_jars() -> Path:
    """Resolve the broker jars into .cache/kafka/libs with Maven (skipped when current)."""
    p = _paths()
    if _libs_ready(p):
        return p.libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    version = _kafka_version(p.pom)
    tmp = p.libs.with_name(f"libs.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _say(f"kafka: resolving kafka_2.13 {version} jars with Maven into {_rel(p.libs)} ...")
    t0 = time.monotonic()
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(p.pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
    ]
    try:
        res = subprocess.run(
            cmd, cwd=p.root, capture_output=True, text=True, timeout=MVN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StackError(f"Maven did not finish in {MVN_TIMEOUT:.0f}s: {' '.join(cmd)}") from None
    if res.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        out = (res.stdout + res.stderr).strip().splitlines()[-30:]
        raise StackError(
            f"Maven failed to resolve the Kafka jars (exit {res.returncode}): {' '.join(cmd)}\n"
            + "\n".join("  | " + ln for ln in out)
        )
    (tmp / ".resolved").write_text(_libs_marker_text(p))
    shutil.rmtree(p.libs, ignore_errors=True)
    tmp.rename(p.libs)
    n = len(list(p.libs.glob("*.jar")))
    _say(f"kafka: {n} jars resolved in {time.monotonic() - t0:.1f}s")
    return p.libs


# --------------------------------------------------------------------------- Kafka: process


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise StackError("java is not on PATH (Kafka 4.x needs Java 17 or newer)")
    return java


def _cds_archive(p: _Paths) -> Path:
    """Where the broker's class-data-sharing archive lives, keyed by jar set and JVM build.

    JDK 17 dumps a dynamic CDS archive at exit (-XX:ArchiveClassesAtExit); later starts map
    it (-XX:SharedArchiveFile) and skip most class loading: measured here ~10 s -> ~3 s.
    """
    java = Path(_java()).resolve()
    ident = [java.as_posix()]
    with contextlib.suppress(OSError):  # the jar set, and when it was resolved (jar mtimes)
        ident += [p.libs_marker.read_text(), str(p.libs_marker.stat().st_mtime_ns)]
    libjvm = java.parent.parent / "lib" / "server" / "libjvm.so"
    with contextlib.suppress(OSError):
        st = libjvm.stat()
        ident.append(f"{st.st_size}:{st.st_mtime_ns}")
    key = hashlib.sha256("\n".join(ident).encode()).hexdigest()[:16]
    return p.cds_dir / f"kafka-{key}.jsa"


def _cds_opts(p: _Paths) -> list[str]:
    """JVM flags: use the archive if there is one, else dump one when the broker exits.
    CDS messages go to .run/kafka/cds.log (rewritten each start), not to the console."""
    if os.environ.get(KAFKA_CDS_ENV, "1") == "0":
        return []
    archive = _cds_archive(p)
    logging = ["-Xlog:cds*=off", f"-Xlog:cds=info:file={p.kafka_cds_log}::filecount=0"]
    if archive.is_file() and archive.stat().st_size > 0:
        return [f"-XX:SharedArchiveFile={archive}", *logging]
    p.cds_dir.mkdir(parents=True, exist_ok=True)
    for old in p.cds_dir.glob("kafka-*.jsa"):  # other jar sets / JVM builds
        old.unlink(missing_ok=True)
    return [f"-XX:ArchiveClassesAtExit={archive}", *logging]


def _cds_check(p: _Paths, opts: Sequence[str]) -> None:
    """After a start that used the archive: if the JVM did not map it (corrupt, stale),
    delete it so that a later run dumps a fresh one (the JVM itself only falls back)."""
    if not any(o.startswith("-XX:SharedArchiveFile=") for o in opts):
        return
    try:
        used = "Mapped dynamic region" in p.kafka_cds_log.read_text(errors="replace")
    except OSError:
        return
    if not used:
        _say(
            "kafka: the JVM did not use the class-data-sharing archive; deleted, "
            "a later run rebuilds it"
        )
        _cds_archive(p).unlink(missing_ok=True)


def _java_cmd(p: _Paths, main_class: str, *args: str, extra: Sequence[str] = ()) -> list[str]:
    return [
        _java(),
        *KAFKA_JVM_OPTS,
        *extra,
        f"-Dlog4j2.configurationFile={p.log4j}",
        f"-Dkafka.logs.dir={p.kafka_run}",
        "-cp",
        f"{p.libs}/*",
        main_class,
        *args,
    ]


def _kafka_properties(p: _Paths, port: int) -> str:
    ctl = port + 1
    return f"""\
# Generated by deploy/local/stack.py on every start: edit the script, not this file.
# Single-node KRaft: this process is both broker and controller (static voter set).
process.roles=broker,controller
node.id={KAFKA_NODE_ID}
controller.quorum.voters={KAFKA_NODE_ID}@{HOST}:{ctl}
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{ctl}
advertised.listeners=PLAINTEXT://{HOST}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={p.kafka_data}

# One replica everywhere; transactions and the idempotent producer work with these.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=4

# Development behaviour: explicit topics only, no rebalance delay.
auto.create.topics.enable=false
delete.topic.enable=true
num.partitions=1
group.initial.rebalance.delay.ms=0

# Small footprint for a 2-core dev box.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=33554432
log.segment.bytes=67108864
log.retention.hours=24
log.retention.check.interval.ms=300000
"""


def _kafka_pid_ours(pid: int, p: _Paths) -> bool:
    argv = _cmdline(pid)
    if argv is None:
        return _pid_alive(pid)
    return (
        bool(argv)
        and Path(argv[0]).name == "java"
        and "kafka.Kafka" in argv
        and str(p.kafka_props) in argv
    )


def _kafka_find_pid(p: _Paths) -> int | None:
    """Our broker's pid: from kafka.pid, else by scanning /proc (pid file lost)."""
    pid = _read_pid(p.kafka_pid)
    if pid is not None and _pid_alive(pid) and _kafka_pid_ours(pid, p):
        return pid
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if entry.name.isdigit():
            cand = int(entry.name)
            if cand != pid and _pid_alive(cand) and _kafka_pid_ours(cand, p):
                p.kafka_pid.write_text(f"{cand}\n")
                return cand
    return None


def _kafka_running_port(p: _Paths) -> int | None:
    try:
        text = p.kafka_props.read_text()
    except OSError:
        return None
    m = re.search(r"^listeners=PLAINTEXT://[^:]+:(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


def _kafka_call(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client_id = b"opexbridge-stack"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    data = _recv_exact(sock, size)
    (got,) = struct.unpack_from(">i", data, 0)
    if got != corr:
        raise ConnectionError(f"correlation id {got} != {corr}")
    return data[4:]


@dataclass(frozen=True)
class KafkaMeta:
    cluster_id: str | None
    brokers: tuple[tuple[int, str, int], ...]
    controller_id: int


def kafka_probe(port: int, timeout: float = 2.0) -> KafkaMeta:
    """A real round trip: ApiVersions v0, then Metadata v4 (no topics). Raises on failure."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        body = _kafka_call(sock, 18, 0, 1, b"")  # ApiVersions v0
        (err,) = struct.unpack_from(">h", body, 0)
        if err != 0:
            raise ConnectionError(f"ApiVersions error code {err}")
        # Metadata v4: topics = [] (empty array: no topic metadata), allow_auto_create = false
        body = _kafka_call(sock, 3, 4, 2, struct.pack(">ib", 0, 0))
        off = 4  # throttle_time_ms
        (n,) = struct.unpack_from(">i", body, off)
        off += 4
        brokers: list[tuple[int, str, int]] = []
        for _ in range(n):
            node_id, hlen = struct.unpack_from(">ih", body, off)
            off += 6
            host = body[off : off + hlen].decode()
            off += hlen
            (bport, rlen) = struct.unpack_from(">ih", body, off)
            off += 6 + max(rlen, 0)
            brokers.append((node_id, host, bport))
        (clen,) = struct.unpack_from(">h", body, off)
        off += 2
        cluster = body[off : off + clen].decode() if clen >= 0 else None
        off += max(clen, 0)
        (controller,) = struct.unpack_from(">i", body, off)
    return KafkaMeta(cluster, tuple(brokers), controller)


def _kafka_find_coordinator(port: int, key: str, key_type: int) -> int:
    """FindCoordinator v1 for a group (key_type 0) or transactional id (1): the error code.

    The first lookup makes the broker create __consumer_offsets / __transaction_state;
    doing it at start-up keeps that one-time delay out of the first test that needs it.
    """
    with socket.create_connection((HOST, port), timeout=2.0) as sock:
        sock.settimeout(5.0)
        raw = key.encode()
        body = _kafka_call(sock, 10, 1, 3, struct.pack(">h", len(raw)) + raw + bytes([key_type]))
    (err,) = struct.unpack_from(">h", body, 4)  # after throttle_time_ms
    return int(err)


def _kafka_warm_up(p: _Paths, port: int, deadline: _Deadline, marks: _LogMarks) -> None:
    for key_type, what in ((0, "__consumer_offsets"), (1, "__transaction_state")):
        while True:
            try:
                err = _kafka_find_coordinator(port, "opexbridge-stack-warmup", key_type)
            except (OSError, ConnectionError, struct.error) as exc:
                err, last = -2, str(exc)
            else:
                last = f"error code {err}"
            if err == 0:
                break
            if deadline.expired():
                raise StackError(
                    f"kafka: the coordinator for {what} is not available after "
                    f"{deadline.seconds:.0f}s ({last})\n" + _kafka_logs(p, marks)
                )
            time.sleep(0.2)


def _kafka_ready(port: int) -> KafkaMeta | None:
    try:
        meta = kafka_probe(port)
    except (OSError, ConnectionError, struct.error, UnicodeDecodeError):
        return None
    if any(b[0] == KAFKA_NODE_ID and b[2] == port for b in meta.brokers):
        return meta
    return None


def _kafka_marks(p: _Paths) -> _LogMarks:
    return _size(p.kafka_log), _size(p.kafka_console)


def _kafka_logs(p: _Paths, marks: _LogMarks = (0, 0)) -> str:
    return _tail(p.kafka_log, since=marks[0]) + "\n" + _tail(p.kafka_console, 15, since=marks[1])


def _kafka_wait_ready(
    p: _Paths, pid: int, port: int, deadline: _Deadline, marks: _LogMarks = (0, 0)
) -> KafkaMeta:
    while True:
        meta = _kafka_ready(port)
        if meta is not None:
            return meta
        if not _pid_alive(pid):
            p.kafka_pid.unlink(missing_ok=True)
            raise StackError(
                f"kafka: the broker (pid {pid}) exited during start-up\n" + _kafka_logs(p, marks)
            )
        if deadline.expired():
            raise StackError(
                f"kafka: not ready on {HOST}:{port} after {deadline.seconds:.0f}s\n"
                + _kafka_logs(p, marks)
            )
        time.sleep(0.2)


def _kafka_format(p: _Paths) -> None:
    if (p.kafka_data / "meta.properties").is_file():
        return
    shutil.rmtree(p.kafka_data, ignore_errors=True)  # half-formatted leftovers
    # A cluster id is 16 random bytes in URL-safe base64 without padding, as
    # `kafka.tools.StorageTool random-uuid` prints (saves a JVM start); `format` validates it.
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            break
    _say(f"kafka: formatting {_rel(p.kafka_data)} (cluster id {cluster_id})")
    cmd = _java_cmd(
        p, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(p.kafka_props)
    )
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0:
        shutil.rmtree(p.kafka_data, ignore_errors=True)
        raise StackError(
            f"kafka: storage format failed (exit {res.returncode})\n  | "
            + "\n  | ".join((res.stdout + res.stderr).strip().splitlines()[-20:])
        )


def _kafka_up(timeout: float) -> bool:
    """Start Kafka unless ours runs already. Returns True when this call started it.

    ``timeout`` bounds the wait for readiness (jar resolution by Maven is not counted).
    """
    p = _paths()
    deadline = _Deadline(timeout)
    port = kafka_port()
    pid = _kafka_find_pid(p)
    if pid is not None:
        running = _kafka_running_port(p)
        if running is not None and running != port:
            raise StackError(
                f"kafka: our broker (pid {pid}) already runs on port {running}, but "
                f"{KAFKA_PORT_ENV} asks for {port}: run `stack.py down --kafka-only` first"
            )
        meta = _kafka_ready(port)
        if meta is None:
            _say(f"kafka: pid {pid} is running but not answering yet, waiting ...")
            meta = _kafka_wait_ready(p, pid, port, deadline)
        _say(f"kafka: already running (pid {pid}) on {HOST}:{port}, reusing")
        return False
    p.kafka_pid.unlink(missing_ok=True)
    _kafka_port_check(port)
    resolve_kafka_jars()
    deadline = _Deadline(timeout)
    p.kafka_run.mkdir(parents=True, exist_ok=True)
    p.kafka_props.write_text(_kafka_properties(p, port))
    t0 = time.monotonic()
    _kafka_format(p)
    _say(f"kafka: starting broker on {HOST}:{port} (controller {port + 1}) ...")
    marks = _kafka_marks(p)
    cds = _cds_opts(p)
    pid = _spawn_detached(
        _java_cmd(p, "kafka.Kafka", str(p.kafka_props), extra=cds), p.kafka_run, p.kafka_console
    )
    p.kafka_pid.write_text(f"{pid}\n")
    try:
        meta = _kafka_wait_ready(p, pid, port, deadline, marks)
        t_ready = time.monotonic()
        _kafka_warm_up(p, port, deadline, marks)
        t_warm = time.monotonic() - t_ready
    except BaseException:
        _kafka_down(quiet=True)
        raise
    _cds_check(p, cds)
    _say(
        f"kafka: ready in {time.monotonic() - t0:.1f}s (coordinators {t_warm:.1f}s; pid "
        f"{pid}, cluster {meta.cluster_id}), log {_rel(p.kafka_log)}"
    )
    return True


def _kafka_down(quiet: bool = False) -> None:
    p = _paths()
    pid = _kafka_find_pid(p)
    if pid is None:
        if p.kafka_pid.exists():
            p.kafka_pid.unlink(missing_ok=True)
        if not quiet:
            _say("kafka: not running")
        return
    _say(f"kafka: stopping pid {pid} ...")
    t0 = time.monotonic()
    _terminate(pid, "kafka", KAFKA_STOP_GRACE)
    p.kafka_pid.unlink(missing_ok=True)
    _say(f"kafka: stopped in {time.monotonic() - t0:.1f}s")


# --------------------------------------------------------------------------- PostgreSQL

_PG_TOOLS: Final = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")


def _has_pg_tools(d: Path) -> bool:
    return all((d / t).is_file() for t in _PG_TOOLS)


def _pg_bindir(p: _Paths) -> Path:
    """Server binaries: matching an existing cluster's version first, then pg_config,
    then PATH, then the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        major = (p.pg_data / "PG_VERSION").read_text().strip()
        candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    for tool in ("pg_ctl", "initdb"):
        found = shutil.which(tool)
        if found:
            candidates.append(Path(found).resolve().parent)

    def _ver(d: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", d.parent.name)) or (0,)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_ver, reverse=True)
    for d in candidates:
        if _has_pg_tools(d):
            return d
    raise StackError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres, psql, pg_isready) not found "
        "via pg_config --bindir, PATH or /usr/lib/postgresql/*/bin"
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _pg_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise StackError(
            f"running as root, but there is no '{PG_OS_USER}' system user to run PostgreSQL "
            "(initdb/postgres refuse root); create it or run as a normal user"
        ) from None


def _pg_wrap(cmd: list[str]) -> list[str]:
    """Run as the postgres system user when we are root (postgres refuses root)."""
    if not _as_root():
        return cmd
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", PG_OS_USER, "--", *cmd]


def _pg_run(cmd: list[str], timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8" if Path("/usr/lib/locale/C.utf8").exists() else "C"
    return subprocess.run(
        _pg_wrap(cmd),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=max(timeout, 1.0),
        check=False,
        start_new_session=True,
    )


def _pg_socket_dir(p: _Paths) -> Path:
    """.run/pg, unless the socket path would exceed the 107-byte AF_UNIX limit."""
    if len(f"{p.pg_run}/.s.PGSQL.{pg_port()}.lock") <= 100:
        return p.pg_run
    tag = hashlib.sha256(str(p.root).encode()).hexdigest()[:10]
    return Path("/tmp") / f"opexbridge-pg-{tag}"  # noqa: S108


def _pg_user_reaches(path: Path) -> bool:
    res = _pg_run(["/bin/sh", "-c", 'test -w "$1" && test -x "$1"', "sh", str(path)], 10, Path("/"))
    return res.returncode == 0


def _pg_prepare_dirs(p: _Paths) -> None:
    """Create .run/pg (and the socket folder); as root, hand them to the postgres user.

    When that user cannot traverse the checkout's path (e.g. a clone under /root, mode
    700) and no cluster exists yet, the cluster goes to /var/tmp/opexbridge-pg-<hash>
    and .run/pg becomes a symlink to it.
    """
    p.pg_run.mkdir(parents=True, exist_ok=True)
    if _as_root():
        u = _pg_user()
        os.chown(p.pg_run, u.pw_uid, u.pw_gid)
        if not _pg_user_reaches(p.pg_run):
            if (p.pg_data / "PG_VERSION").exists() or p.pg_link.is_symlink():
                blocked = [
                    str(a) for a in reversed(p.pg_run.parents) if not (a.stat().st_mode & 0o001)
                ]
                raise StackError(
                    f"pg: the '{PG_OS_USER}' user cannot reach {p.pg_run}; every parent "
                    f"folder must be traversable by it (chmod o+x). Not world-traversable: "
                    f"{', '.join(blocked)}"
                )
            tag = hashlib.sha256(str(p.root).encode()).hexdigest()[:10]
            outside = Path("/var/tmp") / f"opexbridge-pg-{tag}"  # noqa: S108
            outside.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chown(outside, u.pw_uid, u.pw_gid)
            shutil.rmtree(p.pg_link)
            p.pg_link.symlink_to(outside, target_is_directory=True)
            _say(
                f"pg: the '{PG_OS_USER}' user cannot traverse {p.root}; the cluster lives in "
                f"{outside} (.run/pg links there)"
            )
    sock = _pg_socket_dir(p)
    sock.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _as_root():
        u = _pg_user()
        os.chown(sock, u.pw_uid, u.pw_gid)
        if p.pg_log.exists():
            os.chown(p.pg_log, u.pw_uid, u.pw_gid)


def _pg_conf(p: _Paths) -> str:
    return f"""
# --- opexbridge local development (written by deploy/local/stack.py) ---
listen_addresses = '{HOST}'
unix_socket_directories = '{_pg_socket_dir(p)}'
max_connections = 200
shared_buffers = 128MB
work_mem = 8MB
maintenance_work_mem = 64MB
max_wal_size = 512MB
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
"""


_PG_HBA: Final = """\
# opexbridge local development: trust, local socket and 127.0.0.1 only.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
"""


def _pg_write_owned(path: Path, text: str, append: bool = False) -> None:
    with path.open("a" if append else "w") as fh:
        fh.write(text)
    if _as_root():
        u = _pg_user()
        os.chown(path, u.pw_uid, u.pw_gid)
        path.chmod(0o600)


def _pg_initdb(p: _Paths, bindir: Path, deadline: _Deadline) -> None:
    if (p.pg_data / "PG_VERSION").is_file():
        return
    if p.pg_data.exists():
        shutil.rmtree(p.pg_data)  # half-created leftovers
    locale = "C.UTF-8" if Path("/usr/lib/locale/C.utf8").exists() else "C"
    _say(f"pg: initdb {_rel(p.pg_data)} (UTF8, locale {locale}) ...")
    t0 = time.monotonic()
    res = _pg_run(
        [
            str(bindir / "initdb"),
            "-D",
            str(p.pg_data),
            f"--username={PG_SUPERUSER}",
            "--encoding=UTF8",
            f"--locale={locale}",
            "--auth=trust",
        ],
        deadline.left(),
        p.pg_run,
    )
    if res.returncode != 0:
        shutil.rmtree(p.pg_data, ignore_errors=True)
        out = (res.stdout + res.stderr).strip().splitlines()[-20:]
        raise StackError(f"pg: initdb failed (exit {res.returncode})\n  | " + "\n  | ".join(out))
    _pg_write_owned(p.pg_data / "postgresql.conf", _pg_conf(p), append=True)
    _pg_write_owned(p.pg_data / "pg_hba.conf", _PG_HBA)
    _say(f"pg: initdb done in {time.monotonic() - t0:.1f}s")


def _pg_pid(p: _Paths) -> int | None:
    """The postmaster pid when our cluster runs (postmaster.pid + process alive)."""
    pid = _read_pid(p.pg_pidfile)
    if pid is None or not _pid_alive(pid):
        return None
    argv = _cmdline(pid)
    if argv is not None and not any("postgres" in a for a in argv[:1]):
        return None
    return pid


def _pg_running_port(p: _Paths) -> int | None:
    try:
        lines = p.pg_pidfile.read_text().splitlines()
        return int(lines[3])
    except (OSError, ValueError, IndexError):
        return None


def _pg_ready(bindir: Path, port: int) -> bool:
    try:
        res = subprocess.run(
            [
                str(bindir / "pg_isready"),
                "-q",
                "-h",
                HOST,
                "-p",
                str(port),
                "-t",
                "2",
                "-U",
                PG_SUPERUSER,
                "-d",
                "postgres",
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0


def _psql(bindir: Path, port: int, sql: str, timeout: float = 30) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    res = subprocess.run(
        [
            str(bindir / "psql"),
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            HOST,
            "-p",
            str(port),
            "-U",
            PG_SUPERUSER,
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if res.returncode != 0:
        raise StackError(f"pg: psql failed: {sql}\n  | {res.stderr.strip()}")
    return res.stdout.strip()


def _pg_ensure_db(bindir: Path, port: int) -> None:
    # DB_USER / DB_NAME are module constants, not input: no injection.
    if _psql(bindir, port, f"SELECT 1 FROM pg_roles WHERE rolname = '{DB_USER}'") != "1":  # noqa: S608
        _psql(bindir, port, f"CREATE ROLE {DB_USER} LOGIN SUPERUSER")
        _say(f"pg: created role {DB_USER}")
    if _psql(bindir, port, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'") != "1":  # noqa: S608
        _psql(bindir, port, f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
        _say(f"pg: created database {DB_NAME}")


def _pg_wait_ready(p: _Paths, bindir: Path, port: int, deadline: _Deadline, mark: int = 0) -> None:
    while not _pg_ready(bindir, port):
        if _pg_pid(p) is None:
            raise StackError(
                "pg: postgres is not running (it exited during start-up)\n"
                + _tail(p.pg_log, since=mark)
            )
        if deadline.expired():
            raise StackError(
                f"pg: not ready on {HOST}:{port} after {deadline.seconds:.0f}s\n"
                + _tail(p.pg_log, since=mark)
            )
        time.sleep(0.2)


def _pg_up(timeout: float) -> bool:
    """Start PostgreSQL unless our cluster runs already. True when this call started it."""
    p = _paths()
    deadline = _Deadline(timeout)
    port = pg_port()
    bindir = _pg_bindir(p)
    pid = _pg_pid(p)
    if pid is not None:
        running = _pg_running_port(p)
        if running is not None and running != port:
            raise StackError(
                f"pg: our cluster (pid {pid}) already runs on port {running}, but "
                f"{PG_PORT_ENV} asks for {port}: run `stack.py down --pg-only` first"
            )
        _pg_wait_ready(p, bindir, port, deadline)
        _pg_ensure_db(bindir, port)
        _say(f"pg: already running (pid {pid}) on {HOST}:{port}, reusing")
        return False
    _pg_port_check(port)
    _pg_prepare_dirs(p)
    t0 = time.monotonic()
    _pg_initdb(p, bindir, deadline)
    _say(f"pg: starting PostgreSQL ({bindir.parent.name}) on {HOST}:{port} ...")
    t1 = time.monotonic()
    mark = _size(p.pg_log)
    res = _pg_run(
        [
            str(bindir / "pg_ctl"),
            "start",
            "-D",
            str(p.pg_data),
            "-l",
            str(p.pg_log),
            "-w",
            "-t",
            str(max(1, int(deadline.left()))),
            "-o",
            f"-p {port}",
        ],
        deadline.left() + 10,
        p.pg_run,
    )
    if res.returncode != 0:
        _pg_down(quiet=True)
        out = (res.stdout + res.stderr).strip()
        raise StackError(
            f"pg: pg_ctl start failed (exit {res.returncode}): {out}\n"
            + _tail(p.pg_log, since=mark)
        )
    try:
        _pg_wait_ready(p, bindir, port, deadline, mark)
        _pg_ensure_db(bindir, port)
    except BaseException:
        _pg_down(quiet=True)
        raise
    _say(
        f"pg: ready in {time.monotonic() - t1:.1f}s (total {time.monotonic() - t0:.1f}s, "
        f"pid {_pg_pid(p)}), log {_rel(p.pg_log)}"
    )
    return True


def _pg_down(quiet: bool = False) -> None:
    p = _paths()
    pid = _pg_pid(p)
    if pid is None:
        if not quiet:
            _say("pg: not running")
        return
    bindir = _pg_bindir(p)
    _say(f"pg: stopping pid {pid} (pg_ctl stop -m fast) ...")
    t0 = time.monotonic()
    res = _pg_run(
        [str(bindir / "pg_ctl"), "stop", "-D", str(p.pg_data), "-m", "fast", "-w", "-t", "60"],
        70,
        p.pg_run,
    )
    if res.returncode != 0 or not _wait_gone(pid, 5):
        _say(f"pg: pg_ctl stop failed ({(res.stdout + res.stderr).strip()}), signalling")
        _terminate(pid, "pg", 15)
        with contextlib.suppress(OSError):
            p.pg_pidfile.unlink()
    _say(f"pg: stopped in {time.monotonic() - t0:.1f}s")


# --------------------------------------------------------------------------- public API


def _services(kafka: bool, pg: bool) -> tuple[str, ...]:
    return tuple(n for n, on in ((KAFKA, kafka), (PG, pg)) if on)


def _kafka_port_check(port: int) -> None:
    for prt in (port, port + 1):
        if not _port_free(prt):
            raise StackError(
                f"kafka: {HOST}:{prt} is in use by another process (not our broker). "
                f"Set {KAFKA_PORT_ENV} to a free port (the controller uses that port + 1), "
                f"e.g. {KAFKA_PORT_ENV}={port + 100}"
            )


def _pg_port_check(port: int) -> None:
    if not _port_free(port):
        raise StackError(
            f"pg: {HOST}:{port} is in use by another process (not our cluster). "
            f"Set {PG_PORT_ENV} to a free port, e.g. {PG_PORT_ENV}={port + 100}"
        )


def _preflight(services: Sequence[str]) -> None:
    p = _paths()
    if KAFKA in services and _kafka_find_pid(p) is None:
        _kafka_port_check(kafka_port())
    if PG in services and _pg_pid(p) is None:
        _pg_port_check(pg_port())


def ensure_up(kafka: bool = True, pg: bool = True, timeout: float = DEFAULT_TIMEOUT) -> StackEnv:
    """Start what is not running (reusing what is), wait until ready, return the env.

    The result is the env mapping (KAFKA_BOOTSTRAP_SERVERS and/or DATABASE_URL) with a
    ``started`` attribute naming what this call started; pass it to ``stop`` when done.
    If anything fails, whatever this call started is stopped again before the error
    (``StackError``) propagates. ``timeout`` bounds each service's wait for readiness.
    """
    services = _services(kafka, pg)
    started: list[str] = []
    with _locked(wait=timeout + MVN_TIMEOUT):
        _preflight(services)  # fail on a foreign port before starting anything
        try:
            if KAFKA in services and _kafka_up(timeout):
                started.append(KAFKA)
            if PG in services and _pg_up(timeout):
                started.append(PG)
        except BaseException:
            if started:
                _say(f"start-up failed: stopping what this call started ({', '.join(started)})")
                _stop_names(started)
            raise
    return StackEnv(_env_for(services), started)


def _stop_names(names: Iterable[str]) -> None:
    names = set(names)
    errors: list[str] = []
    for name, fn in ((PG, _pg_down), (KAFKA, _kafka_down)):
        if name in names:
            try:
                fn()
            except (StackError, OSError, subprocess.SubprocessError) as exc:
                errors.append(f"{name}: {exc}")
    if errors:
        raise StackError("; ".join(errors))


def stop(started: StackEnv | Iterable[str]) -> None:
    """Stop the services named in ``started`` (a ``StackEnv`` from ``ensure_up``, or names
    such as ``["kafka", "pg"]``). Data is kept."""
    names = started.started if isinstance(started, StackEnv) else tuple(started)
    unknown = set(names) - {KAFKA, PG}
    if unknown:
        raise ValueError(f"unknown service names: {sorted(unknown)}")
    if names:
        with _locked(wait=120):
            _stop_names(names)


def down(kafka: bool = True, pg: bool = True) -> None:
    """Stop the selected services whoever started them (data is kept)."""
    with _locked(wait=120):
        _stop_names(_services(kafka, pg))


def reset(kafka: bool = True, pg: bool = True) -> None:
    """down, then delete the selected services' folders under .run/ (all data and logs)."""
    p = _paths()
    with _locked(wait=120):
        _stop_names(_services(kafka, pg))
        if kafka and p.kafka_run.exists():
            shutil.rmtree(p.kafka_run)
            _say(f"kafka: deleted {_rel(p.kafka_run)}")
        if pg:
            target, sock = p.pg_run, _pg_socket_dir(p)
            if sock != target:
                shutil.rmtree(sock, ignore_errors=True)
            if p.pg_link.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
                p.pg_link.unlink()
                _say(f"pg: deleted {target} and the {_rel(p.pg_link)} link")
            elif target.exists():
                shutil.rmtree(target)
                _say(f"pg: deleted {_rel(target)}")


def _kafka_status() -> tuple[bool, str]:
    p = _paths()
    port = kafka_port()
    pid = _kafka_find_pid(p)
    formatted = (p.kafka_data / "meta.properties").is_file()
    data = f"data {_rel(p.kafka_data)}" + ("" if formatted else " (not formatted)")
    if pid is None:
        stale = " (stale pid file)" if p.kafka_pid.exists() else ""
        busy = "" if _port_free(port) else f"; {HOST}:{port} is used by another process"
        return False, f"kafka: stopped{stale}{busy}; {data}"
    running = _kafka_running_port(p) or port
    meta = _kafka_ready(running)
    if meta is None:
        return False, f"kafka: pid {pid} running but NOT answering on {HOST}:{running}; {data}"
    note = "" if running == port else f" (but {KAFKA_PORT_ENV} asks for {port})"
    return running == port, (
        f"kafka: running (pid {pid}) on {HOST}:{running}{note}, answering (cluster "
        f"{meta.cluster_id}); {data}; log {_rel(p.kafka_log)}"
    )


def _pg_status() -> tuple[bool, str]:
    p = _paths()
    port = pg_port()
    pid = _pg_pid(p)
    inited = (p.pg_data / "PG_VERSION").is_file()
    data = f"data {_rel(p.pg_data)}" + ("" if inited else " (not initialised)")
    if pid is None:
        stale = " (stale postmaster.pid)" if p.pg_pidfile.exists() else ""
        busy = "" if _port_free(port) else f"; {HOST}:{port} is used by another process"
        return False, f"pg: stopped{stale}{busy}; {data}"
    running = _pg_running_port(p) or port
    try:
        ok = _pg_ready(_pg_bindir(p), running)
    except StackError:
        ok = _port_answers(running)
    if not ok:
        return False, f"pg: pid {pid} running but NOT accepting connections on {running}; {data}"
    note = "" if running == port else f" (but {PG_PORT_ENV} asks for {port})"
    return running == port, (
        f"pg: running (pid {pid}) on {HOST}:{running}{note}, accepting connections; "
        f"{data}; log {_rel(p.pg_log)}"
    )


def status_lines(kafka: bool = True, pg: bool = True) -> tuple[bool, list[str]]:
    """(all selected services up and answering, one line per service)."""
    results = []
    if kafka:
        results.append(_kafka_status())
    if pg:
        results.append(_pg_status())
    return all(ok for ok, _ in results), [line for _, line in results]


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="stack.py",
        description="Local Kafka (KRaft) + PostgreSQL for opex-bridge, under .run/ and .cache/.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    helps = {
        "up": "start what is not running (reuse what is), wait until ready, print the env",
        "down": "stop (SIGTERM, then SIGKILL; pg_ctl stop -m fast); data is kept",
        "status": "show each service's state (exit 0 when all selected are up, else 3)",
        "env": "print KAFKA_BOOTSTRAP_SERVERS=... and DATABASE_URL=... lines",
        "reset": "down, then delete .run/kafka and/or .run/pg (all data)",
    }
    for name, text in helps.items():
        sp = sub.add_parser(name, help=text, description=text)
        grp = sp.add_mutually_exclusive_group()
        grp.add_argument("--kafka-only", action="store_true", help="only Kafka")
        grp.add_argument("--pg-only", action="store_true", help="only PostgreSQL")
        if name == "up":
            sp.add_argument(
                "--timeout",
                type=float,
                default=DEFAULT_TIMEOUT,
                help=f"seconds to wait for each service (default {DEFAULT_TIMEOUT:.0f})",
            )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    kafka, pg = not args.pg_only, not args.kafka_only
    try:
        if args.cmd == "up":
            t0 = time.monotonic()
            env = ensure_up(kafka=kafka, pg=pg, timeout=args.timeout)
            _say(
                f"up in {time.monotonic() - t0:.1f}s"
                + (f" (started: {', '.join(env.started)})" if env.started else " (all reused)")
            )
            for k, v in env.items():
                print(f"{k}={v}")
        elif args.cmd == "down":
            down(kafka=kafka, pg=pg)
        elif args.cmd == "reset":
            reset(kafka=kafka, pg=pg)
        elif args.cmd == "status":
            ok, lines = status_lines(kafka=kafka, pg=pg)
            for line in lines:
                print(line)
            return 0 if ok else 3
        elif args.cmd == "env":
            for k, v in _env_for(_services(kafka, pg)).items():
                print(f"{k}={v}")
    except StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
