"""Start the Rivya emulator (a subprocess by default) and drive its test controls over HTTP.

Usable outside pytest::

    from rivya_provider.testing.emulator_process import run_emulator

    with run_emulator(latency=1.0) as emulator:
        os.environ["AIRFLOW_CONN_RIVYA_DEFAULT"] = emulator.connection_json()
        ...
        assert emulator.charges_by_generation() == {generation_id: 4}
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from rivya_provider.emulator import DEFAULT_API_KEY

if TYPE_CHECKING:
    from rivya_provider.emulator import EmulatorServer

_READY = re.compile(r"Rivya emulator listening on (?P<url>\S+) \(API key: (?P<key>[^)]+)\)")


class EmulatorError(RuntimeError):
    """The emulator could not be started or a control call failed."""


class RivyaEmulator:
    """Handle on a running emulator: its URLs and key, and its test controls.

    :param base_url: API base URL, e.g. ``http://127.0.0.1:40123``.
    :param api_key: a key the emulator accepts.
    """

    def __init__(self, base_url: str, api_key: str) -> None:
        from rivya_provider.emulator import media_base_for

        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.media_base_url = media_base_for(self.base_url)
        self._http = httpx.Client(base_url=self.base_url, timeout=30.0)

    def __repr__(self) -> str:
        return f"RivyaEmulator(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the control client (the emulator itself keeps running)."""
        self._http.close()

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, f"/_emulator/{path}", json=body)
        if response.status_code >= 400:
            raise EmulatorError(
                f"{method} /_emulator/{path}: {response.status_code} {response.text}"
            )
        return response.json()

    # -- state -----------------------------------------------------------------------------

    def health(self) -> bool:
        """Whether the emulator answers."""
        try:
            return bool(self._control("GET", "health")["status"] == "ok")
        except (httpx.HTTPError, EmulatorError):
            return False

    def reset(self) -> None:
        """Back to the startup configuration; generations, files, ledger, log and faults cleared."""
        self._control("POST", "reset")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change runtime settings and return them all.

        Settings: ``latency`` (seconds, for generations created afterwards), ``api_disabled``
        (bool), ``credits`` (set the balance), ``fail_next`` (the next N creations fail),
        ``rate_limit``/``rate_limit_window`` (requests per key per window; None disables),
        ``media_base_url``, ``keys`` (``{"<key>": {"scopes": [...], "state": "active" |
        "revoked" | "expired", "label": "..."}}``, added to or replacing existing keys).
        """
        result: dict[str, Any] = self._control("POST", "config", settings)
        return result

    def add_key(
        self, key: str, *, scopes: Sequence[str] | None = None, state: str = "active"
    ) -> None:
        """Accept another key (all scopes unless ``scopes`` is given)."""
        spec: dict[str, Any] = {"state": state}
        if scopes is not None:
            spec["scopes"] = list(scopes)
        self.configure(keys={key: spec})

    def ledger(self) -> dict[str, Any]:
        """``{"balance": int, "entries": [{"generation_id", "type", "credits", "key", ...}]}``."""
        result: dict[str, Any] = self._control("GET", "ledger")
        return result

    def balance(self) -> int:
        """The current wallet balance (after settling finished generations)."""
        return int(self.ledger()["balance"])

    def charges_by_generation(self) -> dict[str, int]:
        """Credits charged per generation id (only succeeded generations are charged)."""
        charges: dict[str, int] = collections.defaultdict(int)
        for entry in self.ledger()["entries"]:
            if entry["type"] == "charge":
                charges[entry["generation_id"]] += int(entry["credits"])
        return dict(charges)

    def requests(self, path_prefix: str | None = None) -> list[dict[str, Any]]:
        """Requests received, oldest first (``method``, ``path``, ``query``, ``status``,
        ``headers_present``, ``host``, ``key``, ``client``, ``fault``...), optionally filtered
        by path."""
        entries: list[dict[str, Any]] = self._control("GET", "requests")
        if path_prefix is None:
            return entries
        return [e for e in entries if str(e["path"]).startswith(path_prefix)]

    def generations(self) -> list[dict[str, Any]]:
        """Every generation with its prompt, params, client_request_id and Idempotency-Key."""
        result: list[dict[str, Any]] = self._control("GET", "generations")
        return result

    # -- faults ----------------------------------------------------------------------------

    def inject_fault(
        self,
        path: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: str | float | None = None,
        action: str = "status",
        count: int = 1,
        method: str | None = None,
        match: str = "prefix",
        delay: float | None = None,
    ) -> None:
        """Answer the next ``count`` requests matching ``path`` with a fault.

        :param action: ``status`` (error envelope with ``status``/``code``, default 503),
            ``drop`` (close the connection without a response), ``drop_after`` (process the
            request, then drop the connection instead of answering) or ``delay``.
        :param match: ``prefix`` or ``exact`` path matching; ``method`` limits to one method.
        :param retry_after: value of a ``Retry-After`` header (status faults).
        :param delay: seconds to wait before the fault (or before serving normally).
        """
        rule: dict[str, Any] = {
            "path": path,
            "action": action,
            "count": count,
            "method": method,
            "match": match,
            "status": status,
            "code": code,
            "retry_after": None if retry_after is None else str(retry_after),
            "delay": delay,
        }
        self._control("POST", "faults", rule)

    def faults(self) -> list[dict[str, Any]]:
        """Active fault rules with their remaining counts."""
        result: list[dict[str, Any]] = self._control("GET", "faults")["faults"]
        return result

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._control("DELETE", "faults")

    # -- Airflow connection ----------------------------------------------------------------

    def connection_json(self, conn_type: str = "rivya") -> str:
        """JSON for ``AIRFLOW_CONN_<ID>``: ``{"conn_type", "host": <base URL>, "password"}``."""
        return json.dumps({"conn_type": conn_type, "host": self.base_url, "password": self.api_key})

    def connection_uri(self, conn_type: str = "rivya") -> str:
        """The same connection as an Airflow URI (the base URL is the percent-encoded host)."""
        host = quote(self.base_url, safe="")
        return f"{conn_type}://:{quote(self.api_key, safe='')}@{host}"


class EmulatorProcess:
    """``python -m rivya_provider.emulator`` as a child process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Sequence[str] = (DEFAULT_API_KEY,),
        credits: int = 1000,
        latency: float = 2.0,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.command = [
            python,
            "-m",
            "rivya_provider.emulator",
            "--host",
            host,
            "--port",
            str(port),
        ]
        for key in api_keys:
            self.command += ["--api-key", key]
        self.command += ["--credits", str(credits), "--latency", str(latency)]
        self.command += ["--exit-with-parent", *extra_args]
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = ""

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the child and wait until it prints its address and answers."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        ready = threading.Event()
        assert self.process.stdout is not None
        threading.Thread(target=self._drain, args=(self.process.stdout, ready), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmulatorError("the Rivya emulator did not start:\n" + "\n".join(self.output))
        _wait_until_healthy(self.base_url, deadline)

    def _drain(self, stream: IO[str], ready: threading.Event) -> None:
        for line in stream:
            line = line.rstrip("\n")
            self.output.append(line)
            found = _READY.search(line)
            if found and not ready.is_set():
                self.base_url, self.api_key = found["url"], found["key"]
                ready.set()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT the child, then kill it if it is still running; returns its exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode


class _InProcessServer:
    """The emulator served by uvicorn on a thread of this process."""

    def __init__(self, *, host: str, port: int, api_keys: Sequence[str], **config: Any) -> None:
        from rivya_provider.emulator import (
            EmulatorConfig,
            base_url_for,
            bind_socket,
            build_server,
            create_app,
        )

        self.sock = bind_socket(host, port)
        self.base_url = base_url_for(host, self.sock)
        self.api_key = api_keys[0]
        app = create_app(EmulatorConfig.with_keys(api_keys, **config))
        self.server: EmulatorServer = build_server(app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        _wait_until_healthy(self.base_url, time.monotonic() + timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10.0)
        self.sock.close()


def _wait_until_healthy(base_url: str, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/_emulator/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise EmulatorError(f"the Rivya emulator at {base_url} did not answer: {last!r}")


@contextlib.contextmanager
def run_emulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | Sequence[str] = DEFAULT_API_KEY,
    credits: int = 1000,
    latency: float = 2.0,
    in_process: bool = False,
    startup_timeout: float = 30.0,
) -> Iterator[RivyaEmulator]:
    """Run an emulator for the duration of the block and yield its :class:`RivyaEmulator`.

    :param port: 0 picks a free port.
    :param api_key: the accepted key(s); the handle uses the first.
    :param latency: seconds from create to a terminal status.
    :param in_process: serve on a thread of this process instead of a subprocess (faster to
        start, but shares the interpreter; the subprocess isolates event loops and signals).
    """
    keys = [api_key] if isinstance(api_key, str) else list(api_key)
    runner: EmulatorProcess | _InProcessServer
    if in_process:
        runner = _InProcessServer(
            host=host, port=port, api_keys=keys, credits=credits, latency=latency
        )
        runner.start(startup_timeout)
    else:
        runner = EmulatorProcess(
            host=host, port=port, api_keys=keys, credits=credits, latency=latency
        )
        runner.start(startup_timeout)
    handle = RivyaEmulator(runner.base_url, runner.api_key)
    try:
        yield handle
    finally:
        handle.close()
        runner.stop()
