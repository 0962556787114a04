"""A home's voice settings on a real hub: members read them, owners change them (audited), engines are checked
against those installed, and the recorded and push-to-talk APIs and the pipeline use them when a request names
no engine, language or ``speak``."""

from __future__ import annotations

from typing import Any

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop

from tests.services.voice.test_pipeline import spoken
from tests.services.voice.test_wyoming import ask, served
from tests.support.hubs import HubUnderTest
from tests.support.people import Person, sign_up
from tosplus.services.voice.audio import Audio
from tosplus.services.voice.stt import normalize
from tosplus.services.voice.wyoming_server import Wyoming


def whisper(hub: HubUnderTest) -> str:
    name = next((n for n in hub.hub.voice.engines if n.startswith("whisper")), None)
    if name is None:
        pytest.skip("the whisper extra is not installed")
    return name


async def _join(owner: Person, person: Person, home_id: str, role: str) -> None:
    invitation = await owner.api.post(f"/api/v1/homes/{home_id}/invitations", json={"role": role})
    assert invitation.status_code == 201, invitation.text
    accepted = await person.api.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"]})
    assert accepted.status_code == 200, accepted.text


async def _silence_run(person: Person, home_id: str, **query: Any) -> dict[str, Any]:
    """A recorded request of silence: the pipeline reports the engine it chose, then hears no speech (cheap)."""
    response = await person.api.post(
        "/api/v1/voice/audio", params={"home_id": home_id, **query}, content=Audio.silence(0.5).wav()
    )
    assert response.status_code == 200, response.text
    run_start = next(e for e in response.json()["events"] if e["type"] == "run-start")
    return dict(run_start["data"])


async def test_members_read_owners_change_and_the_change_is_audited(any_hub: HubUnderTest) -> None:
    hub = any_hub  # both deployments: the settings are stored in SQLite and in PostgreSQL
    owner, member, stranger = await sign_up(hub, "owner"), await sign_up(hub, "member"), await sign_up(hub, "x")
    engine = whisper(hub)
    async with owner.api, member.api, stranger.api:
        home = await owner.create_home(rooms=("Living room",))
        url = f"/api/v1/voice/homes/{home['id']}/settings"
        await _join(owner, member, home["id"], "member")
        defaults = (await member.api.get(url)).json()
        assert defaults["engines"] == {"en": "pocketsphinx", "zh-cn": engine}
        assert defaults["language"] == "en" and defaults["speak"] is True and defaults["chosen"] == {}
        assert defaults["available"] == {"en": ["pocketsphinx", engine], "zh-cn": [engine]}

        changed = await owner.api.patch(url, json={"engines": {"en": engine}, "language": "zh-CN", "speak": False})
        assert changed.status_code == 200, changed.text
        assert changed.json()["engines"]["en"] == engine and changed.json()["language"] == "zh-cn"
        seen = (await member.api.get(url)).json()
        assert seen["engines"]["en"] == engine and seen["speak"] is False and seen["chosen"] == {"en": engine}
        assert seen["updated_by"] == owner.user_id

        refused = await member.api.patch(url, json={"engines": {"en": "pocketsphinx"}})
        assert refused.status_code == 403, refused.text
        assert (await stranger.api.get(url)).status_code == 404
        assert (await stranger.api.patch(url, json={"speak": True})).status_code == 404
        assert (await member.api.get(url)).json()["engines"]["en"] == engine  # the refusal changed nothing

        audit = (await owner.api.get(f"/api/v1/homes/{home['id']}/audit")).json()["items"]
        entry = next(a for a in audit if a["action"] == "voice.settings")
        assert entry["detail"] == {"engines": {"en": engine}, "language": "zh-cn", "speak": False}
        again = await owner.api.patch(url, json={"engines": {"en": engine}})  # no change: nothing audited
        assert again.status_code == 200
        audit = (await owner.api.get(f"/api/v1/homes/{home['id']}/audit")).json()["items"]
        assert sum(a["action"] == "voice.settings" for a in audit) == 1

        back = await owner.api.patch(url, json={"engines": {"en": ""}})  # "" is the language's default again
        assert back.json()["engines"]["en"] == "pocketsphinx" and back.json()["chosen"] == {}


async def test_engines_and_languages_are_checked(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room",))
        url = f"/api/v1/voice/homes/{home['id']}/settings"
        for body, words in [
            ({"engines": {"en": "kaldi"}}, "no speech engine 'kaldi' is installed"),
            ({"engines": {"zh-cn": "pocketsphinx"}}, "does not understand 'zh-cn'"),
            ({"engines": {"fr": "pocketsphinx"}}, "language 'fr' is not understood"),
            ({"language": "de"}, "language 'de' is not understood"),
        ]:
            response = await owner.api.patch(url, json=body)
            assert response.status_code == 422, response.text
            assert words in response.json()["detail"]
        assert (await owner.api.patch(url, json={"volume": 3})).status_code == 422  # unknown field
        too_many = {f"x{i}": "pocketsphinx" for i in range(9)}
        assert (await owner.api.patch(url, json={"engines": too_many})).status_code == 422
        assert (await owner.api.patch(url, json={"engines": {"en": "x" * 33}})).status_code == 422
        assert (await owner.api.get(url)).json()["chosen"] == {}


async def test_requests_without_an_engine_use_the_homes_choice(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    engine = whisper(hub)
    async with owner.api:
        home = await owner.create_home(rooms=("Living room",))
        url = f"/api/v1/voice/homes/{home['id']}/settings"
        assert (await _silence_run(owner, home["id"]))["engine"] == "pocketsphinx"  # the default
        await owner.api.patch(url, json={"engines": {"en": engine}})
        assert (await _silence_run(owner, home["id"]))["engine"] == engine
        asked = await _silence_run(owner, home["id"], engine="pocketsphinx")  # a request naming one wins
        assert asked["engine"] == "pocketsphinx"
        await owner.api.patch(url, json={"language": "zh-cn"})
        chinese = await _silence_run(owner, home["id"])  # no language asked: the home's
        assert chinese["language"] == "zh-cn" and chinese["engine"] == engine
        english = await _silence_run(owner, home["id"], language="en")
        assert english["language"] == "en" and english["engine"] == engine
        assert hub.hub.voice.settings.engine_of(await hub.hub.voice.settings.of(home["id"]), "en") == engine


async def test_a_home_on_whisper_that_does_not_speak(hub: HubUnderTest) -> None:
    """One home on Whisper with spoken answers off: a recorded request gets no spoken answer, and a Wyoming client
    that names no engine is transcribed with Whisper, which writes the phrase exactly (pocketsphinx without a
    grammar hears "if do not living room life")."""
    owner = await sign_up(hub, "owner")
    engine = whisper(hub)
    async with owner.api:
        home = await owner.create_home(rooms=("Living room",))
        url = f"/api/v1/voice/homes/{home['id']}/settings"
        await owner.api.patch(url, json={"engines": {"en": engine}, "speak": False})
        question = await spoken("what time is it", silence_s=0.3)
        response = await owner.api.post("/api/v1/voice/audio", params={"home_id": home["id"]}, content=question.wav())
        assert response.status_code == 200, response.text
        kinds = [e["type"] for e in response.json()["events"]]
        assert "intent-end" in kinds and "tts-start" not in kinds and "tts-end" not in kinds
        assert response.json()["reply"]["recognized"]["intent"] == "HassGetCurrentTime"

        key = (await owner.api.post("/api/v1/me/api-keys", json={"name": "satellite"})).json()["key"]
        wyoming = await Wyoming.open(hub.hub, key, None)
        pcm = (await spoken("turn on the living room light", silence_s=0.2)).pcm()
        chunks = [
            AudioChunk(rate=16000, width=2, channels=1, audio=pcm[start : start + 2048]).event()
            for start in range(0, len(pcm), 2048)
        ]
        async with served(wyoming) as port:
            heard = await ask(
                port,
                Transcribe(language="en").event(),
                AudioStart(rate=16000, width=2, channels=1).event(),
                *chunks,
                AudioStop().event(),
                until=("transcript",),
            )
        assert normalize(Transcript.from_event(heard[-1]).text) == "turn on the living room light"
