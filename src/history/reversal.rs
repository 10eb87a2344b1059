//! The SQL that undoes one stored change, and the script that undoes a whole selection.
//!
//! # Invariants
//! * An insert is undone by a DELETE, a delete by an INSERT of the whole before image, an update
//!   by an UPDATE that sets the columns it changed back to their before values. Rows are found by
//!   the live table's key ([`LiveTable::key`]) with the values of the image the change left
//!   behind (the after image; the before image for deletes), compared exactly
//!   (`encoding::push_comparand`); a table without a usable key is matched on every column, with
//!   `LIMIT 1`.
//! * Generated columns are never assigned (the server computes them).
//! * Every value goes through `encoding::push_literal` with the live column's type: the one rule
//!   per type that inverts the stored encoding.
//! * The script runs in one transaction, newest change first, in a session whose settings make
//!   the literals mean what they say (utf8mb4, UTC, zero dates allowed, strict otherwise), and it
//!   restores the session's settings at the end.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::live::{KeyKind, LiveColumn, LiveTable};
use super::query::StoredChange;
use crate::change::ChangeKind;
use crate::encoding::{push_comparand, push_literal, LiteralError};
use crate::sql::ident;

/// Why one change cannot be turned into SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReversalError {
    /// The image lacks a key column of the live table.
    #[error("change #{event_id} to {table}: its stored image has no value for key column {column} of the live table; the key changed since, so the row cannot be found safely")]
    KeyNotInImage {
        /// The change.
        event_id: u64,
        /// `schema.table`.
        table: String,
        /// The key column.
        column: String,
    },
    /// The image lacks a generated key column of the live table (MariaDB 11 leaves generated
    /// columns out of UPDATE and DELETE images).
    #[error("change #{event_id} to {table}: key column {column} of the live table is a generated column its stored image does not have (MariaDB 11 leaves generated columns out of UPDATE and DELETE images), so the row cannot be found safely; undo it by hand from `bintrail query` output")]
    GeneratedKeyNotInImage {
        /// The change.
        event_id: u64,
        /// `schema.table`.
        table: String,
        /// The key column.
        column: String,
    },
    /// The change has no image to work from.
    #[error("change #{event_id} to {table} has no {which} image stored")]
    NoImage {
        /// The change.
        event_id: u64,
        /// `schema.table`.
        table: String,
        /// before or after.
        which: &'static str,
    },
    /// A live column type with no literal rule.
    #[error("{table}.{column} is of type {data_type}, which bintrail cannot write as SQL")]
    NoRule {
        /// `schema.table`.
        table: String,
        /// Column.
        column: String,
        /// Its DATA_TYPE.
        data_type: String,
    },
    /// A stored value does not fit its live column.
    #[error("change #{event_id} to {table}: column {column}: {source}")]
    Literal {
        /// The change.
        event_id: u64,
        /// `schema.table`.
        table: String,
        /// Column.
        column: String,
        /// The rule's complaint.
        source: LiteralError,
    },
}

/// The statement that undoes `c` on `t`, or `None` when there is nothing to undo (an update
/// that changed only generated columns).
pub fn statement(c: &StoredChange, t: &LiveTable) -> Result<Option<String>, ReversalError> {
    let ctx = Ctx { c, t };
    let name = format!("{}.{}", ident(&t.schema), ident(&t.table));
    let mut sql = String::with_capacity(256);
    match c.event_type {
        ChangeKind::Insert => {
            let after = ctx.image(c.row_after.as_ref(), "after")?;
            let _ = write!(sql, "DELETE FROM {name} WHERE ");
            ctx.push_key(&mut sql, after)?;
        }
        ChangeKind::Delete => {
            let before = ctx.image(c.row_before.as_ref(), "before")?;
            let cols: Vec<&LiveColumn> = t
                .columns
                .iter()
                .filter(|col| !col.generated && before.contains_key(&col.name))
                .collect();
            let names: Vec<String> = cols.iter().map(|col| ident(&col.name)).collect();
            let _ = write!(sql, "INSERT INTO {name} ({}) VALUES (", names.join(", "));
            for (i, col) in cols.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                ctx.push_value(&mut sql, col, &before[&col.name], false)?;
            }
            sql.push(')');
        }
        ChangeKind::Update => {
            let before = ctx.image(c.row_before.as_ref(), "before")?;
            let after = ctx.image(c.row_after.as_ref(), "after")?;
            let changed: Vec<&LiveColumn> = t
                .columns
                .iter()
                .filter(|col| !col.generated)
                .filter(|col| before.get(&col.name) != after.get(&col.name))
                .filter(|col| before.contains_key(&col.name))
                .collect();
            if changed.is_empty() {
                return Ok(None);
            }
            let _ = write!(sql, "UPDATE {name} SET ");
            for (i, col) in changed.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let _ = write!(sql, "{} = ", ident(&col.name));
                ctx.push_value(&mut sql, col, &before[&col.name], false)?;
            }
            sql.push_str(" WHERE ");
            ctx.push_key(&mut sql, after)?;
        }
    }
    sql.push(';');
    Ok(Some(sql))
}

/// One change against one live table: what error messages need.
struct Ctx<'a> {
    c: &'a StoredChange,
    t: &'a LiveTable,
}

impl<'a> Ctx<'a> {
    fn name(&self) -> String {
        format!("{}.{}", self.t.schema, self.t.table)
    }

    fn image(
        &self,
        image: Option<&'a Map<String, Value>>,
        which: &'static str,
    ) -> Result<&'a Map<String, Value>, ReversalError> {
        image.ok_or_else(|| ReversalError::NoImage {
            event_id: self.c.event_id,
            table: self.name(),
            which,
        })
    }

    /// `k1 = v1 AND k2 = v2` (`<=>` and `LIMIT 1` without a real key).
    fn push_key(&self, sql: &mut String, image: &Map<String, Value>) -> Result<(), ReversalError> {
        let exact = self.t.key_kind != KeyKind::AllColumns;
        for (n, &i) in self.t.key.iter().enumerate() {
            let col = &self.t.columns[i];
            let v = image.get(&col.name).ok_or_else(|| match col.generated {
                true => ReversalError::GeneratedKeyNotInImage {
                    event_id: self.c.event_id,
                    table: self.name(),
                    column: col.name.clone(),
                },
                false => ReversalError::KeyNotInImage {
                    event_id: self.c.event_id,
                    table: self.name(),
                    column: col.name.clone(),
                },
            })?;
            if n > 0 {
                sql.push_str(" AND ");
            }
            let op = if exact { "=" } else { "<=>" };
            let _ = write!(sql, "{} {op} ", ident(&col.name));
            self.push_value(sql, col, v, true)?;
        }
        if !exact {
            sql.push_str(" LIMIT 1");
        }
        Ok(())
    }

    fn push_value(
        &self,
        sql: &mut String,
        col: &LiveColumn,
        v: &Value,
        comparand: bool,
    ) -> Result<(), ReversalError> {
        let t = col.sql_type.ok_or_else(|| ReversalError::NoRule {
            table: self.name(),
            column: col.name.clone(),
            data_type: col.data_type.clone(),
        })?;
        let pushed = if comparand {
            push_comparand(sql, t, col.nullable, v)
        } else {
            push_literal(sql, t, col.nullable, v)
        };
        pushed.map_err(|source| ReversalError::Literal {
            event_id: self.c.event_id,
            table: self.name(),
            column: col.name.clone(),
            source,
        })
    }
}

/// Session settings the literals assume, saved first and restored last; opens the transaction.
pub const SESSION_BEGIN: &str = "SET NAMES utf8mb4;
SET @bintrail_saved_sql_mode = @@SESSION.sql_mode, @bintrail_saved_time_zone = @@SESSION.time_zone;
SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00';
START TRANSACTION;
";
/// Commits and restores the session settings [`SESSION_BEGIN`] saved.
pub const SESSION_END: &str = "COMMIT;
SET SESSION sql_mode = @bintrail_saved_sql_mode, time_zone = @bintrail_saved_time_zone;
";

/// The whole recovery script: a commented header, the session setup, every statement newest
/// first (each after a comment naming its change), COMMIT.
///
/// Every comment line is written by [`push_comment`]: its text carries names and values read
/// from the index (a table may be named `t<newline>DROP DATABASE x`), and a line break inside a
/// `--` comment would turn the rest into a statement the client runs.
///
/// `header` is the lines of the header before the instruction to apply it; `statements` are
/// those of `changes`, in the same order. (Taking the pieces rather than `recover`'s plan keeps
/// the arrow from `recover` to this module one-way.)
pub fn script(
    header: &[String],
    changes: &[StoredChange],
    statements: &[Option<String>],
) -> String {
    let mut out = String::new();
    for line in header {
        push_comment(&mut out, line);
    }
    push_comment(
        &mut out,
        "Apply with the mysql client (not --force): one transaction, so an error changes nothing.",
    );
    out.push_str(SESSION_BEGIN);
    for (c, stmt) in changes.iter().zip(statements) {
        push_comment(&mut out, &describe(c));
        match stmt {
            Some(sql) => {
                out.push_str(sql);
                out.push('\n');
            }
            None => push_comment(
                &mut out,
                "(only generated columns changed: nothing to undo)",
            ),
        }
    }
    out.push_str(SESSION_END);
    out
}

/// `#42 2026-11-25 14:00:02 update shop.orders 12345 (gtid …)` on one line.
pub fn describe(c: &StoredChange) -> String {
    let at = match &c.gtid {
        Some(g) => format!("gtid {g}"),
        None => format!("{}:{}", c.binlog_file, c.start_pos),
    };
    one_line(&format!(
        "#{} {} {} {}.{} {} ({at})",
        c.event_id,
        c.event_timestamp,
        c.event_type.name(),
        c.schema,
        c.table,
        c.pk_values,
    ))
}

/// Appends `text` as one `-- ` comment line, whatever it contains: every comment line of a
/// script bintrail writes goes through here.
pub fn push_comment(out: &mut String, text: &str) {
    out.push_str("-- ");
    out.push_str(&one_line(text));
    out.push('\n');
}

/// Line breaks and other control characters replaced by spaces, so that text can sit in a `--`
/// comment: C0/C1 controls (`\n`, `\r`, NEL) and the Unicode line and paragraph separators,
/// which some editors and viewers break lines at even though the mysql client does not.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|ch| {
            if ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                ch
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn orders(key_kind: KeyKind) -> LiveTable {
        let mut columns = vec![
            LiveColumn::sample("id", "bigint"),
            LiveColumn::sample("status", "enum"),
            LiveColumn::sample("amount", "decimal"),
            LiveColumn::sample("f", "float"),
            LiveColumn::sample("twice", "decimal"),
        ];
        columns[4].generated = true;
        LiveTable {
            schema: "shop".into(),
            table: "orders".into(),
            columns,
            key: if key_kind == KeyKind::AllColumns {
                vec![0, 1, 2, 3]
            } else {
                vec![0]
            },
            key_kind,
        }
    }

    fn change(kind: ChangeKind, before: Option<Value>, after: Option<Value>) -> StoredChange {
        let obj = |v: Option<Value>| v.and_then(|v| v.as_object().cloned());
        StoredChange {
            event_type: kind,
            row_before: obj(before),
            row_after: obj(after),
            ..StoredChange::sample()
        }
    }

    fn row(id: i64, status: &str, amount: &str) -> Value {
        json!({"id": id, "status": status, "amount": amount, "f": 0.1, "twice": "0"})
    }

    #[test]
    fn each_kind_is_undone_by_its_inverse_keyed_by_the_primary_key() {
        let t = orders(KeyKind::Primary);
        let cases = [
            (
                change(ChangeKind::Insert, None, Some(row(12345, "new", "9.90"))),
                "DELETE FROM `shop`.`orders` WHERE `id` = 12345;",
            ),
            (
                change(ChangeKind::Delete, Some(row(12345, "new", "9.90")), None),
                "INSERT INTO `shop`.`orders` (`id`, `status`, `amount`, `f`) VALUES (12345, 'new', 9.90, 0.1);",
            ),
            (
                change(
                    ChangeKind::Update,
                    Some(row(2, "new", "9.90")),
                    Some(row(10, "paid", "9.90")),
                ),
                "UPDATE `shop`.`orders` SET `id` = 2, `status` = 'new' WHERE `id` = 10;",
            ),
        ];
        for (c, expected) in cases {
            assert_eq!(statement(&c, &t).unwrap().as_deref(), Some(expected));
        }
    }

    #[test]
    fn names_and_values_from_the_index_stay_inside_their_comments() {
        let evil = "t\nDROP DATABASE shop; --\r\u{2028}x";
        let mut t = orders(KeyKind::Primary);
        t.table = evil.into();
        let mut c = change(ChangeKind::Insert, None, Some(row(1, "new", "1.00")));
        c.table = evil.into();
        c.pk_values = "1\nDROP TABLE x;".into();
        let stmt = statement(&c, &t).unwrap();
        let header = [
            format!("bintrail recover: reverses 1 change to shop.{evil}"),
            format!("selection: --table {evil}"),
            "note: a note\nDROP DATABASE shop;".to_string(),
        ];
        let text = script(&header, &[c], std::slice::from_ref(&stmt));
        // The statement quotes the name as an identifier (a line break inside backticks is
        // part of the name); everything else is a comment or the fixed session lines.
        let stmt = stmt.unwrap();
        assert!(
            stmt.starts_with("DELETE FROM `shop`.`t\nDROP DATABASE shop; --"),
            "{stmt}"
        );
        let rest = text.replace(&stmt, "");
        let fixed = format!("{SESSION_BEGIN}{SESSION_END}");
        for line in rest.lines().filter(|l| !l.is_empty()) {
            assert!(
                line.starts_with("-- ") || fixed.lines().any(|f| f == line),
                "a line outside a comment: {line:?}\n{text}"
            );
        }
        let comments = rest.lines().filter(|l| l.starts_with("-- ")).count();
        assert_eq!(comments, 5, "header (4) and the change's own line\n{text}");
    }

    #[test]
    fn a_keyless_table_is_matched_on_every_column_exactly_once() {
        let t = orders(KeyKind::AllColumns);
        let c = change(ChangeKind::Insert, None, Some(row(1, "new", "1.00")));
        assert_eq!(
            statement(&c, &t).unwrap().unwrap(),
            "DELETE FROM `shop`.`orders` WHERE `id` <=> 1 AND `status` <=> 'new' AND \
             `amount` <=> 1.00 AND `f` <=> 1.0000000149011612e-1 LIMIT 1;"
        );
    }

    #[test]
    fn an_update_of_generated_columns_only_needs_nothing() {
        let t = orders(KeyKind::Primary);
        let mut after = row(1, "new", "1.00");
        after["twice"] = json!("2");
        let c = change(ChangeKind::Update, Some(row(1, "new", "1.00")), Some(after));
        assert_eq!(statement(&c, &t), Ok(None));
    }

    #[test]
    fn values_that_do_not_fit_the_live_column_name_it() {
        let t = orders(KeyKind::Primary);
        let c = change(ChangeKind::Delete, Some(row(1, "new", "lots")), None);
        let e = statement(&c, &t).unwrap_err().to_string();
        assert!(
            e.contains("change #7") && e.contains("column amount"),
            "{e}"
        );
        let mut missing = row(1, "new", "1.00");
        missing.as_object_mut().unwrap().remove("id");
        let c = change(ChangeKind::Insert, None, Some(missing));
        assert!(matches!(
            statement(&c, &t),
            Err(ReversalError::KeyNotInImage { .. })
        ));
    }
}
