"""Accounts and sign-in: passwords, lock-out, OAuth2 grants, refresh rotation, API keys, console sessions."""

from __future__ import annotations

import httpx

from tests.support.hubs import HubUnderTest
from tests.support.people import PASSWORD, new_email, sign_up


async def test_sign_up_sign_in_and_me(hub: HubUnderTest) -> None:
    person = await sign_up(hub, "ada")
    async with person.api:
        me = (await person.api.get("/api/v1/me")).json()
        assert me["email"] == person.email and me["role"] == "person" and me["homes"] == []
        async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as anonymous:
            again = await anonymous.post(
                "/api/v1/auth/signup", json={"email": person.email.upper(), "password": PASSWORD, "name": "x"}
            )
            assert again.status_code == 409
            weak = await anonymous.post(
                "/api/v1/auth/signup", json={"email": new_email(), "password": "short", "name": "x"}
            )
            assert weak.status_code == 422 and "8 to 256" in weak.json()["detail"]
            bad = await anonymous.post(
                "/api/v1/auth/signup", json={"email": "nobody", "password": PASSWORD, "name": "x"}
            )
            assert bad.status_code == 422 and "email" in bad.json()["detail"]
            wrong = await anonymous.post(
                "/api/v1/auth/token", data={"grant_type": "password", "username": person.email, "password": "nope-nope"}
            )
            assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong e-mail or password"
            tampered = await anonymous.get(
                "/api/v1/me", headers={"Authorization": person.api.headers["Authorization"][:-3] + "abc"}
            )
            assert tampered.status_code == 401
    operator = (await hub.api.get("/api/v1/me")).json()
    assert operator["role"] == "operator"


async def test_lock_out_after_five_wrong_passwords_and_operator_unlock(hub: HubUnderTest) -> None:
    person = await sign_up(hub, "bob")
    await person.api.aclose()
    form = {"grant_type": "password", "username": person.email}
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as anonymous:
        for _ in range(4):
            assert (
                await anonymous.post("/api/v1/auth/token", data={**form, "password": "wrong-one"})
            ).status_code == 401
        locked = await anonymous.post("/api/v1/auth/token", data={**form, "password": "wrong-one"})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 800
        still = await anonymous.post("/api/v1/auth/token", data={**form, "password": PASSWORD})
        assert still.status_code == 429 and "locked" in still.json()["detail"]
        assert (await hub.api.post(f"/api/v1/users/{person.user_id}/unlock")).status_code == 200
        assert (await anonymous.post("/api/v1/auth/token", data={**form, "password": PASSWORD})).status_code == 200
    audit = (await hub.api.get("/api/v1/audit")).json()["items"]
    assert sum(1 for a in audit if a["action"] == "account.signin_failed" and a["actor"] == person.email) == 6


async def test_refresh_rotates_and_reuse_ends_the_session(any_hub: HubUnderTest) -> None:
    hub = any_hub  # both deployments: embedded + SQLite, Mosquitto + PostgreSQL
    person = await sign_up(hub)
    await person.api.aclose()
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as anonymous:
        first = await anonymous.post(
            "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": person.refresh_token}
        )
        assert first.status_code == 200
        newer = first.json()["refresh_token"]
        assert newer != person.refresh_token
        access = first.json()["access_token"]
        assert (await anonymous.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})).status_code == 200
        # The old token again: only a thief would have it, so the whole session ends.
        stolen = await anonymous.post(
            "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": person.refresh_token}
        )
        assert stolen.status_code == 401
        after = await anonymous.post("/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": newer})
        assert after.status_code == 401
        assert (await anonymous.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})).status_code == 401


async def test_sign_out_everywhere_and_api_keys(hub: HubUnderTest) -> None:
    person = await sign_up(hub)
    async with person.api, httpx.AsyncClient(base_url=str(hub.api.base_url)) as anonymous:
        key = await person.api.post("/api/v1/me/api-keys", json={"name": "script"})
        assert key.status_code == 201
        as_key = {"Authorization": f"Bearer {key.json()['key']}"}
        assert (await anonymous.get("/api/v1/me", headers=as_key)).json()["email"] == person.email
        listed = (await person.api.get("/api/v1/me/api-keys")).json()["items"]
        assert [k["name"] for k in listed] == ["script"] and "key" not in listed[0]
        assert (await person.api.post("/api/v1/auth/signout-everywhere")).status_code == 204
        assert (await person.api.get("/api/v1/me")).status_code == 401
        refresh = await anonymous.post(
            "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": person.refresh_token}
        )
        assert refresh.status_code == 401
        # API keys are separate from sessions: revoked one by one.
        assert (await anonymous.get("/api/v1/me", headers=as_key)).status_code == 200
        assert (await anonymous.delete(f"/api/v1/me/api-keys/{key.json()['id']}", headers=as_key)).status_code == 204
        assert (await anonymous.get("/api/v1/me", headers=as_key)).status_code == 401
        fresh = await anonymous.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": person.email, "password": PASSWORD}
        )
        assert fresh.status_code == 200


async def test_console_session_cookie(hub: HubUnderTest) -> None:
    person = await sign_up(hub)
    await person.api.aclose()
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as browser:
        signed_in = await browser.post("/api/v1/auth/session", json={"email": person.email, "password": PASSWORD})
        assert signed_in.status_code == 200 and "refresh_token" not in signed_in.json()
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api/v1/auth" in cookie
        assert (await browser.post("/api/v1/auth/session/refresh")).status_code == 401  # no console header
        refreshed = await browser.post("/api/v1/auth/session/refresh", headers={"X-TOSPLUS-Console": "1"})
        assert refreshed.status_code == 200
        access = refreshed.json()["access_token"]
        sessions = (await browser.get("/api/v1/me/sessions", headers={"Authorization": f"Bearer {access}"})).json()
        assert any(s["current"] and s["kind"] == "console" for s in sessions["items"])
        assert (await browser.delete("/api/v1/auth/session")).status_code == 204
        assert (
            await browser.post("/api/v1/auth/session/refresh", headers={"X-TOSPLUS-Console": "1"})
        ).status_code == 401
        assert (await browser.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})).status_code == 401


async def test_operator_creates_manufacturer_accounts(hub: HubUnderTest) -> None:
    body = {"email": new_email("maker"), "password": PASSWORD, "name": "ACME", "role": "manufacturer"}
    assert (await hub.api.post("/api/v1/users", json=body)).status_code == 422  # needs a manufacturer name
    created = await hub.api.post("/api/v1/users", json={**body, "manufacturer": "ACME"})
    assert created.status_code == 201 and created.json()["user"]["manufacturer"] == "ACME"
    person = await sign_up(hub)
    async with person.api:
        assert (await person.api.post("/api/v1/users", json={**body, "email": new_email()})).status_code == 403


async def test_password_spraying_from_one_address_is_limited(hub: HubUnderTest) -> None:
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as anonymous:
        for i in range(50):
            form = {"grant_type": "password", "username": f"nobody-{i}@example.com", "password": "guess-guess"}
            assert (await anonymous.post("/api/v1/auth/token", data=form)).status_code == 401
        limited = await anonymous.post("/api/v1/auth/token", data={**form, "username": "another@example.com"})
        assert limited.status_code == 429 and "this address" in limited.json()["detail"]
