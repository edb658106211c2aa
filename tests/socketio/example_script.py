"""Seed 003's example_script.py flow, against candlecast.

Connects with python-socketio's default transports (long-polling, then the upgrade to WebSocket), joins
the script room, sends sample trading data every INTERVAL seconds, prints each confirmation, and
disconnects after UPDATES updates. The only change a seed-003 script needs is the key in `auth`.

Usage: example_script.py URL [TOKEN] [UPDATES] [INTERVAL]
Prints one JSON object per line: {"event": ..., "data": ...}; the last line is {"event": "done", ...}.
"""
import sys
import threading
from datetime import datetime, timedelta, timezone

import socketio

from jsonlines import out

url = sys.argv[1]
token = sys.argv[2] if len(sys.argv) > 2 else None
updates = int(sys.argv[3]) if len(sys.argv) > 3 else 5
interval = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0

sio = socketio.Client()
received = threading.Semaphore(0)


@sio.event
def connect():
    out("connect", {"transport": sio.transport()})


@sio.event
def connect_error(data):
    out("connect_error", data)


@sio.on("status")
def on_status(data):
    out("status", data)


@sio.on("data_received")
def on_data_received(data):
    out("data_received", data)
    received.release()


@sio.on("error")
def on_error(data):
    out("error", data)


def sample(i):
    # Whole minutes in the past, so the market-data rows are closed 1m bars.
    t = (datetime.now(timezone.utc) - timedelta(minutes=10 - i)).replace(second=0, microsecond=0)
    stamp = t.strftime("%Y-%m-%dT%H:%M:%S")
    trades = "timestamp,symbol,side,quantity,price,profit_loss,strategy\n" + f"{stamp},AAPL,BUY,100,{150 + i}.00,25.50,Three Red Bodies\n"
    market = "timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n" + f"{stamp},AAPL,149.50,{151 + i}.00,149.00,{150 + i}.00,50000,{60 + i}.5,0.75\n"
    return {"trades_csv": trades, "market_data_csv": market, "timestamp": stamp}


try:
    sio.connect(url, auth={"token": token} if token else None, wait_timeout=10)
except socketio.exceptions.ConnectionError as e:
    out("refused", str(e))
    sys.exit(0)

out("transport", sio.transport())
sio.emit("join_script")
for i in range(updates):
    sio.emit("send_trading_data", sample(i))
    if not received.acquire(timeout=20):
        out("timeout", i)
        break
    if i + 1 < updates:
        sio.sleep(interval)
sio.disconnect()
out("done", {"updates": updates})
