"""python-mysql-replication peer: read + decode every row of every rows event of the backlog.

Usage: pyrepl.py HOST PORT START_FILE END_FILE
Reads from START_FILE:4 up to (not into) END_FILE, iterating every row's values; prints JSON.
"""
import json
import sys
import time
from importlib.metadata import version

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

host, port, start_file, end_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
t0 = time.perf_counter()
stream = BinLogStreamReader(
    connection_settings={"host": host, "port": port, "user": "root", "passwd": ""},
    server_id=987654,
    log_file=start_file,
    log_pos=4,
    resume_stream=True,
    blocking=False,
    only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
)
rows = 0
values = 0
for ev in stream:
    if stream.log_file >= end_file:
        break
    for row in ev.rows:
        rows += 1
        for image in row.values():  # "values" or "before_values"/"after_values"
            values += len(image)
stream.close()
secs = time.perf_counter() - t0
print(json.dumps({"rows": rows, "values": values, "seconds": secs, "rows_per_s": rows / secs,
                  "version": version("mysql-replication")}))
