"""Reads a bintrail archive with an analytics engine and prints its rows as JSON lines.

Usage: read_archive.py pyarrow|duckdb DIR

Each line holds the file's columns (the JSON images as the text stored), event_timestamp as
Unix seconds (`event_time`), and the Hive partition values the engine derived from the path
(schema, table, date, hour), so the test can check that the engine decodes the layout.
"""

import json
import sys


def pyarrow_rows(root):
    import pyarrow.dataset as ds

    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    for row in table.to_pylist():
        yield row


def duckdb_rows(root):
    import duckdb

    con = duckdb.connect()
    cur = con.execute(
        f"SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true) "
        "WHERE event_id > 0 ORDER BY event_id"
    )
    names = [d[0] for d in cur.description]
    for values in cur.fetchall():
        yield dict(zip(names, values))


def main():
    engine, root = sys.argv[1], sys.argv[2]
    rows = pyarrow_rows(root) if engine == "pyarrow" else duckdb_rows(root)
    for row in rows:
        out = {}
        for key, value in row.items():
            if key == "event_timestamp":
                out["event_time"] = int(value.timestamp())
            elif key in ("date", "hour"):
                out[key] = str(value)
            else:
                out[key] = value
        print(json.dumps(out, sort_keys=True))


main()
