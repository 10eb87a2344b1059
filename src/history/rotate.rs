//! `bintrail rotate`: retention of `binlog_events` by whole hourly partitions.
//!
//! # Invariants
//! * **Old data is dropped, never scanned**: `ALTER TABLE … DROP PARTITION` of every hourly
//!   partition whose upper bound is at or before `now - retain`, i.e. whose every row is older
//!   than the retention. A partition that still holds one unexpired second is kept whole, so
//!   retention is exact to the hour boundary and never removes a row younger than `retain`.
//! * **There is always a partition for a new row**: the catch-all `p_future` (`MAXVALUE`) is
//!   never dropped, and hours ahead are split off it (`REORGANIZE PARTITION p_future INTO …`), so
//!   a stream keeps writing across hour boundaries whether or not rotate runs. Rows that landed
//!   in `p_future` (rotate did not run for a while) move into their hours when it is split; a
//!   long stretch with no rows becomes one wide partition rather than hundreds of empty ones.
//! * **`key_changes` never outlives its changes**: the rows of the dropped hours are deleted
//!   from it too (through its `k_time` index; it holds one row per key-changing update only).
//! * The plan is a pure function of the partition list and the clock ([`plan`]), tested without
//!   a server.
//! * **With an archive, a partition is dropped only once it is archived** (`archive`): its
//!   changes are written to recorded Parquet files first, and the drop happens under a table
//!   lock after checking that the rows recorded from the partition are as many as it holds.
//!   When they are not (changes arrived for its hours meanwhile) it and every later partition
//!   are kept for the next run, which archives the newcomers into a further file.
//! * **One rotation at a time per index**: a rotation that changes anything holds the named
//!   lock [`lock_name`] (`GET_LOCK`, on the index server, for the index database) from its
//!   first read to its end, so two rotates never archive or drop the same partition; the
//!   second one waits [`LOCK_WAIT_SECONDS`] for it, then stops before doing anything
//!   ([`RotateError::Locked`]). The server releases the
//!   lock when the connection ends, so a crashed rotate never leaves it held.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;

use crate::archive::export::{self, PartitionRange, Pending};
use crate::archive::store::Store;
use crate::archive::{failpoint, manifest, ArchiveError};
use crate::index::ddl::{
    self, partition_defs, partition_name, DdlError, ARCHIVE_FILES, BINLOG_EVENTS, KEY_CHANGES,
    PARTITION_SECONDS,
};
use crate::sql::ident;
use crate::time::TO_SECONDS_EPOCH;

/// One partition of `binlog_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Its name.
    pub name: String,
    /// Exclusive upper bound of `event_timestamp` (Unix seconds); `None` for `MAXVALUE`.
    pub upper: Option<i64>,
    /// InnoDB's estimate of its rows.
    pub rows: u64,
}

/// What one rotation does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Upper bounds of the hourly partitions to split off the catch-all (Unix seconds).
    pub add: Vec<i64>,
    /// Partitions whose every row is older than the retention.
    pub drop: Vec<Partition>,
    /// `now - retain`, when a retention is given.
    pub cutoff: Option<i64>,
    /// Name of the catch-all partition.
    pub future: String,
}

/// Why a rotation cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The table is not partitioned (created by an older `init`).
    #[error("{database}.binlog_events is not partitioned by time, so old rows cannot be dropped without scanning them; partition it once (this rebuilds the table, which takes a while on a large index): ALTER TABLE {database}.binlog_events PARTITION BY RANGE (TO_SECONDS(event_timestamp)) (PARTITION p_future VALUES LESS THAN MAXVALUE); then run bintrail rotate")]
    NotPartitioned {
        /// The index database.
        database: String,
    },
    /// Partitioned in a way rotate does not manage.
    #[error("{database}.binlog_events is partitioned by {method} ({expression}), not the hourly RANGE (TO_SECONDS(event_timestamp)) layout that bintrail init creates and rotate manages")]
    Layout {
        /// The index database.
        database: String,
        /// PARTITION_METHOD.
        method: String,
        /// PARTITION_EXPRESSION.
        expression: String,
    },
    /// Archiving a partition failed; it was not dropped.
    #[error("the expired partitions were kept: {0}")]
    Archive(#[from] ArchiveError),
    /// The manifest table could not be created.
    #[error(transparent)]
    Ddl(#[from] DdlError),
    /// Another rotation of the same index holds its lock.
    #[error("another bintrail rotate is running on {database} (it holds the named lock '{lock}'; SELECT IS_USED_LOCK('{lock}') gives its connection id): this one changed nothing; run it again when that one is done")]
    Locked {
        /// The index database.
        database: String,
        /// The lock's name.
        lock: String,
    },
    /// The index refused a statement.
    #[error("rotating {database}.binlog_events: {source}")]
    Server {
        /// The index database.
        database: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
}

impl RotateError {
    /// For `map_err`: the index refused a statement while rotating `database`.
    fn server(database: &str) -> impl Fn(mysql_async::Error) -> RotateError + Copy + '_ {
        move |source| RotateError::Server {
            database: database.to_string(),
            source,
        }
    }

    /// Whether running again later, with nobody changing anything, can succeed (exit 1, not 3):
    /// a lost connection, a lock released, an archive endpoint back.
    pub fn is_transient(&self) -> bool {
        match self {
            RotateError::Server { source, .. } => crate::classify::is_transient(source),
            RotateError::Archive(e) => e.is_transient(),
            RotateError::Ddl(e) => e.is_transient(),
            RotateError::Locked { .. } => true,
            RotateError::NotPartitioned { .. } | RotateError::Layout { .. } => false,
        }
    }
}

/// How long a rotation waits for the lock: a rotate that just ended (or crashed) holds it until
/// the server has noticed its connection close, which on a busy server is not instant; a
/// rotate still running holds it far longer.
pub const LOCK_WAIT_SECONDS: u64 = 5;

/// The named lock a rotation of index `database` holds: readable when the name fits in the
/// 64 characters a lock name may have, else a digest of it. (Lock names are compared without
/// case, so `Idx` and `idx` share one: they wait for each other, which is safe.)
pub fn lock_name(database: &str) -> String {
    let readable = format!("bintrail.rotate.{database}");
    if readable.chars().count() <= 64 {
        return readable;
    }
    use sha2::Digest;
    let digest = crate::archive::writer::hex(&sha2::Sha256::digest(database.as_bytes()));
    format!("bintrail.rotate.{}", &digest[..48])
}

type PartitionRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
);

/// The partitions of `binlog_events`, in order; refuses a table rotate cannot manage.
pub async fn partitions(conn: &mut Conn, database: &str) -> Result<Vec<Partition>, RotateError> {
    let server = RotateError::server(database);
    let _ = conn
        .query_drop("SET SESSION information_schema_stats_expiry = 0")
        .await;
    let rows: Vec<PartitionRow> = conn
        .exec(
            "SELECT PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION, \
             TABLE_ROWS FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY PARTITION_ORDINAL_POSITION",
            (database, BINLOG_EVENTS),
        )
        .await
        .map_err(server)?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, method, expression, description, rows) in rows {
        let (Some(name), Some(method)) = (name, method) else {
            return Err(RotateError::NotPartitioned {
                database: database.to_string(),
            });
        };
        let expression = expression.unwrap_or_default();
        let normalized = expression.replace('`', "").to_ascii_lowercase();
        if method != "RANGE" || normalized != "to_seconds(event_timestamp)" {
            return Err(RotateError::Layout {
                database: database.to_string(),
                method,
                expression,
            });
        }
        let upper = description
            .filter(|d| d != "MAXVALUE")
            .and_then(|d| d.parse::<i64>().ok())
            .map(|s| s - TO_SECONDS_EPOCH);
        out.push(Partition {
            name,
            upper,
            rows: rows.unwrap_or(0),
        });
    }
    if out.is_empty() {
        return Err(RotateError::NotPartitioned {
            database: database.to_string(),
        });
    }
    Ok(out)
}

/// The rotation at `now`: hours up to `ahead` hours after the current one split off the
/// catch-all (from the hour of `oldest_future`, its oldest row, when that is earlier), and with
/// `retain` seconds, every hourly partition whose upper bound is at or before `now - retain`.
pub fn plan(
    parts: &[Partition],
    now: i64,
    retain: Option<u64>,
    ahead: u32,
    oldest_future: Option<i64>,
) -> Plan {
    let hour = |t: i64| t.div_euclid(PARTITION_SECONDS) * PARTITION_SECONDS;
    let last = parts.iter().filter_map(|p| p.upper).max();
    let target = hour(now) + PARTITION_SECONDS * (i64::from(ahead) + 1);
    let from = hour(oldest_future.map_or(now, |t| t.min(now))) + PARTITION_SECONDS;
    let mut add: Vec<i64> = (0..)
        .map(|i| from + i * PARTITION_SECONDS)
        .take_while(|u| *u <= target)
        .filter(|u| last.is_none_or(|l| *u > l))
        .collect();
    let cutoff = retain.map(|r| now - r as i64);
    let mut drop = Vec::new();
    if let Some(c) = cutoff {
        // Expired hours split off the catch-all become one partition, dropped right away.
        let expired = add.iter().filter(|u| **u <= c).count();
        add.drain(..expired.saturating_sub(1));
        drop.extend(
            parts
                .iter()
                .filter(|p| p.upper.is_some_and(|u| u <= c))
                .cloned(),
        );
        drop.extend(add.iter().filter(|u| **u <= c).map(|&u| Partition {
            name: partition_name(u - PARTITION_SECONDS),
            upper: Some(u),
            rows: 0,
        }));
    }
    let future = parts
        .iter()
        .find(|p| p.upper.is_none())
        .map_or_else(|| "p_future".to_string(), |p| p.name.clone());
    Plan {
        add,
        drop,
        cutoff,
        future,
    }
}

/// What `rotate --archive` did (or, dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Archived {
    /// The files written (dry run: to be written), in order.
    pub files: Vec<Pending>,
    /// Bytes written.
    pub bytes: u64,
    /// A partition kept because it holds changes no recorded file has yet (they arrived while
    /// it was archived): name, rows in it, rows recorded from it.
    pub kept: Option<(String, u64, u64)>,
}

/// A rotation's plan and, with an archive, what went into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The plan (with an archive, `drop` lists only the partitions actually dropped).
    pub plan: Plan,
    /// With `--archive`.
    pub archived: Option<Archived>,
}

/// What a rotation is asked to do: the flags of `bintrail rotate`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The time the rotation is planned at, Unix seconds.
    pub now: i64,
    /// Seconds of history to keep ([`plan`]); `None` drops nothing.
    pub retain: Option<u64>,
    /// Hourly partitions to have ready after the current hour.
    pub ahead: u32,
    /// Plan (and list what would be archived) without changing anything.
    pub dry_run: bool,
    /// Where every partition is archived before it is dropped.
    pub archive: Option<&'a Store>,
}

/// Reads the partitions, plans at `request.now` and, unless a dry run, carries the plan out
/// under the index's rotate lock; with an archive, every partition is archived there before it
/// is dropped.
pub async fn rotate(
    conn: &mut Conn,
    database: &str,
    request: Request<'_>,
) -> Result<Rotation, RotateError> {
    if request.dry_run {
        return rotate_locked(conn, database, request).await;
    }
    let lock = lock_name(database);
    let server = RotateError::server(database);
    let got: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, ?)", (&lock, LOCK_WAIT_SECONDS))
        .await
        .map_err(server)?;
    if got.flatten() != Some(1) {
        return Err(RotateError::Locked {
            database: database.to_string(),
            lock,
        });
    }
    let done = rotate_locked(conn, database, request).await;
    // Released with the connection anyway; a failure here changes nothing.
    let _ = conn
        .exec_first::<Option<i64>, _, _>("SELECT RELEASE_LOCK(?)", (&lock,))
        .await;
    done
}

/// [`rotate`] once the lock is held (or on a dry run, which changes nothing).
async fn rotate_locked(
    conn: &mut Conn,
    database: &str,
    request: Request<'_>,
) -> Result<Rotation, RotateError> {
    let Request {
        now,
        retain,
        ahead,
        dry_run,
        archive,
    } = request;
    let server = RotateError::server(database);
    let parts = partitions(conn, database).await?;
    let future = parts.iter().find(|p| p.upper.is_none());
    let oldest_future: Option<i64> = match future {
        Some(f) => conn
            .query_first(format!(
                "SELECT CAST(UNIX_TIMESTAMP(MIN(event_timestamp)) AS SIGNED) FROM {} PARTITION ({})",
                ident(BINLOG_EVENTS),
                ident(&f.name)
            ))
            .await
            .map_err(server)?
            .flatten(),
        None => None,
    };
    let mut plan = plan(&parts, now, retain, ahead, oldest_future);
    let Some(store) = archive else {
        if !dry_run {
            apply(conn, &plan, future.is_some()).await.map_err(server)?;
        }
        return Ok(Rotation {
            plan,
            archived: None,
        });
    };
    let mut archived = Archived::default();
    if dry_run {
        for range in ranges(&plan.drop) {
            archived
                .files
                .extend(export::pending(conn, database, &range).await?);
        }
    } else {
        ddl::ensure_ready(conn, database).await?;
        let dropping = std::mem::take(&mut plan.drop);
        apply(conn, &plan, future.is_some()).await.map_err(server)?;
        for (range, part) in ranges(&dropping).into_iter().zip(dropping) {
            for p in export::pending(conn, database, &range).await? {
                let record = export::write(conn, database, store, &p).await?;
                tracing::info!(path = %record.path, rows = record.rows, bytes = record.bytes, "archived");
                archived.bytes += record.bytes;
                archived.files.push(p);
            }
            failpoint("archive-recorded");
            if let Some(kept) = drop_archived(conn, database, &part.name).await? {
                archived.kept = Some(kept);
                break;
            }
            plan.drop.push(part);
        }
        delete_key_changes(conn, &plan).await.map_err(server)?;
    }
    Ok(Rotation {
        plan,
        archived: Some(archived),
    })
}

/// The time ranges of partitions to drop (the lowest ones, in order: each starts where the
/// one before it ends, the first holds everything older).
fn ranges(drop: &[Partition]) -> Vec<PartitionRange> {
    let mut lower = None;
    drop.iter()
        .filter_map(|p| {
            let upper = p.upper?;
            let range = PartitionRange {
                name: p.name.clone(),
                lower,
                upper,
            };
            lower = Some(upper);
            Some(range)
        })
        .collect()
}

/// Drops partition `name` when the rows recorded from it are as many as it holds, under a
/// lock that keeps writers out between the count and the drop; otherwise keeps it and says so.
async fn drop_archived(
    conn: &mut Conn,
    database: &str,
    name: &str,
) -> Result<Option<(String, u64, u64)>, RotateError> {
    let server = RotateError::server(database);
    conn.query_drop(format!(
        "LOCK TABLES {} WRITE, {} READ",
        ident(BINLOG_EVENTS),
        ident(ARCHIVE_FILES)
    ))
    .await
    .map_err(server)?;
    let checked = async {
        let held: Option<u64> = conn
            .query_first(format!(
                "SELECT COUNT(*) FROM {} PARTITION ({})",
                ident(BINLOG_EVENTS),
                ident(name)
            ))
            .await
            .map_err(server)?;
        let held = held.unwrap_or(0);
        let recorded = manifest::recorded_rows(conn, database, name).await?;
        if held != recorded {
            return Ok(Some((name.to_string(), held, recorded)));
        }
        conn.query_drop(format!(
            "ALTER TABLE {} DROP PARTITION {}",
            ident(BINLOG_EVENTS),
            ident(name)
        ))
        .await
        .map_err(server)?;
        Ok(None)
    }
    .await;
    conn.query_drop("UNLOCK TABLES").await.map_err(server)?;
    checked
}

/// Runs the plan's statements (split the catch-all, drop expired hours and their key changes).
async fn apply(conn: &mut Conn, plan: &Plan, has_future: bool) -> Result<(), mysql_async::Error> {
    if !plan.add.is_empty() && has_future {
        conn.query_drop(format!(
            "ALTER TABLE {} REORGANIZE PARTITION {} INTO (\n  {}\n)",
            ident(BINLOG_EVENTS),
            ident(&plan.future),
            partition_defs(&plan.add).replace("p_future", &plan.future)
        ))
        .await?;
    }
    if !plan.drop.is_empty() {
        let names: Vec<String> = plan.drop.iter().map(|p| ident(&p.name)).collect();
        conn.query_drop(format!(
            "ALTER TABLE {} DROP PARTITION {}",
            ident(BINLOG_EVENTS),
            names.join(", ")
        ))
        .await?;
        delete_key_changes(conn, plan).await?;
    }
    Ok(())
}

/// Deletes the `key_changes` rows of the dropped hours.
async fn delete_key_changes(conn: &mut Conn, plan: &Plan) -> Result<(), mysql_async::Error> {
    let Some(upper) = plan.drop.iter().filter_map(|p| p.upper).max() else {
        return Ok(());
    };
    // The dropped partitions are the lowest ones: every row below `upper` went with them.
    let deleted = conn
        .exec_drop(
            format!(
                "DELETE FROM {} WHERE event_timestamp < FROM_UNIXTIME(?)",
                ident(KEY_CHANGES)
            ),
            (upper,),
        )
        .await;
    match deleted {
        // An index from before key_changes: nothing to delete.
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(()),
        other => other,
    }
}

impl Plan {
    /// Names of the partitions to add.
    pub fn added_names(&self) -> Vec<String> {
        self.add
            .iter()
            .map(|u| partition_name(u - PARTITION_SECONDS))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = PARTITION_SECONDS;
    /// 2026-11-25 14:30:00 UTC.
    const NOW: i64 = 1_795_617_000;

    fn hourly(first_upper: i64, n: i64) -> Vec<Partition> {
        let mut v: Vec<Partition> = (0..n)
            .map(|i| Partition {
                name: partition_name(first_upper + (i - 1) * H),
                upper: Some(first_upper + i * H),
                rows: 1,
            })
            .collect();
        v.push(Partition {
            name: "p_future".into(),
            upper: None,
            rows: 0,
        });
        v
    }

    #[test]
    fn the_lock_is_named_after_the_index_and_fits_in_64_characters() {
        assert_eq!(lock_name("bintrail"), "bintrail.rotate.bintrail");
        let long = "x".repeat(64);
        let name = lock_name(&long);
        assert_eq!(name.len(), 64, "{name}");
        assert_ne!(name, lock_name(&"y".repeat(64)));
    }

    #[test]
    fn a_held_lock_is_transient_a_layout_rotate_cannot_manage_is_not() {
        let locked = RotateError::Locked {
            database: "idx".into(),
            lock: lock_name("idx"),
        };
        assert!(locked.is_transient());
        assert!(!RotateError::NotPartitioned {
            database: "idx".into()
        }
        .is_transient());
    }

    #[test]
    fn up_to_date_partitions_need_nothing() {
        let hour_end = NOW - NOW % H + H;
        let p = plan(&hourly(hour_end, 3), NOW, None, 2, None);
        assert!(p.add.is_empty() && p.drop.is_empty(), "{p:?}");
    }

    #[test]
    fn hours_ahead_are_split_off_the_catch_all() {
        let hour_end = NOW - NOW % H + H;
        let p = plan(&hourly(hour_end, 1), NOW, None, 2, None);
        assert_eq!(p.add, vec![hour_end + H, hour_end + 2 * H]);
        assert_eq!(p.added_names(), vec!["p_2026112515", "p_2026112516"]);
    }

    #[test]
    fn a_long_pause_becomes_one_wide_partition_then_hours() {
        let old_end = NOW - 30 * 24 * H;
        let p = plan(&hourly(old_end, 1), NOW, None, 1, None);
        let hour_end = NOW - NOW % H + H;
        assert_eq!(p.add, vec![hour_end, hour_end + H]);
        // Rows that landed in the catch-all two hours ago get their own hours.
        let p = plan(&hourly(old_end, 1), NOW, None, 0, Some(NOW - 2 * H));
        assert_eq!(p.add, vec![hour_end - 2 * H, hour_end - H, hour_end]);
    }

    #[test]
    fn expired_rows_in_the_catch_all_get_one_partition_that_is_dropped() {
        let old_end = NOW - NOW % H - 10 * 24 * H;
        let parts = hourly(old_end, 1);
        let p = plan(&parts, NOW, Some(2 * 24 * 3600), 1, Some(old_end + 5 * H));
        let cutoff = NOW - 2 * 24 * 3600;
        let expired_upper = cutoff - cutoff % H;
        assert_eq!(
            p.add[0], expired_upper,
            "one partition up to the cutoff's hour"
        );
        assert_eq!(p.add[1], expired_upper + H);
        let dropped: Vec<_> = p.drop.iter().map(|d| d.upper.unwrap()).collect();
        assert_eq!(dropped, vec![old_end, expired_upper]);
    }

    #[test]
    fn only_partitions_wholly_older_than_the_retention_are_dropped() {
        let first_upper = NOW - NOW % H - 10 * H;
        let parts = hourly(first_upper, 12);
        // Cutoff 14:30 - 5h = 09:30: the six hours ending at or before 09:00 go, 09:00-10:00 stays.
        let p = plan(&parts, NOW, Some(5 * 3600), 0, None);
        let cutoff = NOW - 5 * 3600;
        assert_eq!(p.cutoff, Some(cutoff));
        assert!(p.drop.iter().all(|d| d.upper.unwrap() <= cutoff));
        let kept: Vec<_> = parts.iter().filter(|x| !p.drop.contains(x)).collect();
        assert!(kept.iter().all(|k| k.upper.is_none_or(|u| u > cutoff)));
        assert_eq!(p.drop.len(), 6);
        assert!(!p.drop.iter().any(|d| d.name == "p_future"));
    }
}
