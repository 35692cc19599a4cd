//! Cursor pagination shared by every list in the API.
//!
//! A page holds at most `limit` items; `next_cursor` is the key of the last
//! item returned when more may follow, and the next page starts strictly
//! after it. Keys are stable (ids, names, serials), so pages never repeat
//! or skip an object that existed throughout the listing.

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<String>,
}

/// Takes up to `limit` items from `iter` (already positioned after the
/// cursor and filtered), producing the cursor of the next page.
pub fn paginate<T>(
    iter: impl Iterator<Item = T>,
    limit: usize,
    key_of: impl Fn(&T) -> String,
) -> Page<T> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut items: Vec<T> = iter.take(limit + 1).collect();
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(&key_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_a_cursor_only_when_more_follow() {
        let p = paginate(1..=5, 2, |n| n.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let p = paginate(1..=2, 2, |n| n.to_string());
        assert_eq!(p.next_cursor, None);
        let p = paginate(1..=2, 0, |n| n.to_string());
        assert_eq!(p.items, vec![1]);
    }
}
