"""What the voice says back, in the request's language (English and Simplified Chinese)."""

# ruff: noqa: RUF001  (Chinese answers use Chinese punctuation)

from __future__ import annotations

from typing import Any

_PHRASES: dict[str, dict[str, str]] = {
    "not_understood": {
        "en": 'Sorry, I can\'t help with that. You can say things like "turn on the living room lights", '
        '"set the thermostat to 21 degrees", "what is the temperature in the kitchen" or "run movie night".',
        "zh-cn": "抱歉，这个我帮不上忙。您可以说\u201c打开客厅的灯\u201d、\u201c把温控器调到二十一度\u201d、"
        "\u201c厨房温度是多少\u201d或\u201c打开观影模式\u201d。",
    },
    "no_speech_heard": {"en": "I didn't hear anything.", "zh-cn": "我没有听到声音。"},
    "not_heard": {
        "en": "Sorry, I didn't catch that. Please say it again.",
        "zh-cn": "抱歉，我没听清楚，请再说一遍。",
    },
    "unsupported_language": {
        "en": "Sorry, I understand English and Chinese only.",
        "zh-cn": "抱歉，我只能听懂中文和英文。",
    },
    "nothing_there": {
        "en": "I found no {what} you can control{where}.",
        "zh-cn": "{where_zh}没有找到您可以控制的{what}。",
    },
    "which_one": {
        "en": "Which one do you mean: {names}?",
        "zh-cn": "您指的是哪一个：{names}？",
    },
    "not_allowed": {"en": "You are not allowed to control the {name}.", "zh-cn": "您没有权限控制{name}。"},
    "cannot": {"en": "The {name} can't do that.", "zh-cn": "{name}不支持这个操作。"},
    "turned_on": {"en": "Turned on {names}.", "zh-cn": "已打开{names}。"},
    "turned_off": {"en": "Turned off {names}.", "zh-cn": "已关闭{names}。"},
    "brightness_set": {"en": "{names} set to {value}% brightness.", "zh-cn": "已把{names}的亮度调到{value}%。"},
    "white_set": {"en": "{names} set to {value} K white.", "zh-cn": "已把{names}调成{value}K的白光。"},
    "only_white": {
        "en": "The {names} can only change between warm and cool white, not {color}.",
        "zh-cn": "{names}只能调节冷暖白光，不能调成{color}。",
    },
    "temperature_set": {"en": "{names} set to {value} °C.", "zh-cn": "已把{names}调到{value}°C。"},
    "out_of_range": {
        "en": "The {name} takes {minimum} to {maximum}{unit}.",
        "zh-cn": "{name}的范围是{minimum}到{maximum}{unit}。",
    },
    "offline_kept": {
        "en": " {names} {verb} offline and will follow on reconnecting.",
        "zh-cn": "{names}目前离线\uff0c重新连接后会照此执行。",
    },
    "cannot_measure": {"en": "The {name} doesn't measure the {quantity}.", "zh-cn": "{name}不能测量{quantity}。"},
    "no_sensor": {
        "en": "Nothing{where} measures the {quantity}.",
        "zh-cn": "{where_zh}没有能测量{quantity}的设备。",
    },
    "volume_set": {"en": "Volume of the {names} set to {value}%.", "zh-cn": "已把{names}的音量调到{value}%。"},
    "muted": {"en": "Muted the {names}.", "zh-cn": "{names}已静音。"},
    "unmuted": {"en": "Unmuted the {names}.", "zh-cn": "{names}已取消静音。"},
    "command_done": {"en": "Done: {what} on the {name}.", "zh-cn": "好的，{name}已{what}。"},
    "command_offline": {
        "en": "The {name} is offline, so I couldn't {what}.",
        "zh-cn": "{name}目前离线，无法{what}。",
    },
    "command_failed": {"en": "The {name} didn't {what}: {reason}", "zh-cn": "{name}没能{what}：{reason}"},
    "channel": {"en": "switch to channel {value}", "zh-cn": "切换到{value}台"},
    "channel_up": {"en": "go to the next channel", "zh-cn": "切换到下一个台"},
    "channel_down": {"en": "go to the previous channel", "zh-cn": "切换到上一个台"},
    "launch": {"en": "open {value}", "zh-cn": "打开{value}"},
    "pause": {"en": "pause", "zh-cn": "暂停"},
    "resume": {"en": "resume", "zh-cn": "继续播放"},
    "next": {"en": "skip ahead", "zh-cn": "切到下一个"},
    "previous": {"en": "go back", "zh-cn": "回到上一个"},
    "value": {"en": "The {quantity} of the {name} is {value}.", "zh-cn": "{name}的{quantity}是{value}。"},
    "value_room": {"en": "The {quantity} in the {room} is {value}.", "zh-cn": "{room}的{quantity}是{value}。"},
    "no_value": {
        "en": "I have no {quantity} reading{where} yet.",
        "zh-cn": "{where_zh}还没有{quantity}的读数。",
    },
    "state_on": {"en": "The {name} is on.", "zh-cn": "{name}开着。"},
    "state_off": {"en": "The {name} is off.", "zh-cn": "{name}关着。"},
    "state_unknown": {"en": "I don't know whether the {name} is on.", "zh-cn": "我还不知道{name}是否开着。"},
    "which_on": {"en": "On: {names}.", "zh-cn": "开着的有：{names}。"},
    "which_off": {"en": "Off: {names}.", "zh-cn": "关着的有：{names}。"},
    "none_on": {"en": "None of them is on.", "zh-cn": "都没有开。"},
    "none_off": {"en": "None of them is off.", "zh-cn": "都没有关。"},
    "time": {"en": "It is {value}.", "zh-cn": "现在是{value}。"},
    "date": {"en": "Today is {value}.", "zh-cn": "今天是{value}。"},
    "ok": {"en": "OK.", "zh-cn": "好的。"},
    "scene_ran": {"en": "Ran {name}: {outcome}.", "zh-cn": "已执行{name}：{outcome}。"},
    "scene_applied": {"en": "everything is done", "zh-cn": "全部完成"},
    "scene_partial": {"en": "some devices did not follow", "zh-cn": "部分设备没有响应"},
    "scene_failed": {"en": "no device has followed yet", "zh-cn": "还没有设备响应"},
    "no_scene": {
        "en": "There is no scene called {name} that you can run.",
        "zh-cn": "没有您可以执行的\u201c{name}\u201d场景。",
    },
    "timer_started": {"en": "Timer set for {value}.", "zh-cn": "已设置{value}的计时器。"},
    "timer_none": {"en": "You have no timer running.", "zh-cn": "您没有正在运行的计时器。"},
    "timer_canceled": {"en": "Canceled {count} timer(s).", "zh-cn": "已取消{count}个计时器。"},
    "timer_left": {"en": "{value} left.", "zh-cn": "还剩{value}。"},
    "timer_done": {"en": "Your {value} timer is done.", "zh-cn": "您的{value}计时器时间到了。"},
    "pay_confirm": {
        "en": "Confirm {amount} {currency} to {merchant} on your {device}, or in the console.",
        "zh-cn": "请在您的{device}或控制台上确认向{merchant}支付{amount}{currency_zh}。",
    },
    "pay_no_device": {
        "en": "To pay by voice, first enable payment on one of your devices (Wallet, paying devices).",
        "zh-cn": "要用语音支付，请先在您的某台设备上开通支付（钱包 → 付款设备）。",
    },
    "pay_no_merchant": {
        "en": "I don't know a merchant called {name}.",
        "zh-cn": "我不认识叫\u201c{name}\u201d的商户。",
    },
    "pay_currency": {
        "en": "{merchant} takes {currency} only.",
        "zh-cn": "{merchant}只收{currency}。",
    },
    "pay_refused": {"en": "I can't ask for that payment: {reason}", "zh-cn": "无法发起这笔支付：{reason}"},
}

_WORDS: dict[str, dict[str, str]] = {
    "light": {"en": "light", "zh-cn": "灯"},
    "device": {"en": "device", "zh-cn": "设备"},
    "thermostat": {"en": "thermostat", "zh-cn": "温控器"},
    "media player": {"en": "TV or speaker", "zh-cn": "电视或音箱"},
    "tv": {"en": "TV", "zh-cn": "电视"},
    "temperature": {"en": "temperature", "zh-cn": "温度"},
    "target_temperature": {"en": "set temperature", "zh-cn": "设定温度"},
    "humidity": {"en": "humidity", "zh-cn": "湿度"},
    "power": {"en": "power draw", "zh-cn": "功率"},
    "energy": {"en": "energy used", "zh-cn": "用电量"},
    "battery": {"en": "battery", "zh-cn": "电量"},
    "heart_rate": {"en": "heart rate", "zh-cn": "心率"},
    "steps": {"en": "step count", "zh-cn": "步数"},
    "brightness": {"en": "brightness", "zh-cn": "亮度"},
    "volume": {"en": "volume", "zh-cn": "音量"},
    "channel": {"en": "channel", "zh-cn": "频道"},
    "spo2": {"en": "blood oxygen", "zh-cn": "血氧"},
    "air_quality": {"en": "air quality", "zh-cn": "空气质量"},
}


def say(language: str, key: str, **values: Any) -> str:
    """The phrase ``key`` in ``language`` (English when the language has none), filled with ``values``."""
    phrases = _PHRASES[key]
    return phrases.get(language, phrases["en"]).format(**values)


def word(language: str, key: str) -> str:
    words = _WORDS.get(key)
    return words.get(language, words["en"]) if words else key.replace("_", " ")


def join(language: str, names: list[str]) -> str:
    """ "A, B and C" / "A、B和C"."""
    if language == "zh-cn":
        return names[0] if len(names) == 1 else "、".join(names[:-1]) + "和" + names[-1]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def duration(language: str, seconds: int) -> str:
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if language == "zh-cn":
        parts = [f"{hours}小时" if hours else "", f"{minutes}分钟" if minutes else "", f"{secs}秒" if secs else ""]
        return "".join(parts) or "0秒"
    out = []
    for amount, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")):
        if amount:
            out.append(f"{amount} {unit}{'s' if amount != 1 else ''}")
    return join("en", out) if out else "0 seconds"
