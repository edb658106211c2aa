"""The one output format of the Python test clients: one JSON object per line, {"event": ..., "data": ...},
which the Rust tests read (tests/common/clients.rs)."""
import json
import sys
import threading

# python-socketio runs event handlers on its own threads while the main thread prints too: one lock and
# one write per line, or two lines can interleave (print writes the text and the newline separately).
_lock = threading.Lock()


def out(event, data=None):
    line = json.dumps({"event": event, "data": data}) + "\n"
    with _lock:
        sys.stdout.write(line)
        sys.stdout.flush()
