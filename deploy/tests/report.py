"""Figures the deployment tests measured, printed at the end of the pytest
run (conftest.py) so run.sh's output carries them."""

LINES: list[str] = []


def line(text: str) -> None:
    """Records one report line (and prints it, for -s runs)."""
    LINES.append(text)
    print(f"[report] {text}", flush=True)
