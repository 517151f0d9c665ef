"""Several processes, one account limit: the per-process request budget, old rule against new.

Run: ``.venv/bin/python bench/ratelimit_fleet.py [--processes 4] [--callers 8] [--seconds 40]
[--rate 10] [--limit 8] [--rules old,new]``

Starts the emulator with a rate limit of ``--limit`` requests per second (its fixed one-second
window per key, answering ``429`` with ``Retry-After: 1``), creates one generation, then for each
rule starts ``--processes`` separate Python processes. Each has one :class:`RivyaClient` budget
of ``--rate`` requests per second (``max_requests_per_second``) and ``--callers`` threads that
keep asking for the generation's status, with a create every fifth call, for ``--seconds``.
Each process sends from its own loopback address (127.0.0.11, .12, ...), so the emulator's request
log tells the processes apart. The rule ``old`` is the budget before issue #17's fix, kept below
as :class:`OldRequestBudget`; ``new`` is ``rivya_provider.api.ratelimit`` as it is.

Printed per rule: the accepted and ``429`` answers per second (all processes), the accepted
throughput from the first ``429`` to the end of the run, the ``429`` count and share, calls that
failed after their retries, each budget's mean rate over the second half, and requests that
reached the emulator inside a ``Retry-After`` of their own process (more than 0.1 s after that
``429`` was answered, so not one already in flight). Figures only; it asserts nothing (tests/api/
test_api_ratelimit_emulator.py asserts the core of it). Every process it starts ends with it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from rivya_provider.api import ratelimit  # noqa: E402
from rivya_provider.api.client import RivyaClient  # noqa: E402
from rivya_provider.api.config import ClientConfig  # noqa: E402
from rivya_provider.api.errors import RivyaError  # noqa: E402
from rivya_provider.api.models import GenerationRequest  # noqa: E402

#: A request arriving this soon after its process's 429 was answered was already on its way (the
#: 429 not yet handled by the client; the distributed e2e allows the same 0.1 s).
IN_FLIGHT_SLACK = 0.1
#: The emulator's Retry-After for its one-second window (``max(1, ceil(rest of the window))``).
RETRY_AFTER = 1.0


class OldRequestBudget:
    """The budget before the fix (baseline copy): fixed waits that a 429 left standing.

    ``reserve_slot``/``recheck`` adapt it to today's ``ClientCore._pace``, which then behaves as
    it did: reserve once, sleep, and after each sleep wait only for what is left of a
    ``Retry-After`` (``blocked_for``), never for a new place in the queue.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.configured = float(rate)
        self.rate = float(rate)
        self.burst = max(1.0, float(rate))
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()
        self._blocked_until = 0.0
        self._last_throttle = -float("inf")
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        previous, self._updated = self._updated, now
        elapsed = max(0.0, now - max(previous, self._blocked_until))
        if self.rate < self.configured:
            quiet = max(0.0, now - max(self._last_throttle, previous, self._blocked_until))
            self.rate = min(self.configured, self.rate + self.configured * 0.1 * quiet)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def now(self) -> float:
        return self._clock()

    def blocked_for(self) -> float:
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    def reserve(self) -> float:
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= 1.0
            held = max(0.0, self._blocked_until - now)
            return held + max(0.0, -self._tokens) / self.rate

    def reserve_slot(self) -> ratelimit.Slot:
        return ratelimit.Slot(self.reserve(), 0)

    def recheck(self, slot: ratelimit.Slot) -> ratelimit.Slot:
        return ratelimit.Slot(self.blocked_for(), 0)

    def throttled(self, retry_after: float | None, sent_at: float | None = None) -> None:
        with self._lock:
            now = self._clock()
            self._refill(now)
            if retry_after is not None and retry_after > 0:
                self._blocked_until = max(self._blocked_until, now + retry_after)
            if sent_at is not None and sent_at < self._last_throttle:
                return
            self.rate = max(self.configured * 0.05, self.rate / 2)
            self._last_throttle = now
            self._tokens = min(self._tokens, 0.0) + (1.0 if retry_after else 0.0)


# -- one process of the fleet ------------------------------------------------------------------


def _child(args: argparse.Namespace) -> None:
    """One process: ``--callers`` threads on one budget until ``--end``; prints a JSON line."""
    logging.getLogger("rivya_provider").setLevel(logging.ERROR)  # a retry warning per 429
    config = ClientConfig(
        api_key=args.key, base_url=args.base_url, max_requests_per_second=args.rate
    )
    if args.rule == "old":  # the budget every client of this process will share
        clock = time.time  # RivyaClient's default clock, part of the budget's key
        account = hashlib.sha256(args.key.encode()).hexdigest()[:16]
        key = (config.base_url, account, float(args.rate), clock)
        ratelimit._BUDGETS[key] = OldRequestBudget(args.rate, clock)  # type: ignore[assignment]
    transport = httpx.HTTPTransport(local_address=args.address)
    counts: collections.Counter[str] = collections.Counter()
    rates: list[float] = []
    lock = threading.Lock()
    with httpx.Client(transport=transport, timeout=30.0) as http:
        clients = [RivyaClient(config, http) for _ in range(args.callers)]
        budget = clients[0]._core.budget
        assert budget is not None

        def caller(index: int) -> None:
            client = clients[index]
            calls = 0
            while time.time() < args.end:
                calls += 1
                try:
                    if calls % 5 == 0:
                        request = GenerationRequest(model="qwen-image", prompt=f"fleet {calls}")
                        key = f"fleet-{args.rule}-{args.address}-{index}-{calls}"
                        client.create_generation(request, key)
                    else:
                        client.get_generation(args.generation)
                    outcome = "ok"
                except RivyaError as exc:
                    outcome = f"failed: {type(exc).__name__} {exc.status_code}"
                with lock:
                    counts[outcome] += 1

        time.sleep(max(0.0, args.start - time.time()))
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(args.callers)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            rates.append(budget.rate)
            time.sleep(1.0)
        for thread in threads:
            thread.join()
    print(json.dumps({"address": args.address, "counts": counts, "rates": rates}), flush=True)


# -- the fleet ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Figures:
    """What one run of the fleet measured."""

    rule: str
    seconds: float
    limit: int
    per_second: list[tuple[int, int]]  # (accepted, 429) per second from the start
    accepted_after_first_429: float  # requests/s
    first_429: float | None  # seconds from the start
    rejected: int
    accepted: int
    failures: dict[str, int]
    mean_rates: dict[str, float]  # per process address, over the second half
    violations: list[str]

    @property
    def share_429(self) -> float:
        return self.rejected / max(1, self.rejected + self.accepted)

    def share_429_after(self, second: int) -> float:
        """The share of 429s among the answers from ``second`` on."""
        ok = sum(accepted for accepted, _ in self.per_second[second:])
        rejected = sum(rejected for _, rejected in self.per_second[second:])
        return rejected / max(1, ok + rejected)


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def analyse(
    requests: Sequence[dict[str, Any]],
    *,
    rule: str,
    start: float,
    seconds: float,
    limit: int,
    children: Sequence[dict[str, Any]],
) -> Figures:
    """Figures of one run from the emulator's request log and the processes' own reports."""
    api = [r for r in requests if r["path"].startswith("/api/") and r.get("client")]
    events = sorted(
        ((_seconds(r["time"]) - start, r["client"].rsplit(":", 1)[0], r["status"], r) for r in api),
        key=lambda event: (event[0], event[3]["seq"]),
    )
    # past ``seconds``: calls already waiting for their budget or retrying when the run ended
    last = max((at for at, *_ in events), default=seconds)
    per_second = [(0, 0) for _ in range(int(max(seconds, last)) + 1)]
    for at, _, status, _ in events:
        second = max(0, int(at))
        ok, rejected = per_second[second]
        per_second[second] = (ok + (status < 400), rejected + (status == 429))
    first_429 = next((at for at, _, status, _ in events if status == 429), None)
    accepted_after = 0.0
    if first_429 is not None and first_429 < seconds:
        # during the run only: the calls still queued when it ended trickle in afterwards
        accepted = sum(
            1 for at, _, status, _ in events if first_429 <= at < seconds and status < 400
        )
        accepted_after = accepted / (seconds - first_429)
    violations = []
    by_process: dict[str, list[tuple[float, int, dict[str, Any]]]] = collections.defaultdict(list)
    for at, address, status, r in events:
        by_process[address].append((at, status, r))
    for address, seen in by_process.items():
        answered_429 = [
            at + (r["duration_ms"] or 0) / 1000 for at, status, r in seen if status == 429
        ]
        for at, _, r in seen:
            for answered in answered_429:
                if answered + IN_FLIGHT_SLACK < at < answered + RETRY_AFTER - 0.01:
                    violations.append(
                        f"{address}: seq {r['seq']} {at - answered:.3f} s after a 429"
                    )
                    break
    failures: collections.Counter[str] = collections.Counter()
    mean_rates = {}
    for child in children:
        failures.update({k: v for k, v in child["counts"].items() if k != "ok"})
        late = child["rates"][len(child["rates"]) // 2 :] or [0.0]
        mean_rates[child["address"]] = sum(late) / len(late)
    return Figures(
        rule=rule,
        seconds=seconds,
        limit=limit,
        per_second=per_second,
        accepted_after_first_429=accepted_after,
        first_429=first_429,
        rejected=sum(1 for _, _, status, _ in events if status == 429),
        accepted=sum(1 for _, _, status, _ in events if status < 400),
        failures=dict(failures),
        mean_rates=mean_rates,
        violations=violations,
    )


def run_fleet(
    emulator: Any,
    *,
    rule: str = "new",
    processes: int = 4,
    callers: int = 8,
    seconds: float = 40.0,
    rate: float = 10.0,
    limit: int = 8,
) -> Figures:
    """Run the fleet once against ``emulator`` (a started ``RivyaEmulator``); the emulator is
    reset first (its log, generations and settings), then limited to ``limit`` per second."""
    emulator.reset()
    emulator.configure(credits=10_000_000, rate_limit=None)
    setup = ClientConfig(
        api_key=emulator.api_key, base_url=emulator.base_url, max_requests_per_second=None
    )
    with RivyaClient(setup) as client:
        request = GenerationRequest(model="qwen-image", prompt="a lighthouse at dusk")
        generation = client.create_generation(request, f"fleet-setup-{rule}").generation.id
    emulator.configure(rate_limit=limit, rate_limit_window=1.0)
    start = time.time() + 2.0 + 0.3 * processes  # every child imported and waiting by then
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--child"]
    common = [
        f"--base-url={emulator.base_url}",
        f"--key={emulator.api_key}",
        f"--generation={generation}",
        f"--rule={rule}",
        f"--rate={rate}",
        f"--callers={callers}",
        f"--start={start}",
        f"--end={start + seconds}",
    ]
    children = [
        subprocess.Popen(
            [*command, *common, f"--address=127.0.0.{11 + index}"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(processes)
    ]
    reports = []
    try:
        for child in children:
            out, _ = child.communicate(timeout=seconds + 120.0)
            if child.returncode != 0:
                raise RuntimeError(f"a fleet process exited with {child.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    emulator.configure(rate_limit=None)
    return analyse(
        emulator.requests("/api/"),
        rule=rule,
        start=start,
        seconds=seconds,
        limit=limit,
        children=reports,
    )


def report(runs: Sequence[Figures]) -> str:
    """The per-second table of every run side by side, then each run's summary."""
    lines = ["second  " + "  ".join(f"{f.rule:>3}: ok 429" for f in runs)]
    for second in range(max(len(f.per_second) for f in runs)):
        cells = []
        for f in runs:
            ok, rejected = f.per_second[second] if second < len(f.per_second) else (0, 0)
            cells.append(f"      {ok:3d} {rejected:3d}")
        lines.append(f"{second:6d}  " + "  ".join(cells))
    for f in runs:
        first = "none" if f.first_429 is None else f"{f.first_429:.1f} s"
        lines += [
            "",
            f"rule {f.rule}: limit {f.limit}/s, {f.seconds:.0f} s",
            f"  first 429 at {first}; accepted after it {f.accepted_after_first_429:.2f}/s "
            f"({f.accepted_after_first_429 / f.limit:.0%} of the limit)",
            f"  accepted {f.accepted}, 429s {f.rejected} ({f.share_429:.1%} of answers); from "
            f"second 2 on (after the start's burst): {f.share_429_after(2):.1%}",
            f"  failed calls (after their retries): {f.failures or 0}",
            "  budgets' mean rate, second half: "
            + ", ".join(f"{a} {r:.2f}/s" for a, r in sorted(f.mean_rates.items())),
            f"  requests inside their own process's Retry-After: {len(f.violations)}"
            + (f" (e.g. {f.violations[0]})" if f.violations else ""),
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--rules", default="old,new")
    # one process of the fleet (started by the parent)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--base-url", "--key", "--generation", "--rule", "--address"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--end", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    from rivya_provider.testing.emulator_process import run_emulator

    runs = []
    with run_emulator(latency=2.0, credits=10_000_000) as emulator:
        for rule in args.rules.split(","):
            print(
                f"running rule {rule}: {args.processes} processes x {args.callers} callers, "
                f"{args.seconds:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            runs.append(
                run_fleet(
                    emulator,
                    rule=rule,
                    processes=args.processes,
                    callers=args.callers,
                    seconds=args.seconds,
                    rate=args.rate,
                    limit=args.limit,
                )
            )
    print(report(runs))


if __name__ == "__main__":
    main()
