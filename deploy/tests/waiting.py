"""Waiting on conditions with deadlines: the only way these tests wait.

Every loop here is bounded twice, by a deadline and by a count, so a test
never hangs on a condition that does not come."""

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_until(what: str, condition: Callable[[], T], timeout: float, poll: float = 0.25) -> T:
    """Returns the first truthy value of `condition()` (exceptions count as
    false) within `timeout` seconds, polling every `poll` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    last_value: object = None
    for _ in range(int(timeout / poll) + 2):
        try:
            value = condition()
            if value:
                return value
            last_value = value
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last_error = e
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(poll, remaining))
    detail = f"last error: {last_error!r}" if last_error else f"last value: {last_value!r}"
    raise WaitTimeout(f"{what}: not within {timeout:.0f}s ({detail})")
