"""python-socketio scenarios the Rust integration tests run against a real candlecast (tests/socketio_*.rs).

Usage: scenarios.py SCENARIO URL TOKEN [ARGS...]   (TOKEN "-" means no key)
Prints one JSON object per line, {"event": ..., "data": ...}; the Rust test asserts on them.
"""
import sys
import time

import socketio

from jsonlines import out

scenario, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
token = None if token == "-" else token


def client():
    sio = socketio.Client()
    sio.on("error", lambda data: out("error", data))
    sio.on("connect_error", lambda data: out("connect_error", data))
    sio.on("status", lambda data: out("status", data))
    sio.on("data_received", lambda data: out("data_received", data))
    return sio


def connect(sio, key=token, **kw):
    try:
        sio.connect(url, auth={"token": key} if key else None, wait_timeout=10, **kw)
        out("connected", {"transport": sio.transport(), "sid": sio.get_sid()})
        return True
    except socketio.exceptions.ConnectionError as e:
        out("refused", str(e))
        return False


def now_ms():
    return int(time.time() * 1000)


def acks():
    sio = client()
    connect(sio)
    out("ack_trade", sio.call("trade", {"symbol": "ACKTEST", "price": 10.5, "qty": 2, "side": "buy", "timestamp": now_ms()}))
    batch = [{"symbol": "ACKTEST", "price": 10 + i, "qty": 1, "timestamp": now_ms()} for i in range(5)]
    out("ack_trades", sio.call("trades", batch))
    mixed = [
        {"symbol": "ACKTEST", "price": 11, "qty": 1},
        {"symbol": "ACKTEST", "price": -1, "qty": 1},
        {"symbol": "ACKTEST"},
        {"symbol": "ACKTEST", "price": 12, "qty": 1, "timestamp": now_ms() + 3_600_000},
        {"symbol": "not valid!", "price": 12, "qty": 1},
    ]
    out("ack_mixed", sio.call("trades", mixed))
    out("ack_unknown", sio.call("no_such_event", {}))
    out("ack_join_script", sio.call("join_script"))
    sio.disconnect()


def auth():
    sio = client()
    connect(sio)  # TOKEN is a wrong key here
    sio = client()
    if connect(sio, key=None):
        out("ack_join_script", sio.call("join_script"))
        out("ack_trade", sio.call("trade", {"symbol": "AUTHTEST", "price": 1, "qty": 1}))
        out("ack_join_frontend", sio.call("join_frontend"))
        sio.disconnect()


def csv_errors():
    sio = client()
    connect(sio)
    trades = (
        "timestamp,symbol,side,quantity,price,profit_loss,strategy\n"
        "2023-01-01T10:00:00,AAPL,BUY,100,150.00,25.50,Three Red Bodies\n"
        "yesterday,AAPL,BUY,100,150.00,25.50,Three Red Bodies\n"
        "2023-01-01T10:05:00,TSLA,HOLD,50,800.00,-15.25,Three Red Bodies\n"
        "2023-01-01T10:06:00,TSLA,SELL,50,800.00,-15.25,Three Red Bodies\n"
    )
    market = (
        "timestamp,symbol,open,high,low,close,volume,rsi,signal_strength\n"
        "2023-01-01T10:00:00,AAPL,149.50,151.00,149.00,150.00,50000,65.5,0.75\n"
        "2023-01-01T10:01:00,AAPL,149.50,148.00,149.00,150.00,50000,65.5,0.75\n"
        "2023-01-01T10:02:00,AAPL,149.50,151.00,149.00\n"
    )
    out("ack", sio.call("send_trading_data", {"trades_csv": trades, "market_data_csv": market, "timestamp": "2023-01-01T10:00:00"}))
    sio.disconnect()


def stream():
    symbol, seconds = args[0], float(args[1])
    sio = client()
    connect(sio)
    accepted = 0
    end = time.time() + seconds
    while time.time() < end:
        ack = sio.call("trades", [{"symbol": symbol, "price": 100 + (i % 7), "qty": 0.5, "side": "buy" if i % 2 else "sell", "timestamp": now_ms()} for i in range(5)])
        accepted += ack["accepted"]
        time.sleep(0.1)
    out("streamed", {"accepted": accepted})
    sio.disconnect()


{"acks": acks, "auth": auth, "csv_errors": csv_errors, "stream": stream}[scenario]()
out("done")
