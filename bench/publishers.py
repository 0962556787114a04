"""Publisher processes for the benchmarks: many devices, each publishing small JSON telemetry with paho.

Run as ``python bench/publishers.py HOST PORT QOS COUNT DEVICE_ID[:SECRET] ...``; prints the seconds spent.
Each device has its own MQTT connection; messages go round-robin across devices, QoS 1 with up to 1,000 in
flight per connection.
"""

from __future__ import annotations

import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    host, port, qos, per_device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    devices = [arg.split(":", 1) if ":" in arg else [arg, ""] for arg in sys.argv[5:]]
    clients = []
    for device_id, secret in devices:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311)
        if secret:
            client.username_pw_set(device_id, secret)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect(host, port, keepalive=60)
        client.loop_start()
        clients.append((device_id, client))
    time.sleep(0.5)
    start = time.perf_counter()
    infos = []
    base = int(time.time() * 1000) - per_device
    for i in range(per_device):
        for device_id, client in clients:
            payload = b'{"ts":%d,"values":{"power_w":%d.5,"on":true}}' % (base + i, i % 3000)
            info = client.publish(f"tos/v1/{device_id}/telemetry", payload, qos=qos)
            if qos:
                infos.append(info)
        if len(infos) > 20000:
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - start
    for _, client in clients:
        client.disconnect()
        client.loop_stop()
    print(f"{elapsed:.3f}")


if __name__ == "__main__":
    main()
