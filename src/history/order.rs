//! History order: the order a stream's changes happened in, which is `event_id` order except
//! for the changes `index --fill-gap` wrote. Those got `event_id`s after everything the stream
//! wrote since the gap, but happened where the gap is: right after the stream's changes up to
//! the gap's `before_event_id` (`index::gaps`). Every comparison of two changes' places, every
//! sort and every SQL bound derived from a place goes through here.
//!
//! # The order
//! A change's place is a [`Pos`]: `(event_id, 0)` for a streamed change, `(before_event_id,
//! event_id)` for one a fill wrote (its gap's range, `filled_first_event_id ..=
//! filled_last_event_id`, of its stream), compared as pairs. A filled change thus comes after
//! every change with `event_id <= before_event_id` (filled ids are larger than it, so the second
//! part is never 0), before every streamed change after the gap, and in `event_id` order among
//! the changes of its own fill.
//!
//! # SQL
//! Ranges of `event_id` still bound what is read: [`Pos::id_floor`] is an `event_id` that every
//! change at or after a place has (and that every change below it precedes), so a read from it
//! returns a superset that the caller filters and sorts by [`Pos`]; [`Order::sql_key`] is the
//! same order as an `ORDER BY` for `query`'s `LIMIT`. With no filled gap (the usual index) a
//! place is its `event_id` and every bound is exact.

use std::fmt;

use mysql_async::Conn;

use crate::index::gaps::{self, Placed};

/// A change's place in history order (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// The streamed change's `event_id`, or the gap's `before_event_id`.
    major: u64,
    /// 0, or the filled change's `event_id`.
    minor: u64,
}

impl Pos {
    /// Before every change.
    pub const START: Pos = Pos { major: 0, minor: 0 };
    /// After every change.
    pub const END: Pos = Pos {
        major: u64::MAX,
        minor: u64::MAX,
    };

    /// The place of a streamed change.
    pub fn streamed(event_id: u64) -> Pos {
        Pos {
            major: event_id,
            minor: 0,
        }
    }

    /// The place right after this one: no change sits between the two.
    pub fn next(self) -> Pos {
        match self.minor.checked_add(1) {
            Some(minor) => Pos { minor, ..self },
            None => Pos {
                major: self.major.saturating_add(1),
                minor: 0,
            },
        }
    }

    /// An `event_id` that every change at or after this place has, and that every change below
    /// it precedes this place: a streamed change's own id; for a filled change, the one after
    /// its gap's `before_event_id` (fill ids are all larger).
    pub fn id_floor(self) -> u64 {
        if self.minor == 0 {
            self.major
        } else {
            self.major.saturating_add(1)
        }
    }

    /// Whether the change at this place was written by `--fill-gap`.
    pub fn filled(self) -> bool {
        self.minor != 0
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            0 => write!(f, "#{}", self.major),
            id => write!(f, "#{id} (filled, after #{})", self.major),
        }
    }
}

/// The filled ranges of an index, for placing its changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Order {
    placed: Vec<Placed>,
}

impl Order {
    /// The filled gaps of every stream ([`gaps::placed`]).
    pub async fn load(conn: &mut Conn) -> Result<Order, mysql_async::Error> {
        Ok(Order {
            placed: gaps::placed(conn).await?,
        })
    }

    /// An order with the given filled ranges (no filled range: `event_id` order).
    pub fn from_placed(placed: Vec<Placed>) -> Order {
        Order { placed }
    }

    /// Whether history order is `event_id` order for every change.
    pub fn is_plain(&self) -> bool {
        self.placed.is_empty()
    }

    /// How many changes the filled ranges can hold at most (their ids, all streams).
    pub fn filled_count(&self) -> u64 {
        self.placed
            .iter()
            .map(|p| (p.last - p.first).saturating_add(1))
            .fold(0, u64::saturating_add)
    }

    /// The `event_id` ranges of `stream`'s filled gaps.
    pub fn filled_of(&self, stream: u32) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.placed
            .iter()
            .filter(move |p| p.server_id == stream)
            .map(|p| (p.first, p.last))
    }

    /// The place of change `event_id` of `stream`.
    pub fn pos(&self, stream: u32, event_id: u64) -> Pos {
        match self.placed.iter().find(|p| {
            p.server_id == stream && (p.first..=p.last).contains(&event_id) && p.before < event_id
        }) {
            Some(p) => Pos {
                major: p.before,
                minor: event_id,
            },
            None => Pos::streamed(event_id),
        }
    }

    /// The order as SQL sort keys over `event_id` and `stream_id` (ascending; append ` DESC`
    /// to each for newest first): `event_id` alone when nothing is filled.
    pub fn sql_key(&self) -> Vec<String> {
        if self.is_plain() {
            return vec!["event_id".into()];
        }
        let mut major = String::from("CASE");
        let mut minor = String::from("CASE");
        for p in &self.placed {
            let when = format!(
                " WHEN stream_id = {} AND event_id BETWEEN {} AND {} AND event_id > {}",
                p.server_id, p.first, p.last, p.before
            );
            major.push_str(&format!("{when} THEN {}", p.before));
            minor.push_str(&format!("{when} THEN event_id"));
        }
        major.push_str(" ELSE event_id END");
        minor.push_str(" ELSE 0 END");
        vec![major, minor]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order::from_placed(vec![Placed {
            gap_id: 1,
            server_id: 7,
            before: 10,
            first: 20,
            last: 25,
        }])
    }

    #[test]
    fn a_filled_change_sits_between_the_gaps_neighbours_in_fill_order() {
        let o = order();
        let (before, after) = (o.pos(7, 10), o.pos(7, 11));
        let (f1, f2) = (o.pos(7, 20), o.pos(7, 25));
        assert!(before < f1 && f1 < f2 && f2 < after);
        assert!(o.pos(7, 19) > f2, "streamed after the gap");
        assert!(o.pos(7, 26) > f2, "streamed after the fill");
        assert!(
            !o.pos(8, 20).filled(),
            "another stream's change keeps its id"
        );
    }

    #[test]
    fn id_floors_bound_every_change_at_or_after_a_place() {
        let o = order();
        assert_eq!(o.pos(7, 21).id_floor(), 11);
        assert_eq!(o.pos(7, 12).id_floor(), 12);
        for id in 1..40 {
            let p = o.pos(7, id);
            for other in 1..40 {
                if o.pos(7, other) >= p {
                    assert!(other >= p.id_floor(), "{other} at or after {p}");
                }
            }
        }
    }

    #[test]
    fn without_filled_gaps_the_sql_order_is_event_id() {
        assert_eq!(Order::default().sql_key(), vec!["event_id".to_string()]);
        assert_eq!(order().sql_key().len(), 2);
    }
}
