//! Test-only builders: TABLE_MAP and rows events assembled from bytes and parsed by
//! mysql_common exactly as a live stream would be, so tests exercise the real event types.

use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{
    DeleteRowsEvent, DeleteRowsEventV1, FormatDescriptionEvent, PartialUpdateRowsEvent,
    RowsEventData, TableMapEvent, UpdateRowsEvent, UpdateRowsEventV1, WriteRowsEvent,
    WriteRowsEventV1,
};
use mysql_common::binlog::BinlogCtx;
use mysql_common::io::ParseBuf;

/// A length-encoded integer.
pub(crate) fn lenenc(n: u64) -> Vec<u8> {
    match n {
        0..=0xfa => vec![n as u8],
        0xfb..=0xffff => [&[0xfc][..], &(n as u16).to_le_bytes()].concat(),
        0x1_0000..=0xff_ffff => [&[0xfd][..], &(n as u32).to_le_bytes()[..3]].concat(),
        _ => [&[0xfe][..], &n.to_le_bytes()].concat(),
    }
}

/// A length-encoded string.
pub(crate) fn lenenc_str(s: &[u8]) -> Vec<u8> {
    [lenenc(s.len() as u64), s.to_vec()].concat()
}

/// One optional-metadata field: type, length, value.
pub(crate) fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    [vec![kind], lenenc(value.len() as u64), value.to_vec()].concat()
}

fn fde() -> FormatDescriptionEvent<'static> {
    FormatDescriptionEvent::new(BinlogVersion::Version4)
}

/// A TABLE_MAP event of `schema.table` with columns `(type code, metadata bytes, nullable)`
/// and the given optional metadata.
pub(crate) fn table_map(
    schema: &str,
    table: &str,
    cols: &[(u8, &[u8], bool)],
    optional: &[u8],
) -> TableMapEvent<'static> {
    let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0];
    for name in [schema, table] {
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.push(0);
    }
    b.extend(lenenc(cols.len() as u64));
    b.extend(cols.iter().map(|c| c.0));
    let meta: Vec<u8> = cols.iter().flat_map(|c| c.1.to_vec()).collect();
    b.extend(lenenc_str(&meta));
    let mut nulls = vec![0u8; cols.len().div_ceil(8)];
    for (i, c) in cols.iter().enumerate() {
        if c.2 {
            nulls[i / 8] |= 1 << (i % 8);
        }
    }
    b.extend(nulls);
    b.extend_from_slice(optional);
    let fde = fde();
    let ctx = BinlogCtx::new(b.len(), &fde, EventType::TABLE_MAP_EVENT as u8);
    let ev: TableMapEvent<'_> = ParseBuf(&b).parse(ctx).expect("table map parses");
    ev.into_owned()
}

/// The kinds of rows events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Write,
    Update,
    Delete,
    WriteV1,
    UpdateV1,
    DeleteV1,
    PartialUpdate,
}

impl Kind {
    fn v2(self) -> bool {
        !matches!(self, Kind::WriteV1 | Kind::UpdateV1 | Kind::DeleteV1)
    }
}

/// A bitmap with the first `n` bits set.
pub(crate) fn full_bitmap(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n.div_ceil(8)];
    for i in 0..n {
        b[i / 8] |= 1 << (i % 8);
    }
    b
}

/// A rows event with explicit column bitmaps (each `n.div_ceil(8)` bytes) and row data.
pub(crate) fn rows_event_with(
    kind: Kind,
    n: usize,
    bitmaps: &[&[u8]],
    rows: &[u8],
) -> RowsEventData<'static> {
    let mut b = vec![1, 0, 0, 0, 0, 0, 1, 0];
    if kind.v2() {
        b.extend_from_slice(&2u16.to_le_bytes());
    }
    b.extend(lenenc(n as u64));
    for bm in bitmaps {
        b.extend_from_slice(bm);
    }
    b.extend_from_slice(rows);
    let fde = fde();
    macro_rules! parse {
        ($t:ty, $e:expr, $v:ident) => {{
            let ctx = BinlogCtx::new(b.len(), &fde, $e as u8);
            let ev: $t = ParseBuf(&b).parse(ctx).expect("rows event parses");
            RowsEventData::$v(ev.into_owned())
        }};
    }
    match kind {
        Kind::Write => parse!(
            WriteRowsEvent<'_>,
            EventType::WRITE_ROWS_EVENT,
            WriteRowsEvent
        ),
        Kind::Update => parse!(
            UpdateRowsEvent<'_>,
            EventType::UPDATE_ROWS_EVENT,
            UpdateRowsEvent
        ),
        Kind::Delete => parse!(
            DeleteRowsEvent<'_>,
            EventType::DELETE_ROWS_EVENT,
            DeleteRowsEvent
        ),
        Kind::WriteV1 => parse!(
            WriteRowsEventV1<'_>,
            EventType::WRITE_ROWS_EVENT_V1,
            WriteRowsEventV1
        ),
        Kind::UpdateV1 => parse!(
            UpdateRowsEventV1<'_>,
            EventType::UPDATE_ROWS_EVENT_V1,
            UpdateRowsEventV1
        ),
        Kind::DeleteV1 => parse!(
            DeleteRowsEventV1<'_>,
            EventType::DELETE_ROWS_EVENT_V1,
            DeleteRowsEventV1
        ),
        Kind::PartialUpdate => parse!(
            PartialUpdateRowsEvent<'_>,
            EventType::PARTIAL_UPDATE_ROWS_EVENT,
            PartialUpdateRowsEvent
        ),
    }
}

/// A rows event whose images cover all `n` columns.
pub(crate) fn rows_event(kind: Kind, n: usize, rows: &[u8]) -> RowsEventData<'static> {
    let full = full_bitmap(n);
    let images = if matches!(kind, Kind::Update | Kind::UpdateV1 | Kind::PartialUpdate) {
        2
    } else {
        1
    };
    let bitmaps: Vec<&[u8]> = (0..images).map(|_| &full[..]).collect();
    rows_event_with(kind, n, &bitmaps, rows)
}

/// One full image: the null bitmap, then the packed bytes of each non-NULL value.
pub(crate) fn image(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut nulls = vec![0u8; values.len().div_ceil(8)];
    let mut data = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            None => nulls[i / 8] |= 1 << (i % 8),
            Some(bytes) => data.extend_from_slice(bytes),
        }
    }
    [nulls, data].concat()
}
