"""``tosplus simulate speak``: a speaker, watch or TV remote says something to the hub.

The device's microphone is simulated by a recording (``--file``) or by speech synthesised with espeak-ng from
the words given, streamed at the pace of speech through the SDK's :class:`~tosplus.sdk.voice.DeviceVoice`
with the device's own credentials (a bound device: it acts as the person who bound it). Each pipeline event is
printed as it arrives; the spoken answer can be kept as a WAV (``--answer``) to play.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()


def _shown(kind: str, d: dict[str, Any]) -> str | None:
    """One pipeline event in words, or None for the stages not worth a line."""
    if kind == "stt-vad-start":
        return "listening…"
    if kind == "stt-vad-end":
        return "end of speech"
    if kind == "stt-end":
        return f"heard: {d.get('text')!r}" + ("" if d.get("accepted", True) else " (not a request)")
    if kind == "intent-end":
        return f"{'done' if d.get('ok') else 'not done'}: {d.get('answer')}"
    if kind == "tts-end":
        return f"answer spoken ({d.get('seconds')} s)"
    if kind == "error":
        return f"[red]{d.get('message')}[/red]"
    return None


def speak(
    words: Annotated[str | None, typer.Argument(help="What the person says (synthesised with espeak-ng).")] = None,
    device_id: Annotated[str, typer.Option("--device-id", envvar="TOSPLUS_DEVICE_ID", help="The device.")] = "",
    secret: Annotated[str, typer.Option("--secret", envvar="TOSPLUS_DEVICE_SECRET", help="Its secret.")] = "",
    api: Annotated[str, typer.Option("--api", envvar="TOSPLUS_API_URL", help="The hub's base URL.")] = (
        "http://127.0.0.1:8080"
    ),
    file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="A recording instead.")] = None,
    voice: Annotated[str, typer.Option(help="espeak-ng voice for the words.")] = "en-us",
    language: Annotated[str | None, typer.Option(help="en or zh-cn (default: the home's).")] = None,
    engine: Annotated[str | None, typer.Option(help="pocketsphinx or whisper (default: the home's).")] = None,
    answer: Annotated[Path | None, typer.Option(help="Write the spoken answer here (WAV).")] = None,
) -> None:
    """Say something to the hub through a device's microphone, and show what it heard and did."""
    from tosplus.sdk.errors import DeviceError
    from tosplus.sdk.voice import DeviceVoice
    from tosplus.services.voice.audio import Audio, load
    from tosplus.services.voice.tts import EspeakTTS

    if (words is None) == (file is None):
        raise typer.BadParameter("give either the words to say or --file")
    if not device_id or not secret:
        raise typer.BadParameter("--device-id and --secret are needed (a device bound to a home)")

    async def run() -> Any:
        if file is not None:
            pcm = load(file).pcm()
        else:
            speech = load((await EspeakTTS().synthesize(words or "", language=voice)).wav)
            quiet = Audio.silence(0.8).pcm()
            pcm = quiet + speech.pcm() + quiet

        def show(event: dict[str, Any]) -> None:
            line = _shown(str(event.get("type")), event.get("data") or {})
            if line is not None:
                console.print(f"[dim]{event['type']:>13}[/dim]  {line}")

        talk = DeviceVoice(api, device_id, secret, language=language, engine=engine)
        return await talk.say_pcm(pcm, on_event=show)

    try:
        reply = asyncio.run(run())
    except DeviceError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if answer is not None and reply.wav:
        answer.write_bytes(reply.wav)
        console.print(f"answer written to {answer}")
    if not reply.ok:
        raise typer.Exit(1)
