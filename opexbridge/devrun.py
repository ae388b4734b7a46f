"""``make run``: the whole suite on one machine, stopped cleanly by Ctrl-C.

Starts (or reuses) the local Kafka and PostgreSQL, applies topics and migrations,
starts every service process that exists, writes the endpoints to
``.run/endpoints.env`` and waits. Unless ``OPEXBRIDGE_DEMO=0``, it then runs the demo
(``python -m opexbridge.demo``, `opexbridge.demo`) in this terminal: demo users are
provisioned, funded and trade while a live view shows the pipeline. Ctrl-C (or SIGTERM)
stops the demo, the services and what this run started of the stack, so no process is
left behind.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / ".run"


@dataclass(frozen=True)
class Process:
    name: str
    argv: tuple[str, ...]
    url: str | None = None


def services() -> list[Process]:
    """The suite's long-running processes, in start order, for those that exist."""
    found: list[Process] = []
    for name, module, url in (
        ("opex_sandbox", "services.opex_sandbox", "http://127.0.0.1:8082"),
        ("user_sync", "services.user_sync", None),
        ("risk_engine", "services.risk_engine", None),
        ("order_gateway", "services.order_gateway", None),
        ("notifier", "services.notifier", "http://127.0.0.1:8000"),
    ):
        if (REPO / module.replace(".", "/") / "__main__.py").exists():
            found.append(Process(name, (sys.executable, "-m", module), url))
    return found


def demo_enabled(env: dict[str, str]) -> bool:
    """The demo runs unless ``OPEXBRIDGE_DEMO`` is 0, false, no or off."""
    return env.get("OPEXBRIDGE_DEMO", "1").strip().lower() not in ("0", "false", "no", "off")


def start_demo(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The demo in this terminal (its view on stdout, its log lines in .run/logs)."""
    log = (RUN / "logs" / "demo.log").open("ab")
    return subprocess.Popen(
        (sys.executable, "-m", "opexbridge.demo"),
        env=env,
        stderr=log,
        start_new_session=True,
    )


@dataclass
class RestartPolicy:
    """Restart a service that exits (as compose's ``restart: unless-stopped`` or a
    Kubernetes Deployment would), but at most ``limit`` times in ``window_s`` seconds:
    past that it is broken, and the whole run stops."""

    limit: int = 5
    window_s: float = 120.0
    exits: dict[str, list[float]] | None = None

    def may_restart(self, name: str, now: float) -> bool:
        """Record an exit of ``name`` at ``now``; True while within the limit."""
        exits = self.exits if self.exits is not None else {}
        self.exits = exits
        recent = [at for at in exits.get(name, []) if now - at < self.window_s]
        recent.append(now)
        exits[name] = recent
        return len(recent) <= self.limit


def load_stack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stack", REPO / "deploy/local/stack.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for name, child in children.items():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  {name} did not stop in time: killing it")
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def main() -> int:
    stack: Any = load_stack()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    started: Any = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    demo: dict[str, subprocess.Popen[bytes]] = {}
    try:
        started = stack.ensure_up()
        env = {**os.environ, **stack.endpoints()}
        for step in (["topics", "apply", "--fix"], ["migrate"]):
            subprocess.run([sys.executable, "-m", "opexbridge.cli", *step], env=env, check=True)
        (RUN / "logs").mkdir(parents=True, exist_ok=True)
        procs = {proc.name: proc for proc in services()}

        def spawn(proc: Process) -> subprocess.Popen[bytes]:
            log = (RUN / "logs" / f"{proc.name}.log").open("ab")
            return subprocess.Popen(
                proc.argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        for proc in procs.values():
            children[proc.name] = spawn(proc)
        policy = RestartPolicy()
        endpoints = {
            "KAFKA_BOOTSTRAP_SERVERS": env["KAFKA_BOOTSTRAP_SERVERS"],
            "DATABASE_URL": env["DATABASE_URL"],
            "OPEX_API_URL": env.get("OPEX_API_URL", "http://127.0.0.1:8082"),
            "NOTIFIER_URL": env.get("NOTIFIER_URL", "http://127.0.0.1:8000"),
        }
        (RUN / "endpoints.env").write_text("".join(f"{k}={v}\n" for k, v in endpoints.items()))
        print("\nopex-bridge is up:")
        for key, value in endpoints.items():
            print(f"  {key}={value}")
        print(f"  services: {', '.join(children) or 'none yet'} (logs in .run/logs/)")
        print("  endpoints written to .run/endpoints.env; Ctrl-C stops everything\n")
        if demo_enabled(env):
            print(
                "  starting the demo: users provisioned, funded and trading in a minute "
                "(OPEXBRIDGE_DEMO=0 make run to skip it; log: .run/logs/demo.log)\n"
            )
            demo["demo"] = start_demo(env)
        while True:
            for name, child in list(children.items()):
                if child.poll() is not None:
                    print(f"  {name} exited with {child.returncode}; see .run/logs/{name}.log")
                    if not policy.may_restart(name, time.monotonic()):
                        print(f"  {name} keeps exiting: stopping everything")
                        return 1
                    print(f"  restarting {name}")
                    children[name] = spawn(procs[name])
            if "demo" in demo and demo["demo"].poll() is not None:
                code = demo.pop("demo").returncode
                if code:
                    print(f"  the demo stopped with {code}; see .run/logs/demo.log")
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        _stop(demo)
        _stop(children)
        if started is not None:
            stack.stop(started)
        kept = (
            ""
            if started is None or started.started
            else " (Kafka and PostgreSQL were already running: left as they were)"
        )
        print(f"stopped{kept}")


if __name__ == "__main__":
    sys.exit(main())
