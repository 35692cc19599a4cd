"""The status page (`/ui/`) in a real headless browser (Debian's chromium
and chromedriver, driven by Selenium) against three real keel processes on
loopback. No Docker needed.

- First visit: only the token form, and no API call is made without a
  token (so no 401 in the console).
- With the token: the page shows the cluster id, the leader every node
  agrees on, three members with their health; the token is in session
  storage only, never in the URL or local storage.
- It refreshes by itself: after a leader transfer it shows the new leader,
  and after the leader is killed it shows the leader elected next and the
  killed node's last contact going stale.
- The browser console holds no error at any point.

Screenshots go to $KEEL_TEST_OUTPUT/status-page/ (default
deploy/tests/output/status-page/)."""

import os
import shutil
from pathlib import Path

import pytest

import report
from process_cluster import ProcessCluster
from waiting import wait_until

OUTPUT = Path(os.environ.get("KEEL_TEST_OUTPUT", Path(__file__).resolve().parent / "output")) / "status-page"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def cluster(tmp_path, request):
    c = ProcessCluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is None or failed.failed:
            print(c.logs())
        c.stop()


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the status page test needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400", "--no-proxy-server"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """Console entries of level SEVERE since the last call."""
    return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def member_rows(driver) -> dict[str, dict]:
    """The members table: id -> state and last-contact cell, read in one
    script call (the page rebuilds the rows on every refresh)."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#members tbody tr')).map(tr => "
        "({id: tr.dataset.id, state: tr.dataset.state, "
        "last_contact: tr.cells[5].textContent, last_contact_class: tr.cells[5].className}));"
    )
    return {r["id"]: r for r in rows}


def shot(driver, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_status_page_follows_the_cluster(cluster, browser):
    # The page is read through a node that stays up the whole test.
    leader = wait_until("a leader", lambda: cluster.leader(1), 30)
    page_node = next(n for n in (1, 2, 3) if n != leader)
    successor = next(n for n in (1, 2, 3) if n not in (leader, page_node))
    cluster_id = cluster.api(page_node).cluster()["cluster_id"]
    for n in range(3):
        r = cluster.api(page_node).grant(f"page/{n}")
        assert r.status == 201, r.body

    browser.get(cluster.url(page_node) + "/ui")
    wait_until("the token form", lambda: browser.find_element("id", "login").is_displayed(), 20)
    assert not browser.find_element("id", "status").is_displayed()
    assert console_errors(browser) == []

    browser.find_element("id", "token").send_keys(cluster.token)
    browser.find_element("css selector", "#login-form button").click()
    wait_until(f"the page showing leader node {leader}", lambda: text(browser, "leader") == f"node {leader}", 20)
    wait_until("three members", lambda: len(member_rows(browser)) == 3, 20)
    assert text(browser, "cluster-id") == cluster_id
    assert int(text(browser, "term")) >= 1
    assert int(text(browser, "commit-index")) >= 1
    assert text(browser, "phase") == "ready"
    assert text(browser, "seal") == "unsealed"
    assert text(browser, "crl-number").isdigit()
    wait_until("the three leases counted", lambda: text(browser, "leases").startswith("active 3,"), 20)
    assert text(browser, "expiry-debt") == "none"
    wait_until("the events list", lambda: "leads in term" in text(browser, "events"), 20)
    # The token: session storage only, never in a URL or local storage.
    assert browser.execute_script("return sessionStorage.getItem('keel-token')") == cluster.token
    assert browser.execute_script("return window.localStorage.length") == 0
    assert cluster.token not in browser.current_url
    shot(browser, "1-loaded")

    # Leadership moves: the page follows without a reload.
    r = cluster.api(page_node).request("POST", "/v1/cluster/transfer-leader", {"to": successor}, timeout=20)
    assert r.status == 200, r.body
    wait_until(f"the page showing leader node {successor}", lambda: text(browser, "leader") == f"node {successor}", 20)
    wait_until("the transfer in the events", lambda: f"node {successor} leads in term" in text(browser, "events"), 20)
    shot(browser, "2-after-transfer")

    # The leader dies: the page shows who leads next, and the dead node's
    # last contact going stale.
    cluster.kill(successor)
    new_leader = wait_until("a new leader", lambda: (lambda l: l if l not in (None, successor) else None)(cluster.leader(page_node)), 30)
    wait_until(f"the page showing leader node {new_leader}", lambda: text(browser, "leader") == f"node {new_leader}", 20)
    def dead_shown() -> bool:
        row = member_rows(browser).get(str(successor)) or {}
        print("row of the killed node:", row)
        return row.get("state") == "unreachable" or "bad" in row.get("last_contact_class", "")

    wait_until(f"node {successor} shown unreachable or stale", dead_shown, 20)
    shot(browser, "3-after-kill")

    # Reloading the page keeps the token (same tab), and still no errors.
    browser.refresh()
    wait_until("the page after a reload", lambda: text(browser, "leader") == f"node {new_leader}", 20)
    errors = console_errors(browser)
    assert errors == [], errors
    report.line(f"status page: screenshots in {OUTPUT}")
