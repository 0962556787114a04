"""Device accounts in an external Mosquitto, administered through its dynamic-security plugin.

The hub talks to the plugin the way ``mosquitto_ctrl`` does: JSON commands published to
``$CONTROL/dynamic-security/v1``, answers read from ``$CONTROL/dynamic-security/v1/response``. Every command
carries a ``correlationData`` of ours, because the broker sends each answer to *every* subscriber of the
response topic (another admin's answers arrive too and are ignored).

What gets created:

* per device ``d``: a client ``d`` (password = the device secret) holding one role ``dev-d`` that allows
  ``publishClientSend``, ``subscribePattern`` and ``publishClientReceive`` on ``tos/v1/d/#``. Mosquitto 2.0
  does not substitute ``%u``/``%c`` in dynamic-security ACL topics, hence one role per device;
* the hub's account (role ``tosplus-hub``): publish to and receive ``tos/v1/#``, subscribe to the device →
  hub filters of :data:`tosplus.gateway.topics.HUB_SUBSCRIPTIONS` and their ``$share/+/...`` forms (the
  plugin checks a shared subscription against its full ``$share/group/...`` text), and use
  ``$CONTROL/dynamic-security/v1``;
* default access: ``publishClientSend`` and ``subscribe`` denied, so a device reaches nothing but its own
  topics. ``publishClientReceive`` is left as the operator set it: the roles above allow it explicitly, and
  denying it by default would silence every admin (and other application) whose role relies on it -
  including the answers to these very commands.

Cost, measured on Mosquitto 2.0.11 (2-core VM). The plugin rewrites its whole JSON file after *every*
modifying command, not once per message. So creating n devices (two commands each) costs O(n²) broker
time, and the batch size barely changes that:

* 1,000 devices take about 5 s, 2,000 about 20 s, 3,000 about 45 s;
* 10,000 devices take 10.5-13 minutes (636 s and 784 s in two runs);
* at 10,000 devices each single change (set a password, disable) costs about 65 ms.

What helps is few commands per device (the role's ACLs go inline in ``createRole``, the role inline in
``createClient``) and no waiting on the network. Commands go out at QoS 0 because a QoS 1 publish costs
about 40 ms per round trip: the broker's PUBACK and its answer meet Nagle and delayed ACKs.

The batch size matters for everyone else on the broker. Mosquitto is single-threaded and serves nobody while
it works through one message. With fixed batches of 500 commands, other clients saw stalls of up to 17 s
(median 4 s) during a 3,000-device import. So batches are sized adaptively to take about
:attr:`DynsecAdmin.batch_target_s` (0.05 s) of broker time each. The same import then takes just as long,
stalls other clients at most 0.13-0.26 s and delays them by a median of about 45 ms.

Other behaviour of 2.0.11 this module relies on: ``disableClient``, ``setClientPassword`` and
``deleteClient`` disconnect a live session of that client at once; ``addClientRole`` for a role the client
already has answers "Internal error" (so we look before adding); a failed command does not stop the others
of its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import aiomqtt
import orjson

from tosplus.errors import ConfigError, Conflict, InvalidInput, NotFound, TosError
from tosplus.gateway import topics

log = logging.getLogger(__name__)

COMMAND_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"
HUB_ROLE = "tosplus-hub"
DEVICE_ROLE_PREFIX = "dev-"

Command = dict[str, Any]
Response = dict[str, Any]

# CONNACK codes that mean "who you are / your password is not accepted" (MQTT 3.1.1 and MQTT 5).
_AUTH_REFUSED = {4, 5, 134, 135}
_FORBIDDEN_IN_ID = ("/", "+", "#", "\x00")


def device_role(device_id: str) -> str:
    return f"{DEVICE_ROLE_PREFIX}{device_id}"


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def device_acls(device_id: str) -> list[dict[str, Any]]:
    own = topics.device_filter(device_id)
    sends = [_acl("publishClientSend", flt) for flt in topics.device_publish_filters(device_id)]
    return [*sends, _acl("subscribePattern", own), _acl("publishClientReceive", own)]


def hub_acls() -> list[dict[str, Any]]:
    everything = f"{topics.PREFIX}#"
    acls = [_acl("publishClientSend", everything), _acl("publishClientReceive", everything)]
    for flt in topics.HUB_SUBSCRIPTIONS:
        acls.append(_acl("subscribePattern", flt))
        acls.append(_acl("subscribePattern", f"$share/+/{flt}"))
    acls += [
        _acl("publishClientSend", COMMAND_TOPIC),
        _acl("subscribePattern", RESPONSE_TOPIC),
        _acl("publishClientReceive", RESPONSE_TOPIC),
    ]
    return acls


class DynsecAdmin:
    """Administers a Mosquitto dynamic-security plugin over MQTT ($CONTROL/dynamic-security/v1).

    Use as ``async with DynsecAdmin(...) as admin:``; entering connects with the admin account and checks
    that the plugin answers. Operations may run concurrently; each waits for the answers to its own
    commands and raises a :class:`~tosplus.errors.TosError` (subclass) naming what the broker refused.
    """

    probe_timeout_s = 5.0
    batch_target_s = 0.05  # broker time one message of commands should take (the broker serves no one else)
    first_batch = 64  # commands in the first message of a bulk operation, before we know the broker's pace
    max_batch = 500

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        timeout: float = 60.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self._password = username, password
        self.timeout = timeout
        self.hub_username: str | None = None
        self._prefix = f"tosplus-{secrets.token_hex(4)}-"
        self.client_id = f"{self._prefix}admin"  # unique, so two hubs' admin sessions never take over each other
        self._seq = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Response]] = {}
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lost: TosError | None = None
        self._open = False
        self._reconnecting = asyncio.Lock()

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # connection ---------------------------------------------------------------------------------------
    async def __aenter__(self) -> DynsecAdmin:
        await self._connect()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        await self._disconnect(TosError(f"the hub's admin session with the broker at {self.where} was closed"))

    async def _connect(self) -> None:
        """Connect with the admin account, subscribe to the answers and check that the plugin answers."""
        stack = contextlib.AsyncExitStack()
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self._password,
            identifier=self.client_id,
            timeout=self.probe_timeout_s,
        )
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttCodeError as exc:
            await stack.aclose()
            if _code(exc.rc) in _AUTH_REFUSED:
                raise ConfigError(f"the broker at {self.where} refused the hub's admin credentials") from exc
            raise ConfigError(f"the broker at {self.where} refused the hub's admin session ({exc})") from exc
        except aiomqtt.MqttError as exc:
            await stack.aclose()
            raise ConfigError(f"the hub could not reach the broker at {self.where} ({exc})") from exc
        self._stack, self._client, self._lost = stack, client, None
        try:
            try:
                granted = await client.subscribe(RESPONSE_TOPIC, qos=1)
            except aiomqtt.MqttError as exc:
                raise ConfigError(f"the broker at {self.where} dropped the hub's admin session ({exc})") from exc
            if any(_code(rc) >= 0x80 for rc in granted):
                raise ConfigError(
                    f"the broker at {self.where} does not let '{self.username}' read {RESPONSE_TOPIC}; "
                    "the admin account needs the dynamic-security admin role"
                )
            self._reader = asyncio.create_task(self._read(client), name="dynsec-responses")
            stack.push_async_callback(self._stop_reader)
            try:
                await self._execute([{"command": "getDefaultACLAccess"}], wait_s=self.probe_timeout_s)
            except TimeoutError as exc:
                raise ConfigError(
                    f"the broker at {self.where} did not answer dynamic-security commands; "
                    "is mosquitto_dynamic_security loaded?"
                ) from exc
        except BaseException:
            await self._disconnect(TosError(f"the hub's admin session with the broker at {self.where} failed"))
            raise

    async def _disconnect(self, error: TosError) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()
        self._fail_pending(error)

    async def _reconnect(self) -> None:
        """After the broker dropped the admin session (e.g. it restarted), open a new one."""
        async with self._reconnecting:
            if self._client is not None and self._lost is None:
                return  # another operation reconnected meanwhile
            cause = self._lost or TosError(f"the hub has no admin session with the broker at {self.where}")
            await self._disconnect(cause)
            try:
                await self._connect()
            except TosError as exc:
                raise TosError(f"{cause.detail}, and a new admin session failed: {exc.detail}") from exc
            log.info("the hub's admin session with the broker at %s is back", self.where)

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                self._deliver(message.payload)
        except aiomqtt.MqttError as exc:
            self._lost = TosError(f"the hub lost its admin session with the broker at {self.where} ({exc})")
            self._fail_pending(self._lost)

    def _deliver(self, payload: Any) -> None:
        if not isinstance(payload, bytes | bytearray | str):
            return
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("unreadable answer on %s from the broker at %s", RESPONSE_TOPIC, self.where)
            return
        responses = document.get("responses") if isinstance(document, dict) else None
        if not isinstance(responses, list):
            return
        for response in responses:
            if not isinstance(response, dict):
                continue
            correlation = response.get("correlationData")
            if not isinstance(correlation, str) or not correlation.startswith(self._prefix):
                continue  # another admin's answer: the broker sends every answer to every subscriber
            future = self._pending.pop(correlation, None)
            if future is not None and not future.done():
                future.set_result(response)

    def _fail_pending(self, error: TosError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    # commands -----------------------------------------------------------------------------------------
    async def _execute(self, commands: Sequence[Command], wait_s: float | None = None) -> list[Response]:
        """Send one message of commands and return their answers in order."""
        if not self._open and self._client is None:
            raise TosError("the dynamic-security admin is not connected (use it as 'async with')")
        if self._open and (self._client is None or self._lost is not None):
            await self._reconnect()
        client = self._client
        assert client is not None
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Response]] = []
        sent: list[Command] = []
        for command in commands:
            correlation = f"{self._prefix}{next(self._seq)}"
            future: asyncio.Future[Response] = loop.create_future()
            self._pending[correlation] = future
            futures.append(future)
            sent.append({**command, "correlationData": correlation})
        try:
            # QoS 0 on purpose: a QoS 1 publish waits ~40 ms on the broker's Nagle-delayed PUBACK + answer.
            await client.publish(COMMAND_TOPIC, orjson.dumps({"commands": sent}), qos=0)
            async with asyncio.timeout(self.timeout if wait_s is None else wait_s):
                return list(await asyncio.gather(*futures))
        except aiomqtt.MqttError as exc:
            self._lost = TosError(f"the hub could not send commands to the broker at {self.where} ({exc})")
            raise self._lost from exc
        finally:
            for command in sent:
                self._pending.pop(command["correlationData"], None)

    async def _batch(self, commands: Sequence[Command]) -> list[Response]:
        try:
            return await self._execute(commands)
        except TimeoutError as exc:
            raise TosError(
                f"the broker at {self.where} did not answer {len(commands)} dynamic-security command(s) "
                f"within {self.timeout:g} s"
            ) from exc

    async def _command(self, command: Command) -> Response:
        return (await self._batch([command]))[0]

    async def _run(self, commands: Sequence[Command]) -> list[Response]:
        """Send many commands in adaptively sized messages, one at a time; answers in order."""
        answers: list[Response] = []
        size = self.first_batch
        index = 0
        while index < len(commands):
            batch = commands[index : index + size]
            started = time.monotonic()
            answers += await self._batch(batch)
            index += len(batch)
            per_command = max((time.monotonic() - started) / len(batch), 1e-5)
            size = max(1, min(self.max_batch, int(self.batch_target_s / per_command)))
        return answers

    def _raise_errors(self, what: str, commands: Sequence[Command], answers: Sequence[Response]) -> None:
        failures = [
            f"{command['command']} {_subject(command)}: {answer['error']}"
            for command, answer in zip(commands, answers, strict=True)
            if "error" in answer
        ]
        if failures:
            shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
            raise TosError(f"the broker at {self.where} refused to {what}: {shown}")

    # reading ------------------------------------------------------------------------------------------
    async def _clients(self) -> dict[str, Response]:
        answer = await self._command({"command": "listClients", "verbose": True, "count": -1})
        self._check(answer, "list its clients")
        return {c["username"]: c for c in answer.get("data", {}).get("clients", []) if "username" in c}

    async def _roles(self) -> set[str]:
        answer = await self._command({"command": "listRoles", "count": -1})
        self._check(answer, "list its roles")
        return {str(r) for r in answer.get("data", {}).get("roles", [])}

    async def _device(self, device_id: str) -> Response:
        """The broker's record of one device; NotFound / Conflict when it is missing or not ours."""
        self._check_id(device_id)
        answer = await self._command({"command": "getClient", "username": device_id})
        if answer.get("error") == "Client not found":
            raise NotFound(f"device '{device_id}' has no account on the broker at {self.where}")
        self._check(answer, f"look up device '{device_id}'")
        client: Response = answer.get("data", {}).get("client", {})
        if not _is_device(device_id, client):
            raise Conflict(self._not_ours(device_id))
        return client

    def _check(self, answer: Response, what: str) -> None:
        if "error" in answer:
            raise TosError(f"the broker at {self.where} refused to {what}: {answer['error']}")

    def _not_ours(self, device_id: str) -> str:
        return (
            f"the broker at {self.where} already has a client '{device_id}' that is not a TOS+ device "
            f"(it lacks role '{device_role(device_id)}'); remove it or use another device id"
        )

    def _check_id(self, device_id: str) -> None:
        if not device_id or any(ch in device_id for ch in _FORBIDDEN_IN_ID):
            raise InvalidInput(f"device id '{device_id}' cannot be a broker account: no '/', '+' or '#'")
        if device_id in (self.username, self.hub_username, HUB_ROLE):
            raise InvalidInput(f"device id '{device_id}' is the name of the hub's own broker account")

    async def list_devices(self) -> list[str]:
        """Ids of every device account on the broker (clients holding their ``dev-{id}`` role)."""
        return sorted(name for name, client in (await self._clients()).items() if _is_device(name, client))

    # the hub's account --------------------------------------------------------------------------------
    async def ensure_hub_account(self, username: str, password: str) -> None:
        """Create or repair the hub's account, its ``tosplus-hub`` role and the deny-by-default access."""
        if not username or not password:
            raise ConfigError("the hub's broker account needs a user name and a password")
        if username == self.username:
            raise ConfigError(
                f"the hub's broker account must differ from the admin account '{self.username}' "
                "(the hub sets its password)"
            )
        self.hub_username = username
        default, role, client = await self._batch(
            [
                {"command": "getDefaultACLAccess"},
                {"command": "getRole", "rolename": HUB_ROLE},
                {"command": "getClient", "username": username},
            ]
        )
        self._check(default, "show its default access")
        commands: list[Command] = []

        allowed = {a.get("acltype"): a.get("allow") for a in default.get("data", {}).get("acls", [])}
        opened = [t for t in ("publishClientSend", "subscribe") if allowed.get(t, True)]
        if opened:
            log.warning("the broker at %s allowed %s by default; denying it", self.where, ", ".join(opened))
            commands.append(
                {"command": "setDefaultACLAccess", "acls": [{"acltype": t, "allow": False} for t in opened]}
            )

        wanted = hub_acls()
        if role.get("error") == "Role not found":
            commands.append({"command": "createRole", "rolename": HUB_ROLE, "acls": wanted})
        else:
            self._check(role, f"show role '{HUB_ROLE}'")
            have = {
                (a.get("acltype"), a.get("topic"), a.get("allow"))
                for a in role.get("data", {}).get("role", {}).get("acls", [])
            }
            for acl in wanted:
                if (acl["acltype"], acl["topic"], True) in have:
                    continue
                if any(t == acl["acltype"] and topic == acl["topic"] for t, topic, _ in have):
                    # The same topic with allow false: addRoleACL would refuse a duplicate, so replace it.
                    commands.append(
                        {
                            "command": "removeRoleACL",
                            "rolename": HUB_ROLE,
                            "acltype": acl["acltype"],
                            "topic": acl["topic"],
                        }
                    )
                commands.append({"command": "addRoleACL", "rolename": HUB_ROLE, **acl})

        if client.get("error") == "Client not found":
            commands.append(
                {
                    "command": "createClient",
                    "username": username,
                    "password": password,
                    "roles": [{"rolename": HUB_ROLE}],
                }
            )
        else:
            self._check(client, f"show client '{username}'")
            record = client.get("data", {}).get("client", {})
            if HUB_ROLE not in _role_names(record):
                commands.append({"command": "addClientRole", "username": username, "rolename": HUB_ROLE})
            if record.get("disabled"):
                log.warning("the hub's account '%s' was disabled on the broker; enabling it", username)
                commands.append({"command": "enableClient", "username": username})
            # setClientPassword drops a live hub session, so only send it when the password is wrong.
            if not await self._password_works(username, password):
                commands.append({"command": "setClientPassword", "username": username, "password": password})

        if commands:
            answers = await self._run(commands)
            self._raise_errors(f"set up the hub's account '{username}'", commands, answers)
            log.info("the hub's account '%s' on the broker at %s is set up", username, self.where)

    async def _password_works(self, username: str, password: str) -> bool:
        """Try the credentials with a throw-away client id (so no session of the hub is taken over)."""
        try:
            async with aiomqtt.Client(
                self.host,
                self.port,
                username=username,
                password=password,
                identifier=f"{self._prefix}check",
                timeout=self.probe_timeout_s,
            ):
                return True
        except aiomqtt.MqttCodeError as exc:
            if _code(exc.rc) in _AUTH_REFUSED:
                return False
            raise TosError(f"the broker at {self.where} refused a test connection ({exc})") from exc
        except aiomqtt.MqttError as exc:
            raise TosError(f"the hub could not reach the broker at {self.where} ({exc})") from exc

    # devices ------------------------------------------------------------------------------------------
    async def upsert_devices(self, creds: Sequence[tuple[str, str]]) -> None:
        """Create each device's account and role, or set the password of one that exists.

        Checks everything before changing anything: ids must be usable as broker accounts, appear once, and
        must not name a client the hub did not create.
        """
        if not creds:
            return
        seen: set[str] = set()
        for device_id, secret in creds:
            self._check_id(device_id)
            if not secret:
                raise InvalidInput(f"device '{device_id}' needs a non-empty secret")
            if device_id in seen:
                raise InvalidInput(f"device '{device_id}' appears twice")
            seen.add(device_id)
        started = time.monotonic()
        clients = await self._clients()
        roles = await self._roles()
        for device_id, _ in creds:
            if device_id in clients and not _is_device(device_id, clients[device_id]):
                raise Conflict(self._not_ours(device_id))

        commands: list[Command] = []
        created = updated = 0
        for device_id, secret in creds:
            role = device_role(device_id)
            if role not in roles:
                commands.append({"command": "createRole", "rolename": role, "acls": device_acls(device_id)})
            if device_id in clients:
                commands.append({"command": "setClientPassword", "username": device_id, "password": secret})
                updated += 1
            else:
                commands.append(
                    {
                        "command": "createClient",
                        "username": device_id,
                        "password": secret,
                        "roles": [{"rolename": role}],
                    }
                )
                created += 1
        answers = await self._run(commands)

        # Someone created a device between our listing and our commands: set its password instead.
        retry = [
            {"command": "setClientPassword", "username": c["username"], "password": c["password"]}
            for c, a in zip(commands, answers, strict=True)
            if c["command"] == "createClient" and a.get("error") == "Client already exists"
        ]
        settled = [
            (c, a)
            for c, a in zip(commands, answers, strict=True)
            if not (c["command"] == "createRole" and a.get("error") == "Role already exists")
            and not (c["command"] == "createClient" and a.get("error") == "Client already exists")
        ]
        self._raise_errors("provision devices", [c for c, _ in settled], [a for _, a in settled])
        if retry:
            self._raise_errors("provision devices", retry, await self._run(retry))
        log.info(
            "provisioned %d devices on the broker at %s (%d new, %d passwords set) in %.1f s",
            len(creds),
            self.where,
            created,
            updated,
            time.monotonic() - started,
        )

    async def set_password(self, device_id: str, secret: str) -> None:
        """Give a device a new secret; Mosquitto drops a session that used the old one."""
        if not secret:
            raise InvalidInput(f"device '{device_id}' needs a non-empty secret")
        await self._device(device_id)
        command = {"command": "setClientPassword", "username": device_id, "password": secret}
        answer = await self._command(command)
        self._check(answer, f"set the password of device '{device_id}'")

    async def disable_device(self, device_id: str) -> None:
        """Refuse the device's connections; Mosquitto also drops its live session."""
        await self._device(device_id)
        answer = await self._command({"command": "disableClient", "username": device_id})
        self._check(answer, f"disable device '{device_id}'")

    async def enable_device(self, device_id: str) -> None:
        await self._device(device_id)
        answer = await self._command({"command": "enableClient", "username": device_id})
        self._check(answer, f"enable device '{device_id}'")

    async def remove_devices(self, device_ids: Sequence[str]) -> None:
        """Delete the devices' accounts and roles (live sessions are dropped); absent ones are skipped."""
        if not device_ids:
            return
        for device_id in device_ids:
            self._check_id(device_id)
        clients = await self._clients()
        roles = await self._roles()
        commands: list[Command] = []
        for device_id in dict.fromkeys(device_ids):
            if device_id in clients:
                if not _is_device(device_id, clients[device_id]):
                    raise Conflict(self._not_ours(device_id))
                commands.append({"command": "deleteClient", "username": device_id})
            if device_role(device_id) in roles:
                commands.append({"command": "deleteRole", "rolename": device_role(device_id)})
        answers = await self._run(commands)
        settled = [
            (c, a)
            for c, a in zip(commands, answers, strict=True)
            if a.get("error") not in ("Client not found", "Role not found")
        ]
        self._raise_errors("remove devices", [c for c, _ in settled], [a for _, a in settled])

    async def set_default_access(
        self,
        *,
        publish_client_send: bool | None = None,
        publish_client_receive: bool | None = None,
        subscribe: bool | None = None,
        unsubscribe: bool | None = None,
    ) -> None:
        """Change the plugin's default ACL access (``None`` leaves a type as it is).

        Denying ``publish_client_receive`` is safe for TOS+ (its roles allow it explicitly), but cuts off
        any client whose role does not - including an admin that relies on the default for its answers.
        """
        wanted = {
            "publishClientSend": publish_client_send,
            "publishClientReceive": publish_client_receive,
            "subscribe": subscribe,
            "unsubscribe": unsubscribe,
        }
        acls = [{"acltype": t, "allow": allow} for t, allow in wanted.items() if allow is not None]
        if acls:
            answer = await self._command({"command": "setDefaultACLAccess", "acls": acls})
            self._check(answer, "change its default access")


def _code(rc: Any) -> int:
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else -1


def _role_names(client: Response) -> set[str]:
    roles: Iterable[Any] = client.get("roles") or []
    return {r.get("rolename", "") for r in roles if isinstance(r, dict)}


def _is_device(device_id: str, client: Response) -> bool:
    return device_role(device_id) in _role_names(client)


def _subject(command: Command) -> str:
    name = command.get("username") or command.get("rolename") or ""
    return f"'{name}'" if name else ""
