//! Helpers for the lease, account, seal and reload tests: wall-clock
//! arithmetic on the API's RFC 3339 times, bulk grants, paging through
//! lists, comparing what several nodes answer, scraping one counter from
//! `/metrics`, and running the `keel` CLI.
//!
//! Test and server run on the same machine, so the test's wall clock is the
//! servers' clock: a deadline the API reports can be compared with
//! [`now_ms`] directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::api::Api;
use crate::process::keel_bin;

/// Milliseconds since the Unix epoch on this machine's wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Waits until the wall clock reaches `at` (epoch milliseconds): a
/// deadline the test set itself. Panics if that is more than a minute away.
pub async fn wait_until(at: u64) {
    let wait = at.saturating_sub(now_ms());
    assert!(wait <= 60_000, "refusing to wait {wait} ms");
    while now_ms() < at {
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()).min(50))).await;
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses the UTC RFC 3339 times keel returns (`2026-11-21T10:00:00Z`,
/// `2026-11-21T10:00:00.25Z`) into epoch milliseconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a UTC RFC 3339 time");
    let body = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .ok_or_else(bad)?;
    let (date, time) = body.split_once('T').ok_or_else(bad)?;
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let (whole, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<&str> = whole.split(':').collect();
    if d.len() != 3 || t.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let days = days_from_civil(num(d[0])?, num(d[1])?, num(d[2])?);
    let secs = days * 86_400 + num(t[0])? * 3_600 + num(t[1])? * 60 + num(t[2])?;
    let ms_frac = format!("{frac:0<3}")[..3]
        .parse::<i64>()
        .map_err(|_| bad())?;
    u64::try_from(secs * 1000 + ms_frac).map_err(|_| bad())
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// A time field of a lease or account, in epoch milliseconds.
pub fn time_of(v: &Value, field: &str) -> u64 {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no `{field}` in {v}"));
    parse_time(s).unwrap_or_else(|e| panic!("{field}: {e}"))
}

/// A value with every time-derived field (`remaining_ttl`) removed, so
/// answers of several nodes taken at slightly different instants compare
/// equal when their replicated content is the same.
pub fn without_clock(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "remaining_ttl")
                .map(|(k, v)| (k.clone(), without_clock(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_clock).collect()),
        other => other.clone(),
    }
}

/// GETs `path` from every client; panics unless each answers 200 with the
/// same body (time-derived fields aside). Returns that body.
pub async fn same_everywhere(apis: &[Api], path: &str) -> Value {
    let mut first: Option<(String, Value)> = None;
    for api in apis {
        let body = without_clock(&api.get_ok(path).await);
        match &first {
            None => first = Some((api.base.clone(), body)),
            Some((base, seen)) => {
                assert_eq!(&body, seen, "GET {path}: {} and {base} disagree", api.base)
            }
        }
    }
    first.expect("at least one node").1
}

/// GETs `path` from every client and asserts each answers `status` with
/// error `code`.
pub async fn error_everywhere(apis: &[Api], path: &str, status: u16, code: &str) {
    for api in apis {
        let r = api
            .get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", api.base));
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "GET {path} on {}: {:?}",
            api.base,
            r.body
        );
    }
}

/// Follows `next_cursor` from `path` (which must already carry a `?`)
/// and returns every item. At most 100 pages.
pub async fn list_all(api: &Api, path: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            None => path.to_string(),
            Some(c) => format!("{path}&cursor={c}"),
        };
        let r = api.get(&url).await?;
        if r.status != 200 {
            return Err(format!("GET {url}: {} {}", r.status, r.body));
        }
        items.extend(r.body["items"].as_array().cloned().unwrap_or_default());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(items),
        }
    }
    Err(format!("{path}: more than 100 pages"))
}

/// Grants `n` leases with `concurrency` clients spread over `apis` (so most
/// writes are forwarded by followers); `body(i)` is the i-th grant's body.
/// Every grant must answer 201. Returns the leases in index order.
pub async fn grant_many(
    apis: &[Api],
    n: usize,
    concurrency: usize,
    body: impl Fn(usize) -> Value,
) -> Vec<Value> {
    let bodies: Arc<Vec<Value>> = Arc::new((0..n).map(body).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency.max(1) {
        let api = apis[w % apis.len()].clone();
        let (bodies, next) = (bodies.clone(), next.clone());
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= bodies.len() {
                    return out;
                }
                let r = api.post("/v1/leases", &bodies[i]).await;
                match r {
                    Ok(r) if r.status == 201 => out.push((i, r.body)),
                    other => panic!("grant {i} via {}: {other:?}", api.base),
                }
            }
        });
    }
    let mut all: Vec<(usize, Value)> = Vec::with_capacity(n);
    while let Some(done) = workers.join_next().await {
        all.extend(done.expect("grant worker"));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, v)| v).collect()
}

/// Clients (admin token) of nodes `1..=n`.
pub fn node_apis(cluster: &crate::Cluster, n: u64) -> Vec<Api> {
    (1..=n).map(|id| cluster.api(id)).collect()
}

/// The value of a `field  value` row of the CLI's record output.
pub fn cli_field(stdout: &str, field: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            (k == field).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no `{field}` row in:\n{stdout}"))
}

/// Waits (up to 30 s) until every client's node agrees on a leader other
/// than `not`, and returns it. A node's own view (`consistency=local`) is
/// asked, so a dead or sealed former leader that others still name is not
/// taken for the new one.
pub async fn leader_other_than(apis: &[Api], not: u64) -> u64 {
    let apis = apis.to_vec();
    crate::eventually(
        Duration::from_secs(30),
        &format!("a leader other than node {not}"),
        || {
            let apis = apis.clone();
            async move {
                let mut seen = Vec::new();
                for api in &apis {
                    let r = api.get("/v1/cluster?consistency=local").await?;
                    // A sealed node runs no Raft: it has no view to agree with.
                    if r.status == 503 && r.code() == "sealed" {
                        continue;
                    }
                    seen.push(r.body["leader"].as_u64());
                }
                match seen.first().copied().flatten() {
                    Some(l) if l != not && seen.iter().all(|s| *s == Some(l)) => Ok(l),
                    _ => Err(format!("leaders seen: {seen:?}")),
                }
            }
        },
    )
    .await
}

/// The value of one sample (e.g. `keel_lease_expirations_total`) in a
/// node's `/metrics`.
pub async fn metric(api: &Api, sample: &str) -> Result<f64, String> {
    let url = format!("{}/metrics", api.base);
    let text = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .get(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .ok_or_else(|| format!("{sample} not in {url}"))?
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("{sample}: {e}"))
}

/// What a CLI run printed and how it ended.
#[derive(Debug)]
pub struct CliRun {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliRun {
    /// Standard output parsed as JSON (for `--json` runs).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("CLI output is not JSON ({e}): {self:?}"))
    }

    /// Panics unless the run exited 0.
    pub fn ok(self) -> CliRun {
        assert_eq!(self.code, Some(0), "CLI failed: {self:?}");
        self
    }
}

/// Runs `keel <args>` as a client of `api_addr` (`127.0.0.1:port`) with
/// `KEEL_ADDR` and `KEEL_TOKEN`, within 30 s.
pub async fn keel_cli(api_addr: &str, token: &str, args: &[&str]) -> CliRun {
    keel_cli_within(api_addr, token, args, Duration::from_secs(30)).await
}

/// [`keel_cli`] with another deadline, for long operations.
pub async fn keel_cli_within(
    api_addr: &str,
    token: &str,
    args: &[&str],
    deadline: Duration,
) -> CliRun {
    let run = tokio::process::Command::new(keel_bin())
        .args(args)
        .env("KEEL_ADDR", format!("http://{api_addr}"))
        .env("KEEL_TOKEN", token)
        .env_remove("KEEL_CACERT")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(deadline, run)
        .await
        .unwrap_or_else(|_| panic!("keel {args:?} did not finish within {deadline:?}"))
        .expect("run keel");
    CliRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2026-11-21T06:49:52.83Z"), Ok(1_795_243_792_830));
        assert_eq!(parse_time("2000-02-29T23:59:59.5Z"), Ok(951_868_799_500));
        for ms in [0, 951_868_799_500, 1_795_243_792_830, 4_102_444_800_001] {
            assert_eq!(parse_time(&format_time(ms)), Ok(ms));
        }
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-11-21 06:49:52Z").is_err());
    }
}
