"""Serving the emulator with uvicorn: socket binding, clean signal handling, CLI."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from rivya_provider.emulator._app import EmulatorApp, create_app
from rivya_provider.emulator._config import (
    DEFAULT_API_KEY,
    EmulatorConfig,
    KeyConfig,
    media_base_for,
)

_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class EmulatorServer(uvicorn.Server):
    """uvicorn server that ends with status 0 on SIGINT/SIGTERM and, optionally, with its parent.

    Stock uvicorn re-raises the captured signal after shutting down, which makes the process
    exit with -SIGTERM or a KeyboardInterrupt traceback; the emulator does not.
    """

    def __init__(self, config: uvicorn.Config, *, parent_pid: int | None = None) -> None:
        super().__init__(config)
        self.parent_pid = parent_pid

    def install_exit_signals(self) -> None:
        """Route SIGINT/SIGTERM to a graceful shutdown (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            for sig in _HANDLED_SIGNALS:
                signal.signal(sig, self.handle_exit)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Like uvicorn's, without re-raising the signal afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def on_tick(self, counter: int) -> bool:
        """Also stop once the parent process is gone (when ``parent_pid`` is set)."""
        if self.parent_pid is not None and counter % 10 == 0 and os.getppid() != self.parent_pid:
            self.should_exit = True
        return await super().on_tick(counter)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0 picks a free one)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def base_url_for(host: str, sock: socket.socket) -> str:
    """The base URL clients should use for a socket bound on ``host``."""
    port = sock.getsockname()[1]
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def build_server(
    app: EmulatorApp,
    *,
    log_level: str = "warning",
    access_log: bool = False,
    parent_pid: int | None = None,
) -> EmulatorServer:
    """A uvicorn server for ``app`` (uvloop and httptools when installed)."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        backlog=2048,
        timeout_keep_alive=30,
    )
    return EmulatorServer(config, parent_pid=parent_pid)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rivya_provider.emulator",
        description="Local Rivya Public API v1 emulator (test controls under /_emulator/).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted key, repeatable (default {DEFAULT_API_KEY})",
    )
    parser.add_argument("--credits", type=int, help="starting balance (default 1000)")
    parser.add_argument("--latency", type=float, help="seconds to a terminal status (default 2)")
    parser.add_argument("--media-base-url", help="base URL of result/file URLs")
    parser.add_argument(
        "--config", type=Path, help="JSON file with EmulatorConfig fields (flags override it)"
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the parent process exits"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Merge ``--config`` and the flags into an :class:`EmulatorConfig`."""
    data: dict[str, Any] = {}
    if args.config is not None:
        data = json.loads(args.config.read_text())
        if not isinstance(data, dict):
            raise SystemExit("--config must hold a JSON object")
    config = EmulatorConfig.from_mapping(data)
    overrides: dict[str, Any] = {}
    if args.api_keys:
        overrides["keys"] = {key: KeyConfig() for key in args.api_keys}
    for name in ("credits", "latency", "media_base_url"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return dataclasses.replace(config, **overrides) if overrides else config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; returns the exit status (0)."""
    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"rivya emulator: {exc}", file=sys.stderr)
        return 2
    server = build_server(
        create_app(config),
        log_level=args.log_level,
        access_log=args.access_log,
        parent_pid=os.getppid() if args.exit_with_parent else None,
    )
    server.install_exit_signals()
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"rivya emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    base_url = base_url_for(args.host, sock)
    media = config.media_base_url or media_base_for(base_url)
    first_key = next(
        (value for value, key in config.keys.items() if key.state == "active"),
        next(iter(config.keys)),
    )
    print(f"Rivya emulator listening on {base_url} (API key: {first_key})", flush=True)
    print(
        f"Media URLs use {media}; test controls under {base_url}/_emulator/ (loopback only). "
        "Stop with Ctrl+C.",
        flush=True,
    )
    with sock:
        server.run(sockets=[sock])
    return 0
