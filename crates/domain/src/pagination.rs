//! Keyset pagination (API.md §1.5): newest first by creation time, ties broken by id, so rows
//! inserted between pages are neither skipped nor repeated, and a deep page costs what the first
//! one does.

use uuid::Uuid;

use crate::Timestamp;

/// The position after which the next page starts: the last item of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: Timestamp,
    pub id: Uuid,
}

impl PageCursor {
    /// Whether an item at (`created_at`, `id`) comes after this cursor in newest-first order.
    pub fn precedes(&self, created_at: Timestamp, id: Uuid) -> bool {
        (created_at, id) < (self.created_at, self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<PageCursor>,
    pub limit: usize,
}

impl PageRequest {
    /// What a store is asked for: one row more than the page, to know whether another follows.
    pub fn overfetch(&self) -> PageRequest {
        PageRequest {
            after: self.after,
            limit: self.limit.saturating_add(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<PageCursor>,
}

impl<T> Page<T> {
    /// Cuts an over-fetched result (see [`PageRequest::overfetch`]) down to a page.
    pub fn from_overfetch(
        mut rows: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> PageCursor,
    ) -> Self {
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_cursor_only_when_more_rows_exist() {
        let cursor = |n: &i64| PageCursor {
            created_at: Timestamp::from_unix_micros(*n).unwrap(),
            id: Uuid::nil(),
        };
        let page = Page::from_overfetch(vec![3, 2, 1], 2, cursor);
        assert_eq!(page.items, vec![3, 2]);
        assert_eq!(page.next_cursor, Some(cursor(&2)));
        let last = Page::from_overfetch(vec![1], 2, cursor);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn ordering_is_newest_first_then_id() {
        let t = |n| Timestamp::from_unix_micros(n).unwrap();
        let at = PageCursor {
            created_at: t(10),
            id: Uuid::from_u128(5),
        };
        assert!(at.precedes(t(9), Uuid::from_u128(9)));
        assert!(at.precedes(t(10), Uuid::from_u128(4)));
        assert!(!at.precedes(t(10), Uuid::from_u128(5)));
        assert!(!at.precedes(t(11), Uuid::from_u128(0)));
    }
}
