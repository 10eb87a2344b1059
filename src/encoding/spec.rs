//! What the decoder must know about a table's columns at the time of a rows event: the one
//! input of the value encoding besides the row bytes. Defined here, below `source`, so that the
//! encoding does not import the event side; `source::schema` builds these from table maps and
//! `information_schema` (and re-exports them).

use mysql_common::constants::ColumnType;

/// What the decoder must know about one column at the time of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name as the source knows it.
    pub name: String,
    /// The real type: for `MYSQL_TYPE_STRING` the real type from the metadata (ENUM and SET
    /// resolved, CHAR and BINARY stay `MYSQL_TYPE_STRING`); `MYSQL_TYPE_DATE` read as
    /// `MYSQL_TYPE_NEWDATE`. TEXT and BLOB of every size are `MYSQL_TYPE_BLOB`.
    pub col_type: ColumnType,
    /// Normalised type metadata:
    /// FLOAT/DOUBLE: byte size; TEXT/BLOB, JSON, GEOMETRY, VECTOR: bytes of the length prefix
    /// (1..=4); TIME2/DATETIME2/TIMESTAMP2: fractional digits (0..=6); VARCHAR/VARBINARY and
    /// CHAR/BINARY: maximum length in bytes; DECIMAL: `precision << 8 | scale`; BIT:
    /// `whole_bytes << 8 | extra_bits` (the width is `8 * whole_bytes + extra_bits`); ENUM/SET:
    /// byte size of the stored value; every other type: 0.
    pub meta: u16,
    /// Declared UNSIGNED (meaningful for numeric types only).
    pub unsigned: bool,
    /// Collation id for character, ENUM and SET columns; `None` or `Some(63)` means binary.
    pub charset: Option<u16>,
    /// ENUM member names in definition order (index 1 is the first).
    pub enum_values: Vec<String>,
    /// SET member names in definition order (bit 0 is the first).
    pub set_values: Vec<String>,
    /// A text column that holds JSON (MariaDB's JSON alias): its text is parsed as JSON.
    pub json_text: bool,
    /// The column accepts NULL (from the table map's null bitmap).
    pub nullable: bool,
    /// A generated column (VIRTUAL, or STORED/PERSISTENT). No table map says so: filled from
    /// `information_schema` on MariaDB, whose 11.x leaves these columns out of UPDATE and
    /// DELETE images; the decoder accepts an image without them only when it knows them as
    /// generated ([`crate::encoding::decode_rows`]).
    pub generated: bool,
}

impl ColumnSpec {
    /// A column with the given name, real type and normalised metadata; signed, binary
    /// (`charset: None`), no ENUM/SET members, not JSON text, nullable, not generated.
    pub fn new(name: impl Into<String>, col_type: ColumnType, meta: u16) -> Self {
        ColumnSpec {
            name: name.into(),
            col_type,
            meta,
            unsigned: false,
            charset: None,
            enum_values: Vec::new(),
            set_values: Vec::new(),
            json_text: false,
            nullable: true,
            generated: false,
        }
    }
}

/// One table as the row images of its rows events are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Database (schema) name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Every column of the table, in table order (the order of the row image).
    pub columns: Vec<ColumnSpec>,
    /// Primary-key column indexes in the key's own order; empty when the table has none.
    pub primary_key: Vec<usize>,
    /// First UNIQUE key whose columns are all NOT NULL, in key order; used as the row identity
    /// only when `primary_key` is empty. The table map never carries it (empty from
    /// [`TableSpec::from_table_map`]); a caller that reads `information_schema` may fill it.
    pub unique_key: Vec<usize>,
    /// The table's engine cannot roll back (MyISAM, Aria, MEMORY…): its changes in a group
    /// that ends in ROLLBACK persist. Not in the table map; filled from information_schema.
    pub non_transactional: bool,
}
