"""A process of simulated devices that answer every command at once (for the command benchmark).

``python bench/responder.py HOST PORT DEVICE_ID:SECRET ...``; prints "ready" when all are subscribed.
"""

from __future__ import annotations

import socket
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    ready = threading.Barrier(len(sys.argv[3:]) + 1)
    clients = []
    for arg in sys.argv[3:]:
        device_id, secret = arg.split(":", 1)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311)
        client.username_pw_set(device_id, secret)
        client.will_set(f"tos/v1/{device_id}/status", b"offline", qos=1, retain=True)

        def on_connect(c: mqtt.Client, _u: object, _f: object, _r: object, _p: object, d: str = device_id) -> None:
            c.subscribe(f"tos/v1/{d}/commands/+", qos=1)

        def on_subscribe(c: mqtt.Client, _u: object, _m: object, _r: object, _p: object, d: str = device_id) -> None:
            c.publish(f"tos/v1/{d}/status", b"online", qos=1, retain=True)
            ready.wait()

        def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            c.publish(msg.topic + "/response", b'{"ok":true,"result":{"done":true}}', qos=1)

        client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
        client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.connect(host, port, keepalive=60)
        client.loop_start()
        clients.append(client)
    ready.wait()
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    for client in clients:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    main()
