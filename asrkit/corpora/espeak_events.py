"""Speak one sentence with libespeak-ng and report where each phoneme starts.

Run by :mod:`asrkit.corpora.synth` in a fresh process per utterance (standard
library only, so it starts in a few milliseconds with ``python -I -S``): the
library keeps wave-generator state (echo buffer, pitch phase) from one call to
the next, so only a fresh process speaks the same sentence the same way every
time, whatever was spoken before it.

    python -I -S espeak_events.py VOICE WPM PITCH OUT.wav < sentence

writes OUT.wav (16-bit mono at the library's rate) and prints ``rate R``, one
``PHONEME START_SAMPLE`` line per phoneme event (espeak-ng's own mnemonics; the
wave generator emits each event at the sample where that phoneme's synthesis
starts), then ``end NUM_SAMPLES``. Exit status 3: the library cannot be
loaded; 4: no such voice; 5: synthesis failed.
"""
from __future__ import annotations

import ctypes
import sys
import wave

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000  # return an error instead of exit() when the data is missing
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_POS_CHARACTER = 1
_CHARS_UTF8 = 1


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT of speak_lib.h
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # samples from the start of this synthesis
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _load() -> ctypes.CDLL:
    errors = []
    for name in ("libespeak-ng.so.1", "libespeak-ng.so"):
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(str(e))
    raise OSError("; ".join(errors))


def main(argv: list[str]) -> int:
    voice, wpm, pitch, out = argv[1], int(argv[2]), int(argv[3]), argv[4]
    text = sys.stdin.buffer.read().strip() + b"\0"
    try:
        lib = _load()
    except OSError as e:
        print(f"cannot load libespeak-ng ({e})", file=sys.stderr)
        return 3
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
    if rate <= 0:
        print("libespeak-ng could not initialize (is espeak-ng-data installed?)", file=sys.stderr)
        return 3
    audio: list[bytes] = []
    events: list[tuple[str, int]] = []

    def callback(wav, num_samples, event):  # noqa: ANN001 - ctypes arguments
        if num_samples > 0:
            audio.append(ctypes.string_at(wav, num_samples * 2))
        i = 0
        while event[i].type != _EVENT_LIST_TERMINATED:
            if event[i].type == _EVENT_PHONEME:
                name = bytes(event[i].id.string).split(b"\0", 1)[0].decode("ascii", "replace")
                events.append((name, event[i].sample))
            i += 1
        return 0

    keep = _Callback(callback)
    lib.espeak_SetSynthCallback(keep)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        print(f"espeak-ng has no voice '{voice}'", file=sys.stderr)
        return 4
    lib.espeak_SetParameter(_PARAM_RATE, wpm, 0)
    lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
    if lib.espeak_Synth(text, len(text), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
        print("espeak_Synth failed", file=sys.stderr)
        return 5
    lib.espeak_Synchronize()
    data = b"".join(audio)
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)
    lines = [f"rate {rate}"] + [f"{name} {sample}" for name, sample in events] + [f"end {len(data) // 2}"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
