"""A minimal client of one keel node's REST API, over loopback only.

Standard library only (http.client: no proxy settings apply). Connection
failures are answers too (`Reply.status is None`), because the fault tests
expect nodes to be down."""

import http.client
import json
from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass
class Reply:
    """What one request got: a status and body, or a transport error."""

    status: int | None
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def code(self) -> str | None:
        """The API error code (`no_leader`, ...) of an error body."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


class Node:
    """One node's API as published on 127.0.0.1:`port`."""

    def __init__(self, name: str, port: int, token: str, host: str = "127.0.0.1"):
        self.name = name
        self.host = host
        self.port = port
        self.token = token

    def __repr__(self) -> str:
        return f"Node({self.name} @ {self.host}:{self.port})"

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        auth: bool = True,
    ) -> Reply:
        """Sends one request on a fresh connection and reads the answer."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, http.client.HTTPException) as e:
            return Reply(status=None, error=f"{type(e).__name__}: {e}")
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Reply(status=resp.status, body=parsed, headers=resp_headers)

    # --- health and cluster ---------------------------------------------

    def ready(self) -> bool:
        """/readyz answers 200."""
        return self.request("GET", "/readyz", auth=False, timeout=3).status == 200

    def live(self) -> bool:
        """/livez answers 200."""
        return self.request("GET", "/livez", auth=False, timeout=3).status == 200

    def cluster(self) -> dict | None:
        """This node's view of the cluster, or None if it does not answer."""
        r = self.request("GET", "/v1/cluster", timeout=3)
        return r.body if r.status == 200 and isinstance(r.body, dict) else None

    # --- leases -----------------------------------------------------------

    def grant(self, name: str, idempotency_key: str | None = None, timeout: float = 15.0) -> Reply:
        """POST /v1/leases for a one-hour lease named `name`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/v1/leases", {"ttl": "1h", "name": name}, headers, timeout)

    def get_lease(self, lease_id: str, consistency: str = "linearizable") -> Reply:
        """GET /v1/leases/{id}."""
        return self.request("GET", f"/v1/leases/{lease_id}?consistency={consistency}", timeout=10)

    def list_leases(self, prefix: str, consistency: str = "linearizable", max_pages: int = 200) -> list[dict]:
        """Every lease whose name starts with `prefix` (follows cursors, at
        most `max_pages` pages of 1000). Raises if the node does not answer."""
        items: list[dict] = []
        cursor = None
        for _ in range(max_pages):
            path = f"/v1/leases?prefix={quote(prefix)}&limit=1000&consistency={consistency}"
            if cursor:
                path += f"&cursor={quote(cursor)}"
            r = self.request("GET", path, timeout=15)
            if r.status != 200 or not isinstance(r.body, dict):
                raise RuntimeError(f"{self.name}: list {prefix!r} -> {r.status} {r.error or r.body}")
            items.extend(r.body.get("items", []))
            cursor = r.body.get("next_cursor")
            if not cursor:
                return items
        raise RuntimeError(f"{self.name}: list {prefix!r} has more than {max_pages} pages")
