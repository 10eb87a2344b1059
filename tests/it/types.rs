//! The value encoding end to end: a table with every column type, filled with edge values
//! (minimum and maximum of every integer width, DECIMAL(65,30), negative and fractional TIME,
//! zero dates, TIMESTAMP written in a non-UTC session, utf8mb4 and latin1 text, non-UTF-8 bytes,
//! ENUM/SET, BIT(64), nested and ~100 KB JSON, GEOMETRY with two SRIDs, VECTOR on MySQL,
//! generated columns (left out of UPDATE and DELETE images by MariaDB 11.8, and so of their
//! stored images), NULL in each), streamed by the real binary. Every stored value is compared
//! with the value the README's "Value encoding" table prescribes, column by column, in the after
//! images of the inserts and updates and in the before images of the updates and the delete;
//! `pk_values` (a composite key in non-table order, a key of five other types, a table without
//! a key) and `changed_columns` are compared exactly. Columns also cover each length-prefix
//! width (CHAR(255)/VARCHAR(300) in utf8mb4, TINY/MEDIUM/LONG TEXT and BLOB), a 2-byte ENUM, an
//! 8-byte SET, BIT(12), every fractional-seconds storage width, ascii/utf8mb3/_bin collations.
//!
//! The expected values are written from the rule table and MySQL's semantics, never taken from
//! what bintrail wrote. Where the source itself is the authority (what `SELECT` prints for a
//! TIME(6), the bytes of a BINARY(4) or a GEOMETRY), each expectation is also cross-checked
//! against the source's own `SELECT` output, so a wrong expectation fails as "expectation
//! disagrees with the source" rather than as a decoder bug.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::stream_basic::server_id;
use crate::support::stream::{start_here, Index, Row, Stream};
use crate::support::{unique, Flavor, TestServer};

/// How an expectation is cross-checked against the source's `SELECT` (text protocol, session
/// time zone UTC).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Check {
    /// `SELECT col` prints exactly the expected string.
    Text,
    /// `SELECT col + 0` prints the expected number (integers exactly, DOUBLE to the same f64).
    Number,
    /// `SELECT HEX(col)` is the expected base64's bytes.
    Bytes,
    /// `SELECT col` is JSON text that parses to the expected document.
    Json,
    /// No independent textual form (FLOAT and VECTOR print 6 digits; JSON with DECIMAL inside
    /// prints the decimal as a number); the expectation rests on the rule table alone.
    None,
}

/// One column of the every-type table.
struct Col {
    name: &'static str,
    ddl: String,
    check: Check,
    /// Generated: not written by INSERT/UPDATE, expected from its expression.
    generated: bool,
}

fn col(name: &'static str, ddl: impl Into<String>, check: Check) -> Col {
    Col {
        name,
        ddl: ddl.into(),
        check,
        generated: false,
    }
}

/// The table's columns in table order. The primary key is `(id, name)`: `id` is the last
/// column and `name` the first, so key order differs from table order.
fn columns(flavor: Flavor) -> Vec<Col> {
    let mysql = flavor == Flavor::Mysql;
    let mut cols = vec![
        col(
            "name",
            "VARCHAR(20) CHARACTER SET utf8mb4 NOT NULL",
            Check::Text,
        ),
        col("ti", "TINYINT", Check::Number),
        col("tu", "TINYINT UNSIGNED", Check::Number),
        col("si", "SMALLINT", Check::Number),
        col("su", "SMALLINT UNSIGNED", Check::Number),
        col("mi", "MEDIUMINT", Check::Number),
        col("mu", "MEDIUMINT UNSIGNED", Check::Number),
        col("ii", "INT", Check::Number),
        col("iu", "INT UNSIGNED", Check::Number),
        col("bi", "BIGINT", Check::Number),
        col("bu", "BIGINT UNSIGNED", Check::Number),
        col("d65", "DECIMAL(65,30)", Check::Text),
        col("d10", "DECIMAL(10,2)", Check::Text),
        col("dm", "DECIMAL(20,10)", Check::Text),
        col("d0", "DECIMAL(5,0)", Check::Text),
        col("f", "FLOAT", Check::None),
        col("dbl", "DOUBLE", Check::Number),
        col("b1", "BIT(1)", Check::Number),
        col("b64", "BIT(64)", Check::Number),
        col("b12", "BIT(12)", Check::Number),
        col("y", "YEAR", Check::Number),
        col("dt", "DATE", Check::Text),
        col("dtm", "DATETIME", Check::Text),
        col("dtm6", "DATETIME(6)", Check::Text),
        col("dtm3", "DATETIME(3)", Check::Text),
        col("ts6", "TIMESTAMP(6) NULL DEFAULT NULL", Check::Text),
        col("ts0", "TIMESTAMP NULL DEFAULT NULL", Check::Text),
        col("tm", "TIME", Check::Text),
        col("tm1", "TIME(1)", Check::Text),
        col("tm6", "TIME(6)", Check::Text),
        col("tm3", "TIME(3)", Check::Text),
        col("tm5", "TIME(5)", Check::Text),
        col("ch", "CHAR(10) CHARACTER SET utf8mb4", Check::Text),
        col("vc", "VARCHAR(50) CHARACTER SET utf8mb4", Check::Text),
        col("l1", "VARCHAR(20) CHARACTER SET latin1", Check::Text),
        col("tx", "TEXT CHARACTER SET utf8mb4", Check::Text),
        // 1020 and 1200 bytes: two-byte lengths (and CHAR's length bits in the type metadata).
        col("chl", "CHAR(255) CHARACTER SET utf8mb4", Check::Text),
        col("vcl", "VARCHAR(300) CHARACTER SET utf8mb4", Check::Text),
        col("ascii_s", "VARCHAR(10) CHARACTER SET ascii", Check::Text),
        col("u3", "VARCHAR(10) CHARACTER SET utf8mb3", Check::Text),
        // A _bin collation is still text, not binary.
        col(
            "l1b",
            "VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_bin",
            Check::Text,
        ),
        col(
            "vbin",
            "VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            Check::Text,
        ),
        // Another character set: stored only because the bytes are valid UTF-8 (ASCII here).
        col("cyr", "VARCHAR(10) CHARACTER SET cp1251", Check::Text),
        col("ttx", "TINYTEXT CHARACTER SET utf8mb4", Check::Text),
        col("mtx", "MEDIUMTEXT CHARACTER SET utf8mb4", Check::Text),
        col("ltx", "LONGTEXT CHARACTER SET utf8mb4", Check::Text),
        col("bn", "BINARY(4)", Check::Bytes),
        col("vb", "VARBINARY(10)", Check::Bytes),
        col("bl", "BLOB", Check::Bytes),
        col("tbl", "TINYBLOB", Check::Bytes),
        col("mbl", "MEDIUMBLOB", Check::Bytes),
        col("lbl", "LONGBLOB", Check::Bytes),
        col("en", "ENUM('small','medium','large')", Check::Text),
        col("st", "SET('a','b','c','d')", Check::Text),
        // 300 members: a two-byte index; 64 members: an eight-byte bitmap.
        col("en300", members("ENUM", "e", 300), Check::Text),
        col("st64", members("SET", "m", 64), Check::Text),
        // On MariaDB JSON is LONGTEXT with a json_valid CHECK; the rule stores the document.
        col("js", "JSON", Check::Json),
        col("jbig", "JSON", Check::Json),
    ];
    if mysql {
        cols.push(col("jd", "JSON", Check::None));
    }
    cols.push(col("g", "GEOMETRY", Check::Bytes));
    cols.push(if mysql {
        col("gp", "POINT SRID 4326", Check::Bytes)
    } else {
        col("gp", "GEOMETRY", Check::Bytes)
    });
    if mysql {
        cols.push(col("v", "VECTOR(3)", Check::None));
    }
    // MariaDB 11.8 leaves generated columns out of UPDATE and DELETE images even with
    // binlog_row_image=FULL, so their stored images lack them there (README, "Supported
    // sources"; `every_type` expects that).
    cols.extend([
        Col {
            name: "gen_s",
            ddl: "BIGINT AS (ii + 1) STORED".into(),
            check: Check::Number,
            generated: true,
        },
        Col {
            name: "gen_v",
            ddl: "VARCHAR(80) CHARACTER SET utf8mb4 AS (CONCAT(name, ':', vc)) VIRTUAL".into(),
            check: Check::Text,
            generated: true,
        },
    ]);
    cols.push(col("id", "BIGINT UNSIGNED NOT NULL", Check::Number));
    cols
}

/// `ENUM('e0','e1',…)` / `SET('m0',…)` with `n` members.
fn members(kind: &str, prefix: &str, n: usize) -> String {
    let names: Vec<String> = (0..n).map(|i| format!("'{prefix}{i}'")).collect();
    format!("{kind}({})", names.join(","))
}

/// One value of a row: the SQL that writes it (ignored for generated columns) and the stored
/// JSON the rule table prescribes.
struct Cell {
    col: &'static str,
    sql: String,
    want: Value,
}

fn c(col: &'static str, sql: impl Into<String>, want: Value) -> Cell {
    Cell {
        col,
        sql: sql.into(),
        want,
    }
}

/// A SQL string literal (default sql_mode: backslash escapes).
fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A JSON document of a little over 100 KB (MySQL binary JSON switches to its large format,
/// 4-byte offsets, above 64 KB).
fn big_doc() -> Value {
    let items: Vec<Value> = (0..1400)
        .map(|i| {
            json!({
                "i": i,
                "name": format!("item {i} ✓ grün"),
                "price": f64::from(i) + 0.25,
                "tags": ["x", "y", i % 7],
                "ok": i % 2 == 0,
                "none": null,
            })
        })
        .collect();
    let doc = json!({"items": items, "count": 1400, "nested": {"deep": {"deeper": [[], {}]}}});
    assert!(doc.to_string().len() > 100_000, "big_doc is too small");
    doc
}

/// Nested JSON with exact integers at both ends, doubles, unicode, escapes, null and booleans.
fn nested_doc() -> Value {
    json!({
        "ints": [0, -1, 18446744073709551615u64, -9223372036854775808i64, 2147483648u64],
        "floats": [1.5, -2.5e-300, 1e300],
        "flags": [true, false, null],
        "deep": {"a": {"b": {"c": [[], {}, [[1]]]}}},
        "edges": [32767, -32768, 65535, 2147483647, -2147483648i64, 4294967295u64],
        "long": "ü".repeat(200),
        "unicode": "日本語 😀 \"quoted\" back\\slash",
        "empty": "",
        "n": null,
    })
}

const DEC65_MAX: &str = "99999999999999999999999999999999999.999999999999999999999999999999";

/// The row of minimum values (strict sql_mode, session time zone +05:30).
fn min_row(flavor: Flavor) -> Vec<Cell> {
    let mysql = flavor == Flavor::Mysql;
    let mut cells = vec![
        c("name", "'min'", json!("min")),
        c("ti", "-128", json!(-128)),
        c("tu", "0", json!(0)),
        c("si", "-32768", json!(-32768)),
        c("su", "0", json!(0)),
        c("mi", "-8388608", json!(-8388608)),
        c("mu", "0", json!(0)),
        c("ii", "-2147483648", json!(-2147483648i64)),
        c("iu", "0", json!(0)),
        c("bi", "-9223372036854775808", json!(-9223372036854775808i64)),
        c("bu", "0", json!(0)),
        c(
            "d65",
            format!("-{DEC65_MAX}"),
            json!(format!("-{DEC65_MAX}")),
        ),
        c("d10", "-99999999.99", json!("-99999999.99")),
        c(
            "dm",
            "-9999999999.9999999999",
            json!("-9999999999.9999999999"),
        ),
        c("d0", "-99999", json!("-99999")),
        // The f32 nearest -3.402823466e38 is -f32::MAX; its shortest form is -3.4028235e38.
        c("f", "-3.402823466E+38", json!(-3.4028235e38)),
        c(
            "dbl",
            "-1.7976931348623157E+308",
            json!(-1.7976931348623157e308),
        ),
        c("b1", "b'0'", json!(0)),
        c("b64", "b'0'", json!(0)),
        c("b12", "b'0'", json!(0)),
        c("y", "1901", json!(1901)),
        c("dt", "'1000-01-01'", json!("1000-01-01")),
        c("dtm", "'1000-01-01 00:00:00'", json!("1000-01-01 00:00:00")),
        c(
            "dtm6",
            "'1000-01-01 00:00:00.000000'",
            json!("1000-01-01 00:00:00.000000"),
        ),
        c(
            "dtm3",
            "'1000-01-01 00:00:00.000'",
            json!("1000-01-01 00:00:00.000"),
        ),
        // Written at +05:30: the smallest TIMESTAMP, 1970-01-01 00:00:01 UTC.
        c(
            "ts6",
            "'1970-01-01 05:30:01'",
            json!("1970-01-01 00:00:01.000000"),
        ),
        c("ts0", "'1970-01-01 05:30:01'", json!("1970-01-01 00:00:01")),
        c("tm", "'-838:59:59'", json!("-838:59:59")),
        c("tm1", "'-00:00:00.1'", json!("-00:00:00.1")),
        c("tm6", "'-838:59:59.000000'", json!("-838:59:59.000000")),
        c("tm3", "'-838:59:59.000'", json!("-838:59:59.000")),
        c("tm5", "'-00:00:00.00001'", json!("-00:00:00.00001")),
        // CHAR drops trailing spaces (SELECT prints "a" too).
        c("ch", "'a  '", json!("a")),
        c("vc", "''", json!("")),
        c("l1", "'grün €'", json!("grün €")),
        c("tx", "''", json!("")),
        c("chl", "''", json!("")),
        c("vcl", "''", json!("")),
        c("ascii_s", "''", json!("")),
        c("u3", "''", json!("")),
        c("l1b", "''", json!("")),
        c("vbin", "''", json!("")),
        c("cyr", "''", json!("")),
        c("ttx", "''", json!("")),
        c("mtx", "''", json!("")),
        c("ltx", "''", json!("")),
        // BINARY(4) pads with 0x00: 61 62 00 00.
        c("bn", "'ab'", json!("YWIAAA==")),
        c("vb", "X'00FF80FE'", json!("AP+A/g==")),
        c("bl", "''", json!("")),
        c("tbl", "''", json!("")),
        c("mbl", "''", json!("")),
        c("lbl", "''", json!("")),
        c("en", "'small'", json!("small")),
        c("st", "''", json!("")),
        c("en300", "'e0'", json!("e0")),
        c("st64", "''", json!("")),
        c("js", "'[]'", json!([])),
        c("jbig", "'{}'", json!({})),
        // SRID 0, WKB little-endian POINT(1 2).
        c(
            "g",
            "ST_GeomFromText('POINT(1 2)')",
            json!("AAAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA=="),
        ),
        c("gen_s", "", json!(-2147483647)),
        c("gen_v", "", json!("min:")),
        c("id", "1", json!(1)),
    ];
    if mysql {
        cells.push(c("jd", "NULL", Value::Null));
        // MySQL reads POINT(1 2) in SRID 4326 as latitude 1, longitude 2 and stores x =
        // longitude: E6100000 01 01000000, x = 2.0, y = 1.0.
        cells.push(c(
            "gp",
            "ST_GeomFromText('POINT(1 2)', 4326)",
            json!("5hAAAAEBAAAAAAAAAAAAAEAAAAAAAADwPw=="),
        ));
        cells.push(c(
            "v",
            "STRING_TO_VECTOR('[1.5,-2,3]')",
            json!([1.5, -2.0, 3.0]),
        ));
    } else {
        // MariaDB keeps the coordinates as written: x = 1.0, y = 2.0.
        cells.push(c(
            "gp",
            "ST_GeomFromText('POINT(1 2)', 4326)",
            json!("5hAAAAEBAAAAAAAAAAAA8D8AAAAAAAAAQA=="),
        ));
    }
    cells
}

/// The row of maximum values.
fn max_row(flavor: Flavor) -> Vec<Cell> {
    let mysql = flavor == Flavor::Mysql;
    let big = big_doc();
    let nested = nested_doc();
    let blob: Vec<u8> = [0x00u8, 0xff, 0x80, 0xfe].repeat(1000);
    let mut cells = vec![
        c("name", "'mäx😀'", json!("mäx😀")),
        c("ti", "127", json!(127)),
        c("tu", "255", json!(255)),
        c("si", "32767", json!(32767)),
        c("su", "65535", json!(65535)),
        c("mi", "8388607", json!(8388607)),
        c("mu", "16777215", json!(16777215)),
        c("ii", "2147483647", json!(2147483647)),
        c("iu", "4294967295", json!(4294967295u64)),
        c("bi", "9223372036854775807", json!(9223372036854775807i64)),
        c("bu", "18446744073709551615", json!(18446744073709551615u64)),
        c("d65", DEC65_MAX, json!(DEC65_MAX)),
        c("d10", "99999999.99", json!("99999999.99")),
        c(
            "dm",
            "9999999999.9999999999",
            json!("9999999999.9999999999"),
        ),
        c("d0", "99999", json!("99999")),
        c("f", "3.402823466E+38", json!(3.4028235e38)),
        c(
            "dbl",
            "1.7976931348623157E+308",
            json!(1.7976931348623157e308),
        ),
        c("b1", "b'1'", json!(1)),
        c("b64", "0xFFFFFFFFFFFFFFFF", json!(18446744073709551615u64)),
        c("b12", "b'111111111111'", json!(4095)),
        c("y", "2155", json!(2155)),
        c("dt", "'9999-12-31'", json!("9999-12-31")),
        c("dtm", "'9999-12-31 23:59:59'", json!("9999-12-31 23:59:59")),
        c(
            "dtm6",
            "'9999-12-31 23:59:59.999999'",
            json!("9999-12-31 23:59:59.999999"),
        ),
        c(
            "dtm3",
            "'9999-12-31 23:59:59.999'",
            json!("9999-12-31 23:59:59.999"),
        ),
        // Written at +05:30: the largest TIMESTAMP, 2038-01-19 03:14:07.999999 UTC.
        c(
            "ts6",
            "'2038-01-19 08:44:07.999999'",
            json!("2038-01-19 03:14:07.999999"),
        ),
        c("ts0", "'2038-01-19 08:44:07'", json!("2038-01-19 03:14:07")),
        c("tm", "'838:59:59'", json!("838:59:59")),
        c("tm1", "'838:59:59.0'", json!("838:59:59.0")),
        c("tm6", "'838:59:59.000000'", json!("838:59:59.000000")),
        c("tm3", "'838:59:59.000'", json!("838:59:59.000")),
        c("tm5", "'838:59:59.00000'", json!("838:59:59.00000")),
        c(
            "ch",
            "'😀😀😀😀😀😀😀😀😀😀'",
            json!("😀😀😀😀😀😀😀😀😀😀"),
        ),
        c("vc", "'😀 café ✓ 𝄞 end '", json!("😀 café ✓ 𝄞 end ")),
        // cp1252 bytes: "grün €" and latin1's five undefined bytes 81 8D 8F 90 9D.
        c(
            "l1",
            "_latin1 X'6772FC6E2080818D8F909D'",
            json!("grün €\u{81}\u{8d}\u{8f}\u{90}\u{9d}"),
        ),
        c("tx", "REPEAT('ü😀', 100)", json!("ü😀".repeat(100))),
        c("chl", "REPEAT('é', 255)", json!("é".repeat(255))),
        c("vcl", "REPEAT('😀', 300)", json!("😀".repeat(300))),
        c("ascii_s", "'~ !Az'", json!("~ !Az")),
        c("u3", "'ü✓€'", json!("ü✓€")),
        c("l1b", "_latin1 X'80FC'", json!("€ü")),
        c("vbin", "'Ü😀'", json!("Ü😀")),
        c("cyr", "'abc'", json!("abc")),
        c("ttx", "REPEAT('x', 255)", json!("x".repeat(255))),
        // 80,000 bytes each: more than a two-byte length can say.
        c("mtx", "REPEAT('ü', 40000)", json!("ü".repeat(40000))),
        c("ltx", "REPEAT('😀', 20000)", json!("😀".repeat(20000))),
        c("bn", "X'00FF80FE'", json!("AP+A/g==")),
        c("vb", "X'FF00FE00FD00FC00FB00'", json!("/wD+AP0A/AD7AA==")),
        c(
            "bl",
            "REPEAT(X'00FF80FE', 1000)",
            json!(crate::support::base64(&blob)),
        ),
        c("tbl", "X'FF'", json!("/w==")),
        c(
            "mbl",
            "REPEAT(X'FE00', 40000)",
            json!(crate::support::base64(&[0xfeu8, 0x00].repeat(40000))),
        ),
        c(
            "lbl",
            "REPEAT(X'80', 70000)",
            json!(crate::support::base64(&[0x80u8].repeat(70000))),
        ),
        c("en", "'large'", json!("large")),
        // Members in definition order, whatever order they were written in.
        c("st", "'d,c,b,a'", json!("a,b,c,d")),
        c("en300", "'e299'", json!("e299")),
        c("st64", "'m63,m0'", json!("m0,m63")),
        c("js", sql_str(&nested.to_string()), nested),
        c("jbig", sql_str(&big.to_string()), big),
        // SRID 0, WKB LINESTRING(0 0, 1.5 -2).
        c(
            "g",
            "ST_GeomFromText('LINESTRING(0 0,1.5 -2)')",
            json!("AAAAAAECAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD4PwAAAAAAAADA"),
        ),
        c("gen_s", "", json!(2147483648u64)),
        c("gen_v", "", json!("mäx😀:😀 café ✓ 𝄞 end ")),
        c("id", "18446744073709551615", json!(18446744073709551615u64)),
    ];
    if mysql {
        // MySQL's JSON text forms: temporal values with 6 fractional digits; DECIMAL as a
        // string of its exact digits (the rule); a binary string is opaque (type 15, VARCHAR).
        cells.push(c(
            "jd",
            "JSON_OBJECT('d', CAST('2024-01-02' AS DATE), \
             'dt', CAST('2024-01-02 03:04:05.123456' AS DATETIME(6)), \
             'dt0', CAST('2024-01-02 03:04:05' AS DATETIME), \
             't', CAST('12:34:56.5' AS TIME(1)), \
             'nt', CAST('-01:02:03' AS TIME), \
             'tmax', CAST('838:59:59' AS TIME), \
             'n', CAST(1.50 AS DECIMAL(5,2)), \
             'tiny', CAST('-0.000000000000000000000000000001' AS DECIMAL(65,30)), \
             'b', X'00FF')",
            json!({
                "d": "2024-01-02",
                "dt": "2024-01-02 03:04:05.123456",
                "dt0": "2024-01-02 03:04:05.000000",
                "t": "12:34:56.500000",
                "nt": "-01:02:03.000000",
                "tmax": "838:59:59.000000",
                "n": "1.50",
                "tiny": "-0.000000000000000000000000000001",
                "b": "base64:type15:AP8=",
            }),
        ));
        // Latitude 45, longitude -120: stored x = -120.0, y = 45.0.
        cells.push(c(
            "gp",
            "ST_GeomFromText('POINT(45 -120)', 4326)",
            json!("5hAAAAEBAAAAAAAAAAAAXsAAAAAAAIBGQA=="),
        ));
        cells.push(c(
            "v",
            "STRING_TO_VECTOR('[0.1,3.4028235e38,-0.5]')",
            json!([0.1, 3.4028235e38, -0.5]),
        ));
    } else {
        cells.push(c(
            "gp",
            "ST_GeomFromText('POINT(45 -120)', 4326)",
            json!("5hAAAAEBAAAAAAAAAACARkAAAAAAAABewA=="),
        ));
    }
    cells
}

/// NULL in every nullable column (the generated ones follow from their NULL inputs).
fn null_row(flavor: Flavor) -> Vec<Cell> {
    columns(flavor)
        .iter()
        .map(|col| match col.name {
            "name" => c("name", "'nulls'", json!("nulls")),
            "id" => c("id", "3", json!(3)),
            name => c(name, "NULL", Value::Null),
        })
        .collect()
}

/// Zero and error values, written with sql_mode '' (zero dates, YEAR 0, ENUM index 0).
fn zero_row(flavor: Flavor) -> Vec<Cell> {
    let mut cells = vec![
        c("name", "'zero'", json!("zero")),
        c("d65", "0", json!("0.000000000000000000000000000000")),
        c("d10", "0", json!("0.00")),
        c("dm", "0", json!("0.0000000000")),
        c("d0", "0", json!("0")),
        c("f", "0", json!(0.0)),
        c("dbl", "0", json!(0.0)),
        c("b1", "b'0'", json!(0)),
        c("b64", "b'0'", json!(0)),
        c("b12", "b'0'", json!(0)),
        c("y", "0", json!(0)),
        c("dt", "'0000-00-00'", json!("0000-00-00")),
        c("dtm", "'0000-00-00 00:00:00'", json!("0000-00-00 00:00:00")),
        c(
            "dtm6",
            "'0000-00-00 00:00:00.000000'",
            json!("0000-00-00 00:00:00.000000"),
        ),
        c(
            "dtm3",
            "'0000-00-00 00:00:00'",
            json!("0000-00-00 00:00:00.000"),
        ),
        // TIMESTAMP 0 is the zero datetime in any time zone.
        c(
            "ts6",
            "'0000-00-00 00:00:00'",
            json!("0000-00-00 00:00:00.000000"),
        ),
        c("ts0", "'0000-00-00 00:00:00'", json!("0000-00-00 00:00:00")),
        c("tm", "'00:00:00'", json!("00:00:00")),
        c("tm1", "'-00:00:00.0'", json!("00:00:00.0")),
        c("tm6", "'-00:00:00.000001'", json!("-00:00:00.000001")),
        c("tm3", "'00:00:00'", json!("00:00:00.000")),
        c("tm5", "'00:00:00'", json!("00:00:00.00000")),
        c("ch", "''", json!("")),
        c("vc", "''", json!("")),
        c("l1", "''", json!("")),
        c("tx", "''", json!("")),
        c("chl", "''", json!("")),
        c("vcl", "''", json!("")),
        c("ascii_s", "''", json!("")),
        c("u3", "''", json!("")),
        c("l1b", "''", json!("")),
        c("vbin", "''", json!("")),
        c("cyr", "''", json!("")),
        c("ttx", "''", json!("")),
        c("mtx", "''", json!("")),
        c("ltx", "''", json!("")),
        c("bn", "''", json!("AAAAAA==")),
        c("vb", "''", json!("")),
        c("bl", "''", json!("")),
        c("tbl", "''", json!("")),
        c("mbl", "''", json!("")),
        c("lbl", "''", json!("")),
        // Not a member: stored as index 0, the error value.
        c("en", "'bogus'", json!("")),
        c("st", "''", json!("")),
        c("en300", "'nope'", json!("")),
        c("st64", "''", json!("")),
        c("js", "'0'", json!(0)),
        c("jbig", "'null'", Value::Null),
        c("g", "NULL", Value::Null),
        c("gp", "NULL", Value::Null),
        c("gen_s", "", json!(1)),
        c("gen_v", "", json!("zero:")),
        c("id", "4", json!(4)),
    ];
    for name in ["ti", "tu", "si", "su", "mi", "mu", "ii", "iu", "bi", "bu"] {
        cells.push(c(name, "0", json!(0)));
    }
    if flavor == Flavor::Mysql {
        cells.push(c("jd", "NULL", Value::Null));
        cells.push(c(
            "v",
            "STRING_TO_VECTOR('[0,0,0]')",
            json!([0.0, 0.0, 0.0]),
        ));
    }
    cells
}

/// The update of the min row (strict, +05:30): new values, including a no-op assignment
/// (`bu = 0`) and a value → NULL change. Assignments run left to right, so `jd` sees the new
/// `ts6` (as the session's local time: JSON keeps what the session read).
fn min_update(flavor: Flavor) -> (Vec<Cell>, Vec<&'static str>) {
    let mut cells = vec![
        c("ti", "7", json!(7)),
        c("ii", "42", json!(42)),
        c("bu", "0", json!(0)),
        c(
            "d65",
            "'0.000000000000000000000000000001'",
            json!("0.000000000000000000000000000001"),
        ),
        c("d10", "-12.5", json!("-12.50")),
        c("dm", "-0.0000000001", json!("-0.0000000001")),
        c("f", "0.1", json!(0.1)),
        c("dbl", "-2.5e-300", json!(-2.5e-300)),
        c("b64", "0x8000000000000001", json!(9223372036854775809u64)),
        c("b12", "b'101010101010'", json!(2730)),
        c(
            "dtm3",
            "'2024-01-02 03:04:05.12'",
            json!("2024-01-02 03:04:05.120"),
        ),
        c(
            "ts6",
            "'2024-02-29 12:00:00.5'",
            json!("2024-02-29 06:30:00.500000"),
        ),
        c("tm1", "'-12:34:56.7'", json!("-12:34:56.7")),
        c("tm6", "'-00:00:01.000001'", json!("-00:00:01.000001")),
        c("tm3", "'-01:02:03.456'", json!("-01:02:03.456")),
        c("tm5", "'-01:02:03.00001'", json!("-01:02:03.00001")),
        c("vc", "'🎉 party'", json!("🎉 party")),
        c("tx", "NULL", Value::Null),
        c("st", "'b,a'", json!("a,b")),
        c("en300", "'e255'", json!("e255")),
        c("st64", "'m63,m32,m31'", json!("m31,m32,m63")),
        c(
            "js",
            r#"'{"k": [1, {"x": null}], "s": "é"}'"#,
            json!({"k": [1, {"x": null}], "s": "é"}),
        ),
        c("gen_s", "", json!(43)),
        c("gen_v", "", json!("min:🎉 party")),
    ];
    if flavor == Flavor::Mysql {
        cells.push(c(
            "jd",
            "JSON_OBJECT('ts', ts6, 'dt', dtm6)",
            json!({"ts": "2024-02-29 12:00:00.500000", "dt": "1000-01-01 00:00:00.000000"}),
        ));
    }
    let changed = [
        "ti", "ii", "d65", "d10", "dm", "f", "dbl", "b64", "b12", "dtm3", "ts6", "tm1", "tm6",
        "tm3", "tm5", "vc", "tx", "st", "en300", "st64", "js", "jd", "gen_s", "gen_v",
    ];
    let changed = changed
        .into_iter()
        .filter(|n| flavor == Flavor::Mysql || *n != "jd")
        .collect();
    (cells, changed)
}

/// The update of the zero row (sql_mode ''): partly zero dates.
fn zero_update() -> (Vec<Cell>, Vec<&'static str>) {
    (
        vec![
            c("y", "1999", json!(1999)),
            c("dt", "'2024-00-00'", json!("2024-00-00")),
            c("dtm", "'2024-02-00 10:00:00'", json!("2024-02-00 10:00:00")),
        ],
        vec!["y", "dt", "dtm"],
    )
}

type Image = BTreeMap<String, Value>;

/// The full expected image: every column of the table exactly once.
fn image(cols: &[Col], cells: &[Cell], what: &str) -> Image {
    let mut img = Image::new();
    for cell in cells {
        assert!(
            cols.iter().any(|c| c.name == cell.col),
            "{what}: no column {}",
            cell.col
        );
        assert!(
            img.insert(cell.col.to_string(), cell.want.clone())
                .is_none(),
            "{what}: column {} given twice",
            cell.col
        );
    }
    for col in cols {
        assert!(
            img.contains_key(col.name),
            "{what}: column {} has no value",
            col.name
        );
    }
    img
}

fn with(before: &Image, cells: &[Cell]) -> Image {
    let mut after = before.clone();
    for cell in cells {
        after.insert(cell.col.to_string(), cell.want.clone());
    }
    after
}

fn insert_sql(table: &str, cols: &[Col], rows: &[&[Cell]]) -> String {
    let written: Vec<&Col> = cols.iter().filter(|c| !c.generated).collect();
    let names: Vec<&str> = written.iter().map(|c| c.name).collect();
    let values: Vec<String> = rows
        .iter()
        .map(|cells| {
            let sql: Vec<&str> = written
                .iter()
                .map(|col| {
                    cells
                        .iter()
                        .find(|cell| cell.col == col.name)
                        .map(|cell| cell.sql.as_str())
                        .unwrap_or_else(|| panic!("no SQL for column {}", col.name))
                })
                .collect();
            format!("({})", sql.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        names.join(", "),
        values.join(", ")
    )
}

fn update_sql(table: &str, cols: &[Col], cells: &[Cell], key: &str) -> String {
    let sets: Vec<String> = cells
        .iter()
        .filter(|cell| !cols.iter().any(|c| c.name == cell.col && c.generated))
        .map(|cell| format!("{} = {}", cell.col, cell.sql))
        .collect();
    format!("UPDATE {table} SET {} WHERE {key}", sets.join(", "))
}

/// JSON equality where a number expected as a float (FLOAT, DOUBLE, doubles inside JSON) only
/// needs to be the same f64, and every other number must be the exact same integer.
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) if e.is_f64() => a.as_f64() == e.as_f64(),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(a, e)| same(a, e))
        }
        (Value::Object(a), Value::Object(e)) => {
            a.len() == e.len() && e.iter().all(|(k, e)| a.get(k).is_some_and(|a| same(a, e)))
        }
        _ => actual == expected,
    }
}

/// A value for a failure message, cut short if huge.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 200 {
        format!(
            "{}… ({} bytes)",
            s.chars().take(200).collect::<String>(),
            s.len()
        )
    } else {
        s
    }
}

/// Compares a stored image with the expected one column by column, recording each mismatch.
fn check_image(actual: &Value, expected: &Image, what: &str, failures: &mut Vec<String>) {
    let Some(obj) = actual.as_object() else {
        failures.push(format!(
            "{what}: stored image is {}, not an object",
            show(actual)
        ));
        return;
    };
    for (name, want) in expected {
        match obj.get(name) {
            None => failures.push(format!(
                "{what} column {name}: missing from the stored image"
            )),
            Some(got) if !same(got, want) => failures.push(format!(
                "{what} column {name}: expected {}, stored {}",
                show(want),
                show(got)
            )),
            Some(_) => {}
        }
    }
    for name in obj.keys().filter(|k| !expected.contains_key(*k)) {
        failures.push(format!("{what}: stored image has unexpected column {name}"));
    }
}

/// One expected change.
/// MariaDB 11.8's UPDATE and DELETE images lack the generated columns: so do their stored
/// images, and `changed_columns` names only what the images show.
fn without_generated_in_updates_and_deletes(expected: &mut [Expect], cols: &[Col]) {
    let generated = |name: &str| cols.iter().any(|c| c.name == name && c.generated);
    for e in expected.iter_mut().filter(|e| e.kind != 1) {
        for img in [&mut e.before, &mut e.after].into_iter().flatten() {
            img.retain(|name, _| !generated(name));
        }
        if let Some(changed) = &mut e.changed {
            changed.retain(|name| !generated(name));
        }
    }
}

struct Expect {
    label: &'static str,
    table: String,
    kind: u8,
    pk: String,
    changed: Option<Vec<&'static str>>,
    before: Option<Image>,
    after: Option<Image>,
}

fn check_change(actual: &Row, e: &Expect, flavor: Flavor, f: &mut Vec<String>) {
    let what = format!("{flavor:?} {}", e.label);
    let table = &e.table;
    if actual.table != *table {
        f.push(format!("{what}: table {}, expected {table}", actual.table));
    }
    if actual.kind != e.kind {
        f.push(format!(
            "{what}: event_type {}, expected {}",
            actual.kind, e.kind
        ));
    }
    if actual.pk != e.pk {
        f.push(format!(
            "{what}: pk_values {:?}, expected {:?}",
            actual.pk, e.pk
        ));
    }
    let changed = e.changed.as_ref().map_or(Value::Null, |c| json!(c));
    if actual.changed != changed {
        f.push(format!(
            "{what}: changed_columns {}, expected {changed}",
            actual.changed
        ));
    }
    for (side, got, want) in [
        ("before", &actual.before, &e.before),
        ("after", &actual.after, &e.after),
    ] {
        match want {
            Some(img) => check_image(got, img, &format!("{what} {side}"), f),
            None if !got.is_null() => {
                f.push(format!("{what}: {side} image {}, expected null", show(got)))
            }
            None => {}
        }
    }
}

/// Cross-checks an expected image against the source's own `SELECT` of that row (session time
/// zone UTC), so that a wrong expectation is reported as such.
async fn cross_check(
    source: &TestServer,
    table: &str,
    cols: &[Col],
    expected: &Image,
    key: &str,
    what: &str,
    failures: &mut Vec<String>,
) {
    let checked: Vec<&Col> = cols.iter().filter(|c| c.check != Check::None).collect();
    let exprs: Vec<String> = checked
        .iter()
        .map(|c| match c.check {
            Check::Number => format!("{} + 0", c.name),
            Check::Bytes => format!("HEX({})", c.name),
            _ => c.name.to_string(),
        })
        .collect();
    let mut conn = source.conn(None).await;
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let row: mysql_async::Row = conn
        .query_first(format!(
            "SELECT {} FROM {table} WHERE {key}",
            exprs.join(", ")
        ))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: row {key} not found on the source"));
    conn.disconnect().await.ok();
    for (i, col) in checked.iter().enumerate() {
        let want = &expected[col.name];
        let text = match &row[i] {
            mysql_async::Value::NULL => None,
            mysql_async::Value::Bytes(b) => Some(String::from_utf8(b.clone()).unwrap()),
            other => Some(format!("{other:?}")),
        };
        let agrees = match (&text, want) {
            (None, w) => w.is_null(),
            (Some(_), Value::Null) => col.check == Check::Json && text.as_deref() == Some("null"),
            (Some(t), w) => match col.check {
                Check::Text => w.as_str() == Some(t.as_str()),
                Check::Number if w.is_f64() => t.parse::<f64>().ok() == w.as_f64(),
                Check::Number => t.parse::<i128>().ok() == w.to_string().parse::<i128>().ok(),
                Check::Bytes => w.as_str() == Some(crate::support::base64(&unhex(t)).as_str()),
                Check::Json => serde_json::from_str::<Value>(t).is_ok_and(|v| same(&v, w)),
                Check::None => true,
            },
        };
        if !agrees {
            failures.push(format!(
                "{what} column {}: the expectation {} disagrees with the source's SELECT {:?} \
                 (fix the test's expectation)",
                col.name,
                show(want),
                text.map(|t| t.chars().take(200).collect::<String>())
            ));
        }
    }
}

/// Two small tables for `pk_values` of other types: a primary key of VARBINARY, TIME(3),
/// DECIMAL, ENUM and DATETIME(6) in an order unlike the table's, and a table without a key
/// (the SHA-256 of the row image's JSON text: NULL as `null`, JSON as compact text, numbers as
/// JSON prints them).
const KEY_TABLES: &str = "\
    CREATE TABLE {db}.kt (tag VARCHAR(10), n DECIMAL(10,2) NOT NULL, t TIME(3) NOT NULL, \
        b VARBINARY(8) NOT NULL, e ENUM('x','y') NOT NULL, d DATETIME(6) NOT NULL, \
        PRIMARY KEY (b, t, n, e, d));
    CREATE TABLE {db}.nk (a INT, s VARCHAR(5), f DOUBLE, bu BIGINT UNSIGNED, j JSON)";

const KEY_ROWS: &str = "\
    INSERT INTO {db}.kt VALUES ('k', -1.5, '-01:00:00.5', X'00FF', 'y', '2024-01-02 03:04:05.6');
    INSERT INTO {db}.nk VALUES (-1, NULL, 1.5, 18446744073709551615, '{\"a\": [1, \"b\"]}')";

fn key_expectations(db: &str) -> Vec<Expect> {
    let img = |v: Value| -> Image {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    vec![
        Expect {
            label: "insert kt (pk of five types)",
            table: format!("{db}.kt"),
            kind: 1,
            pk: "AP8=|-01:00:00.500|-1.50|y|2024-01-02 03:04:05.600000".into(),
            changed: None,
            before: None,
            after: Some(img(json!({
                "tag": "k", "n": "-1.50", "t": "-01:00:00.500", "b": "AP8=", "e": "y",
                "d": "2024-01-02 03:04:05.600000",
            }))),
        },
        Expect {
            label: "insert nk (no key)",
            table: format!("{db}.nk"),
            kind: 1,
            // sha256 of {"a":-1,"s":null,"f":1.5,"bu":18446744073709551615,"j":{"a":[1,"b"]}}
            pk: "sha256:12e0982c546bf2ffeff121216b0a5644f59b6b46678c8598bb0c98549fa9ac77".into(),
            changed: None,
            before: None,
            after: Some(img(json!({
                "a": -1, "s": null, "f": 1.5, "bu": 18446744073709551615u64, "j": {"a": [1, "b"]},
            }))),
        },
    ]
}

/// Resolves with the stream's log once it logs an error (a decode failure ends the stream, and
/// waiting for the checkpoint would only time out without saying why).
pub(crate) async fn logged_error(stream: &Stream) -> String {
    loop {
        let log = stream.log();
        if log.contains(" ERROR ") {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Creates the every-type table, streams the workload and checks every value.
async fn every_type(flavor: Flavor) {
    every_type_into(flavor, Index::new()).await;
}

/// The whole check, into `index`.
async fn every_type_into(flavor: Flavor, index: Index) {
    let source = TestServer::shared(flavor);
    let db = unique("types");
    let table = format!("{db}.t");
    let cols = columns(flavor);
    let ddl: Vec<String> = cols
        .iter()
        .map(|c| format!("{} {}", c.name, c.ddl))
        .collect();
    source
        .exec(
            &format!(
                "CREATE DATABASE {db} CHARACTER SET utf8mb4;
             CREATE TABLE {table} ({}, PRIMARY KEY (id, name)) DEFAULT CHARSET = utf8mb4;
             {KEY_TABLES}",
                ddl.join(", ")
            )
            .replace("{db}", &db),
        )
        .await;

    let id = server_id();
    let mut flags = start_here(source, flavor == Flavor::Mysql).await.flags();
    flags.extend(["--schemas".to_string(), db.clone()]);
    let stream = Stream::start(source, &index, id, &flags);

    let known = |cells: Vec<Cell>| -> Vec<Cell> {
        cells
            .into_iter()
            .filter(|cell| cols.iter().any(|c| c.name == cell.col))
            .collect()
    };
    let (min, max, nulls, zero) = (
        known(min_row(flavor)),
        known(max_row(flavor)),
        known(null_row(flavor)),
        known(zero_row(flavor)),
    );
    let img_min = image(&cols, &min, "min row");
    let img_max = image(&cols, &max, "max row");
    let img_nulls = image(&cols, &nulls, "null row");
    let img_zero = image(&cols, &zero, "zero row");
    source
        .exec(&format!(
            "SET time_zone = '+05:30';
             {};
             SET SESSION sql_mode = '';
             {}",
            insert_sql(&table, &cols, &[&min, &max, &nulls]),
            insert_sql(&table, &cols, &[&zero]),
        ))
        .await;

    let (key_min, key_max, key_nulls, key_zero) = (
        "id = 1 AND name = 'min'",
        "id = 18446744073709551615 AND name = 'mäx😀'",
        "id = 3 AND name = 'nulls'",
        "id = 4 AND name = 'zero'",
    );
    let mut failures = Vec::new();
    for (img, key, what) in [
        (&img_min, key_min, "min row"),
        (&img_max, key_max, "max row"),
        (&img_nulls, key_nulls, "null row"),
        (&img_zero, key_zero, "zero row"),
    ] {
        let what = format!("{flavor:?} {what} (source)");
        cross_check(source, &table, &cols, img, key, &what, &mut failures).await;
    }

    let (min_set, mut min_changed) = min_update(flavor);
    let (zero_set, mut zero_changed) = zero_update();
    let (min_set, zero_set) = (known(min_set), known(zero_set));
    min_changed.retain(|n| cols.iter().any(|c| c.name == *n));
    zero_changed.retain(|n| cols.iter().any(|c| c.name == *n));
    let img_min2 = with(&img_min, &min_set);
    let img_zero2 = with(&img_zero, &zero_set);
    source
        .exec(
            &format!(
                "SET time_zone = '+05:30';
             {};
             SET SESSION sql_mode = '';
             {};
             DELETE FROM {table} WHERE {key_max};
             {KEY_ROWS}",
                update_sql(&table, &cols, &min_set, key_min),
                update_sql(&table, &cols, &zero_set, key_zero),
            )
            .replace("{db}", &db),
        )
        .await;
    for (img, key, what) in [
        (&img_min2, key_min, "min row after update"),
        (&img_zero2, key_zero, "zero row after update"),
    ] {
        let what = format!("{flavor:?} {what} (source)");
        cross_check(source, &table, &cols, img, key, &what, &mut failures).await;
    }

    let max_pk = "18446744073709551615|mäx😀".to_string();
    let mut expected = vec![
        Expect {
            table: table.clone(),
            label: "insert min row",
            kind: 1,
            pk: "1|min".into(),
            changed: None,
            before: None,
            after: Some(img_min.clone()),
        },
        Expect {
            table: table.clone(),
            label: "insert max row",
            kind: 1,
            pk: max_pk.clone(),
            changed: None,
            before: None,
            after: Some(img_max.clone()),
        },
        Expect {
            table: table.clone(),
            label: "insert null row",
            kind: 1,
            pk: "3|nulls".into(),
            changed: None,
            before: None,
            after: Some(img_nulls),
        },
        Expect {
            table: table.clone(),
            label: "insert zero row",
            kind: 1,
            pk: "4|zero".into(),
            changed: None,
            before: None,
            after: Some(img_zero.clone()),
        },
        Expect {
            table: table.clone(),
            label: "update min row",
            kind: 2,
            pk: "1|min".into(),
            changed: Some(min_changed),
            before: Some(img_min),
            after: Some(img_min2),
        },
        Expect {
            table: table.clone(),
            label: "update zero row",
            kind: 2,
            pk: "4|zero".into(),
            changed: Some(zero_changed),
            before: Some(img_zero),
            after: Some(img_zero2),
        },
        Expect {
            table: table.clone(),
            label: "delete max row",
            kind: 3,
            pk: max_pk,
            changed: None,
            before: Some(img_max),
            after: None,
        },
    ];
    if flavor == Flavor::Mariadb118 {
        without_generated_in_updates_and_deletes(&mut expected, &cols);
    }
    expected.extend(key_expectations(&db));

    tokio::select! {
        _ = index.wait_caught_up(source, id) => {}
        log = logged_error(&stream) => {
            panic!("{flavor:?}: bintrail stream failed before catching up:\n{log}")
        }
    }
    let changes = index.changes().await;
    if changes.len() != expected.len() {
        failures.push(format!(
            "{flavor:?}: the index holds {} changes, expected {}: {:?}",
            changes.len(),
            expected.len(),
            changes
                .iter()
                .map(|r| (r.kind, r.pk.as_str()))
                .collect::<Vec<_>>()
        ));
    }
    for (actual, e) in changes.iter().zip(&expected) {
        check_change(actual, e, flavor, &mut failures);
    }
    let code = stream.stop().await;
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(code, 0, "bintrail stream exit status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_every_type_is_stored_by_its_encoding_rule() {
    every_type(Flavor::Mysql).await;
}

/// The same rows through LOAD DATA LOCAL INFILE instead of INSERTs (see tests/it/load_data.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_every_type_is_stored_by_its_encoding_rule_through_load_data() {
    every_type_into(Flavor::Mysql, Index::on(TestServer::index_with_load_data())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_every_type_is_stored_by_its_encoding_rule() {
    every_type(Flavor::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb118_every_type_is_stored_by_its_encoding_rule() {
    every_type(Flavor::Mariadb118).await;
}
