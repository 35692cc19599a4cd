//! Regular expressions for the OpenAPI document that match exactly what a
//! handler accepts: decimal integers in a range (no leading zeros) and
//! durations (`30`, `"90s"`, `"5m"`...) between two bounds. A pattern that
//! admitted more would promise values the handler refuses; one that
//! admitted less would forbid values it accepts.

/// Durations' units and their length in milliseconds; a bare number is
/// seconds.
const UNITS: [(&str, u64); 6] = [
    ("", 1_000),
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Alternatives matching the decimal numbers from `lo` to `hi`, both of
/// `lo.len() == hi.len()` digits (leading zeros allowed inside, as in a
/// suffix).
fn same_width(lo: &str, hi: &str) -> Vec<String> {
    if lo == hi {
        return vec![lo.to_string()];
    }
    let (l0, lrest) = lo.split_at(1);
    let (h0, hrest) = hi.split_at(1);
    if lrest.is_empty() {
        return vec![format!("[{l0}-{h0}]")];
    }
    if l0 == h0 {
        return same_width(lrest, hrest)
            .into_iter()
            .map(|p| format!("{l0}{p}"))
            .collect();
    }
    let width = lrest.len();
    let digit = |s: &str| s.as_bytes()[0] - b'0';
    let mut out = Vec::new();
    let mut first = digit(l0);
    if lrest.bytes().any(|b| b != b'0') {
        out.extend(
            same_width(lrest, &"9".repeat(width))
                .into_iter()
                .map(|p| format!("{l0}{p}")),
        );
        first += 1;
    }
    let mut last = digit(h0);
    let mut upper = Vec::new();
    if hrest.bytes().any(|b| b != b'9') {
        upper.extend(
            same_width(&"0".repeat(width), hrest)
                .into_iter()
                .map(|p| format!("{h0}{p}")),
        );
        last -= 1;
    }
    if first <= last {
        out.push(format!("[{first}-{last}][0-9]{{{width}}}"));
    }
    out.extend(upper);
    out
}

/// A regular expression (unanchored group) matching the decimal numbers
/// from `lo` to `hi` written without leading zeros. `None` if the range is
/// empty.
pub fn integer_range(lo: u64, hi: u64) -> Option<String> {
    if lo > hi {
        return None;
    }
    let mut parts = Vec::new();
    let (lo_s, hi_s) = (lo.to_string(), hi.to_string());
    for width in lo_s.len()..=hi_s.len() {
        let floor = if width == 1 {
            0
        } else {
            10u64.pow(width as u32 - 1)
        };
        let ceil = 10u64.checked_pow(width as u32).map_or(u64::MAX, |p| p - 1);
        let (a, b) = (lo.max(floor), hi.min(ceil));
        if a <= b {
            parts.extend(same_width(&a.to_string(), &b.to_string()));
        }
    }
    Some(format!("(?:{})", parts.join("|")))
}

/// An anchored pattern matching every duration string from `min_ms` to
/// `max_ms` (inclusive) in keel's grammar: digits without leading zeros,
/// then `ms`, `s`, `m`, `h`, `d` or nothing (seconds).
pub fn duration(min_ms: u64, max_ms: u64) -> String {
    let alternatives: Vec<String> = UNITS
        .iter()
        .filter_map(|(unit, factor)| {
            let lo = min_ms
                .div_ceil(*factor)
                .max(if min_ms == 0 { 0 } else { 1 });
            let hi = max_ms / factor;
            integer_range(lo, hi).map(|r| format!("{r}{unit}"))
        })
        .collect();
    format!("^(?:{})$", alternatives.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks a pattern against every number in a window by brute force,
    /// with a tiny matcher for the subset of regex syntax built here.
    fn matches(pattern: &str, text: &str) -> bool {
        // Expand the pattern's alternatives into a set by checking every
        // candidate is accepted by a naive backtracking matcher.
        fn m(p: &[u8], t: &[u8]) -> bool {
            // Supports: literals, [a-b], [0-9]{n}, (?: ... | ... ), ^, $.
            if p.is_empty() {
                return t.is_empty();
            }
            match p[0] {
                b'^' | b'$' => m(&p[1..], t),
                b'(' => {
                    // Find the matching close paren and split on top-level |.
                    let mut depth = 0;
                    let mut end = 0;
                    let mut bars = Vec::new();
                    for (i, c) in p.iter().enumerate() {
                        match c {
                            b'(' => depth += 1,
                            b')' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = i;
                                    break;
                                }
                            }
                            b'|' if depth == 1 => bars.push(i),
                            _ => {}
                        }
                    }
                    let start = 3; // after "(?:"
                    let mut bounds = vec![start];
                    bounds.extend(bars.iter().map(|b| b + 1));
                    let mut ends: Vec<usize> = bars.clone();
                    ends.push(end);
                    bounds.iter().zip(ends.iter()).any(|(s, e)| {
                        let mut alt = p[*s..*e].to_vec();
                        alt.extend_from_slice(&p[end + 1..]);
                        m(&alt, t)
                    })
                }
                b'[' => {
                    let (lo, hi) = (p[1], p[3]);
                    let mut rest = &p[5..];
                    let mut count = 1;
                    if rest.first() == Some(&b'{') {
                        let close = rest.iter().position(|c| *c == b'}').unwrap();
                        count = std::str::from_utf8(&rest[1..close])
                            .unwrap()
                            .parse()
                            .unwrap();
                        rest = &rest[close + 1..];
                    }
                    t.len() >= count
                        && t[..count].iter().all(|c| (lo..=hi).contains(c))
                        && m(rest, &t[count..])
                }
                c => !t.is_empty() && t[0] == c && m(&p[1..], &t[1..]),
            }
        }
        m(pattern.as_bytes(), text.as_bytes())
    }

    #[test]
    fn integer_ranges_match_exactly_their_numbers() {
        for (lo, hi) in [
            (0, 9),
            (1, 8760),
            (60, 7_776_000),
            (17, 1_234),
            (5, 5),
            (1, 100),
        ] {
            let p = format!("^{}$", integer_range(lo, hi).unwrap());
            // Every number near either bound and every one up to 2,000.
            let near = |b: u64| b.saturating_sub(150)..=b + 150;
            for n in (0..=2_000).chain(near(lo)).chain(near(hi)) {
                assert_eq!(
                    matches(&p, &n.to_string()),
                    (lo..=hi).contains(&n),
                    "{p} {n}"
                );
            }
            assert!(!matches(&p, &format!("0{lo}")), "{p} leading zero");
        }
    }

    #[test]
    fn durations_match_exactly_the_range() {
        let p = duration(60_000, 7_200_000);
        for (text, ok) in [
            ("60", true),
            ("59", false),
            ("60s", true),
            ("7200s", true),
            ("7201s", false),
            ("1m", true),
            ("120m", true),
            ("121m", false),
            ("2h", true),
            ("3h", false),
            ("0h", false),
            ("1h", true),
            ("60000ms", true),
            ("59999ms", false),
            ("1d", false),
            ("060s", false),
            (" 60s", false),
        ] {
            assert_eq!(matches(&p, text), ok, "{p} {text}");
        }
    }
}
