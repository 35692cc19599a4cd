"""A client that writes continuously through whichever nodes answer, and
the check that none of its acknowledged writes was lost.

Each write is a lease grant with a unique name and an `Idempotency-Key`
equal to that name: a write that failed ambiguously (a node died, a commit
timed out) is retried on another node with the same key, so it is applied
at most once and, when acknowledged, counted once. A 503 must carry
`Retry-After`; any other 5xx is a defect and is recorded as one."""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from keelapi import Node


@dataclass
class WriteStats:
    """What the writer saw."""

    attempted: int = 0
    acknowledged: dict[str, str] = field(default_factory=dict)  # name -> lease id
    ack_times: list[float] = field(default_factory=list)
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)  # "201", "503 no_leader", "conn", ...
    defects: list[str] = field(default_factory=list)  # 5xx other than 503+Retry-After, odd 4xx
    samples: dict[str, str] = field(default_factory=dict)  # first message per refusal kind
    abandoned: int = 0  # writes given up on after their retry deadline
    started: float = 0.0
    stopped: float = 0.0

    def longest_gap(self, since: float | None = None, until: float | None = None) -> float:
        """Longest time without an acknowledged write between `since` and
        `until` (default: the writer's whole run)."""
        start = self.started if since is None else since
        end = self.stopped if until is None else until
        points = [start] + [t for t in self.ack_times if start <= t <= end] + [end]
        return max(b - a for a, b in zip(points, points[1:]))

    def acks_between(self, since: float, until: float) -> int:
        """Acknowledged writes in [since, until]."""
        return sum(1 for t in self.ack_times if since <= t <= until)


class Writer(threading.Thread):
    """Writes leases named `<prefix>-<n>` until stopped (or its bounds)."""

    def __init__(
        self,
        nodes: list[Node],
        prefix: str,
        max_writes: int = 20_000,
        max_seconds: float = 300.0,
        give_up_after: float = 30.0,
    ):
        super().__init__(name=f"writer-{prefix}", daemon=True)
        self.nodes = nodes
        self.prefix = prefix
        self.max_writes = max_writes
        self.max_seconds = max_seconds
        self.give_up_after = give_up_after
        self.stats = WriteStats()
        self._stop_requested = threading.Event()
        self._stop_at = float("inf")
        self._lock = threading.Lock()
        self._next_node = 0

    # --- control ------------------------------------------------------------

    def __enter__(self) -> "Writer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> WriteStats:
        """Asks the writer to stop after its current write and waits for it."""
        self._stop_at = time.monotonic()
        self._stop_requested.set()
        self.join(timeout=self.give_up_after + 20)
        if self.is_alive():
            raise AssertionError("writer did not stop")
        return self.stats

    def acked_count(self) -> int:
        with self._lock:
            return len(self.stats.acknowledged)

    # --- the loop -----------------------------------------------------------

    def run(self) -> None:
        s = self.stats
        s.started = time.monotonic()
        end = s.started + self.max_seconds
        try:
            for n in range(self.max_writes):
                if self._stop_requested.is_set() or time.monotonic() >= end:
                    break
                name = f"{self.prefix}-{n:06d}"
                s.attempted += 1
                lease_id = self._write_one(name)
                if lease_id is None:
                    s.abandoned += 1
                    continue
                with self._lock:
                    s.acknowledged[name] = lease_id
                    s.ack_times.append(time.monotonic())
        finally:
            s.stopped = time.monotonic()

    def _write_one(self, name: str) -> str | None:
        """Retries `name` across nodes until acknowledged or its deadline
        (once a stop is requested, an in-doubt write gets 10 s more at most)."""
        s = self.stats
        deadline = time.monotonic() + self.give_up_after
        failures = 0
        # Bounded: rounds of one request per node, paced 0.1 s apart.
        for _ in range(int(self.give_up_after / 0.1 + 1) * len(self.nodes)):
            now = time.monotonic()
            if now >= deadline or (self._stop_requested.is_set() and now >= self._stop_at + 10):
                return None
            node = self.nodes[self._next_node % len(self.nodes)]
            self._next_node += 1
            reply = node.grant(name, idempotency_key=name)
            s.requests += 1
            if reply.status == 201 and isinstance(reply.body, dict) and reply.body.get("id"):
                s.statuses["201"] += 1
                return reply.body["id"]
            failures += 1
            kind = "connection error" if reply.status is None else f"{reply.status} {reply.code}"
            s.samples.setdefault(kind, (reply.error or str(reply.body))[:160])
            if reply.status is None:
                s.statuses["connection error"] += 1
            elif reply.status == 503:
                s.statuses[f"503 {reply.code}"] += 1
                if "retry-after" not in reply.headers:
                    s.defects.append(f"{node.name}: 503 {reply.code} without Retry-After")
            elif reply.status >= 500:
                s.statuses[f"{reply.status} {reply.code}"] += 1
                s.defects.append(f"{node.name}: {reply.status} {reply.body}")
            else:
                s.statuses[f"{reply.status} {reply.code}"] += 1
                s.defects.append(f"{node.name}: unexpected {reply.status} {reply.body}")
                return None
            if failures % len(self.nodes) == 0:
                # Every node refused this round: pace the retries.
                time.sleep(0.1)
        return None

    # --- reporting ----------------------------------------------------------

    def report(self, label: str, lost: int) -> str:
        s = self.stats
        others = ", ".join(f"{k}: {v}" for k, v in sorted(s.statuses.items()) if k != "201") or "none"
        return (
            f"{label}: writes attempted {s.attempted}, acknowledged {len(s.acknowledged)}, "
            f"lost {lost}, longest window without an acknowledged write {s.longest_gap():.2f}s "
            f"(requests {s.requests}; refusals {others}; abandoned {s.abandoned}; defects {len(s.defects)})"
            + "".join(f"\n    first {k}: {v}" for k, v in sorted(s.samples.items()) if k.startswith("5"))
        )


def find_lost(nodes: list[Node], acknowledged: dict[str, str], prefix: str, timeout: float = 60.0) -> dict:
    """Checks every acknowledged write on every node.

    Each node must, within `timeout`, hold every acknowledged lease in its
    local state (it caught up), and a linearizable list through the first
    node must hold them all with no name twice. Returns
    {"lost": names missing from the linearizable list, "duplicates": names
    listed twice, "behind": {node: missing count} for nodes that never caught
    up}."""
    from waiting import WaitTimeout, wait_until

    want = set(acknowledged.values())
    behind: dict[str, int] = {}
    for node in nodes:
        missing: set[str] = set(want)

        def caught_up() -> bool:
            nonlocal missing
            have = {item["id"] for item in node.list_leases(prefix, consistency="local")}
            missing = want - have
            return not missing

        try:
            wait_until(f"{node.name} holds every acknowledged write", caught_up, timeout, poll=0.5)
        except WaitTimeout:
            behind[node.name] = len(missing)
    items = nodes[0].list_leases(prefix)
    names = Counter(item.get("name") for item in items)
    ids = {item["id"] for item in items}
    lost = sorted(name for name, lease_id in acknowledged.items() if lease_id not in ids)
    duplicates = sorted(name for name, count in names.items() if count > 1)
    return {"lost": lost, "duplicates": duplicates, "behind": behind}
