"""The TOS+ device SDK: connect a device (or a simulator) to a TOS+ hub over MQTT.

Self-contained on purpose: it needs only the standard library, aiomqtt (paho-mqtt) and orjson, and imports
nothing else from tosplus. See docs/sdk.md.
"""

from tosplus.sdk.buffer import Entry, MemoryOutbox, Outbox, SqliteOutbox, outbox_path
from tosplus.sdk.client import CommandHandler, DesiredHandler, DeviceClient, ErrorHandler
from tosplus.sdk.errors import DeviceError
from tosplus.sdk.payments import DevicePayments, PaymentCredentials, PaymentError, PaymentRequest

__all__ = [
    "CommandHandler",
    "DesiredHandler",
    "DeviceClient",
    "DeviceError",
    "DevicePayments",
    "Entry",
    "ErrorHandler",
    "MemoryOutbox",
    "Outbox",
    "PaymentCredentials",
    "PaymentError",
    "PaymentRequest",
    "SqliteOutbox",
    "outbox_path",
]
