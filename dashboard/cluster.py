"""Several instances on one PostgreSQL behind HAProxy, on one machine: `python -m dashboard cluster`.

For trying the scale-out layout (SCALE-OUT.md §5, deploy/README.md), not for production: it migrates,
loads the demo data once, starts N `serve` processes on consecutive ports (distinct OT_INSTANCE_ID,
one shared OT_SECRET_KEY), starts HAProxy with deploy/haproxy.cfg in front of them, prints the URL
and the demo logins, and stops everything on Ctrl-C (or when any of them exits).

The HAProxy half (`haproxy_env`, `Balancer`) is shared with the cluster tests (tests/cluster/).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
# deploy/haproxy.cfg has a server line for each of these (OT_NODE_A ... OT_NODE_E).
NODE_NAMES = ("a", "b", "c", "d", "e")


class ClusterError(SystemExit):
    """A reason the cluster cannot start, said plainly on stderr (exit status 1)."""

    def __init__(self, message: str):
        super().__init__(f"cluster: {message}")


def haproxy_env(bind: str, nodes: Sequence[str], *, stats_socket: str | None = None) -> dict[str, str]:
    """The variables deploy/haproxy.cfg reads: where to listen and each instance's host:port, in order
    (the first is server `a`, whose pages get the cookie ot_node=a, and so on)."""
    if not 1 <= len(nodes) <= len(NODE_NAMES):
        raise ClusterError(f"deploy/haproxy.cfg has server lines for 1 to {len(NODE_NAMES)} instances, "
                           f"not {len(nodes)} (add OT_NODE_* lines there for more)")
    env = {"OT_LB_BIND": bind}
    env.update({f"OT_NODE_{name.upper()}": node for name, node in zip(NODE_NAMES, nodes)})
    if stats_socket:
        env["OT_LB_STATS"] = stats_socket
    return env


def stop_processes(processes: Sequence[subprocess.Popen], *, grace: float) -> None:
    """SIGTERM to each process still running, then up to `grace` seconds for each to exit, then SIGKILL."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def get_status(url: str, timeout: float = 2) -> int | None:
    """The HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@dataclass
class Balancer:
    """HAProxy in the foreground (`-db`) with deploy/haproxy.cfg; its log goes to `log_path`."""

    bind: str
    nodes: list[str]
    log_path: Path | None = None
    config: Path = HAPROXY_CONFIG
    stats_socket: str | None = None
    process: "subprocess.Popen[bytes] | None" = None
    env_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.bind}"

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OT_NODE_", "OT_LB_"))}
        return {**inherited, **haproxy_env(self.bind, self.nodes, stats_socket=self.stats_socket),
                **self.env_overrides}

    def check(self) -> None:
        """`haproxy -c` of the config with these addresses; raises with HAProxy's own words."""
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise ClusterError("haproxy is not installed (Debian: apt-get install haproxy)")
        done = subprocess.run([haproxy, "-c", "-q", "-f", str(self.config)], env=self.env(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ClusterError(f"{self.config} is not valid: {(done.stdout + done.stderr).strip()}")

    def start(self, timeout: float = 15) -> None:
        self.check()
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        try:
            self.process = subprocess.Popen([shutil.which("haproxy") or "haproxy", "-db", "-f", str(self.config)],
                                            env=self.env(), stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ClusterError(f"haproxy exited at start (status {self.process.returncode})"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            if get_status(f"{self.url}/status") == 200:
                return
            time.sleep(0.1)  # nothing to wait on but the port
        self.stop()
        raise ClusterError(f"haproxy did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], grace=5)
        self.process = None

    def admin(self, command: str) -> str:
        """One command on the stats socket (needs `stats_socket`), e.g. "show stat"."""
        assert self.stats_socket, "the balancer was started without a stats socket"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats_socket)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self, backend: str) -> dict[str, str]:
        """server name -> HAProxy's status of it in `backend` ("UP", "DOWN", "UP 1/2", ...)."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        out: dict[str, str] = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND", None):
                out[row["svname"]] = row.get("status", "")
        return out


# ---------------------------------------------------------------------------------------------- the command
def _require_postgres(url: str | None) -> str:
    if not url:
        raise ClusterError("set OT_DATABASE_URL to a PostgreSQL database, e.g. "
                           "postgresql+asyncpg://postgres@127.0.0.1:5432/ot_tracker (SQLite is one process)")
    if not url.startswith("postgresql"):
        raise ClusterError(f"OT_DATABASE_URL must be PostgreSQL for several instances (SQLite is one process); "
                           f"it names {url.split(':', 1)[0]}")
    return url


def instance_env(base: Mapping[str, str], *, port: int, instance_id: str, host: str = "127.0.0.1") -> dict[str, str]:
    """One instance's environment: its port and id; the balancer on this host is its trusted proxy."""
    env = dict(base)
    env.update(OT_HOST=host, OT_PORT=str(port), OT_INSTANCE_ID=instance_id, PYTHONUNBUFFERED="1")
    env.setdefault("OT_TRUSTED_PROXIES", "127.0.0.1")
    return env


def run(instances: int, *, base_port: int = 8081, bind: str = "127.0.0.1:8080",
        environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    _require_postgres(env.get("OT_DATABASE_URL"))
    haproxy_env(bind, ["x"] * instances)  # refuses a count the config has no lines for
    if shutil.which("haproxy") is None:
        raise ClusterError("haproxy is not installed (Debian: apt-get install haproxy)")
    host, _, lb_port = bind.rpartition(":")
    ports = [base_port + i for i in range(instances)]
    busy = [p for p in ports if not port_is_free("127.0.0.1", p)]
    if not port_is_free(host or "127.0.0.1", int(lb_port)):
        busy.insert(0, int(lb_port))
    if busy:
        raise ClusterError(f"port(s) {', '.join(map(str, busy))} already in use (--base-port, --bind)")
    if not env.get("OT_SECRET_KEY"):
        env["OT_SECRET_KEY"] = secrets.token_urlsafe(48)
        print("OT_SECRET_KEY was not set: generated one for this run, shared by every instance "
              "(sessions end when the cluster stops; set OT_SECRET_KEY to keep them).", flush=True)

    # Migrate and load the demo once, before any instance starts (the command prints the logins).
    print("Migrating and loading the demo data (once)...", flush=True)
    demo = subprocess.run([sys.executable, "-m", "dashboard", "demo"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    if demo.returncode != 0:
        raise ClusterError(f"migrate/demo failed:\n{(demo.stdout + demo.stderr).strip()}")

    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    balancer = Balancer(bind, [f"127.0.0.1:{p}" for p in ports])
    stopping = False

    def stop_all() -> None:
        balancer.stop()
        stop_processes([child for _, child in children], grace=15)

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, port in zip(NODE_NAMES, ports):
            child_env = instance_env(env, port=port, instance_id=f"{name}@127.0.0.1:{port}")
            children.append((name, subprocess.Popen([sys.executable, "-m", "dashboard", "serve"],
                                                    env=child_env, cwd=ROOT, stdout=subprocess.DEVNULL)))
        for (name, child), port in zip(children, ports):
            deadline = time.monotonic() + 60
            while get_status(f"http://127.0.0.1:{port}/status") != 200:
                if child.poll() is not None or stopping:
                    raise ClusterError(f"instance {name} (port {port}) exited at start; its output is above")
                if time.monotonic() > deadline:
                    raise ClusterError(f"instance {name} (port {port}) not ready within 60s")
                time.sleep(0.2)
            print(f"  instance {name}: http://127.0.0.1:{port}  (OT_INSTANCE_ID {name}@127.0.0.1:{port})", flush=True)
        balancer.start()
        print(demo.stdout.strip())
        print(f"\nOT Tracker, {instances} instances behind HAProxy: {balancer.url}\n"
              f"(pages stick to one instance by the ot_node cookie; /parse and /graphql go to any; "
              f"Ctrl-C stops everything)", flush=True)
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    print(f"instance {name} exited (status {child.returncode}); HAProxy sends its pages elsewhere",
                          flush=True)
                    children.remove((name, child))
                    break
            if balancer.process is not None and balancer.process.poll() is not None:
                print("haproxy exited; stopping", flush=True)
                break
            if not children:
                print("no instance left; stopping", flush=True)
                break
            time.sleep(0.5)
    finally:
        print("Stopping...", flush=True)
        stop_all()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
