"""Ovi's combined prompts: one string that carries the scene, the spoken words and the sound.

Ovi was trained on captions that mark speech as `<S>words<E>` and put a description of the
audio last. The 720x720 model wraps that description as `<AUDCAP>...<ENDAUDCAP>`; Ovi 1.1
(960x960) writes `Audio: ...` at the end instead. A prompt in the wrong format, or with a
broken tag, is silently misread by the text encoder, so we parse it once, report mistakes
with their position (0-based character index in the string the user gave), and let the
pipeline re-emit the prompt in the format its checkpoint expects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from duet.errors import ConfigError, PromptError

PromptFormat = Literal["audcap", "audio_colon"]
PROMPT_FORMATS: tuple[str, ...] = ("audcap", "audio_colon")

SPEECH_OPEN, SPEECH_CLOSE = "<S>", "<E>"
AUDCAP_OPEN, AUDCAP_CLOSE = "<AUDCAP>", "<ENDAUDCAP>"
AUDIO_COLON = "Audio:"
_TAGS = (SPEECH_OPEN, SPEECH_CLOSE, AUDCAP_OPEN, AUDCAP_CLOSE)

# Anything shaped like a tag (`<word>`, `</word>`, `< word >`) plus the Ovi 1.1 marker.
# Real tags are matched exactly; other tag-shaped tokens are checked for near misses.
_TOKEN = re.compile(r"<\s*/?\s*[A-Za-z_]{1,20}\s*/?\s*>|\bAudio:")

# Words people write when they mean a speech tag; compared after upper-casing.
_SPEECH_WORDS = {"S", "SP", "SAY", "SAYS", "SPEECH", "SPEAK", "SPEAKS", "START", "SPK"}


@dataclass(frozen=True)
class Prompt:
    """A parsed Ovi prompt. All strings have their whitespace collapsed to single spaces.

    text: the prompt as given.
    speech: the words inside each `<S>...<E>`, in order.
    audio_description: the audio caption (either format), or None when there is none.
    body: the prompt without its audio caption, speech tags kept in canonical `<S>..<E>`
        form; this is what `to_format` puts in front of the caption.
    visual: `body` without the speech tags (the words stay, so "she says hello" still
        reads as a scene description for a video-only model).
    source_format: the caption format the user wrote, or None when there is no caption.
    """

    text: str
    speech: tuple[str, ...]
    audio_description: str | None
    visual: str
    body: str
    source_format: PromptFormat | None = None

    def to_format(self, fmt: str) -> str:
        """Render the prompt for a checkpoint trained on `fmt` ("audcap" or "audio_colon")."""
        if fmt not in PROMPT_FORMATS:
            raise ConfigError(
                f"unknown prompt format {fmt!r}; use one of {', '.join(PROMPT_FORMATS)} "
                "('audcap' for the Ovi 720x720 model, 'audio_colon' for Ovi 1.1)"
            )
        if self.audio_description is None:
            return self.body
        if fmt == "audcap":
            caption = f"{AUDCAP_OPEN}{self.audio_description}{AUDCAP_CLOSE}"
        else:
            caption = f"{AUDIO_COLON} {self.audio_description}"
        return f"{self.body} {caption}" if self.body else caption


def _squash(s: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space."""
    return " ".join(s.split())


def _quote(text: str, start: int, end: int, limit: int = 40) -> str:
    """The offending part of the prompt, shortened for an error message."""
    part = text[start:end]
    return repr(part if len(part) <= limit else part[: limit - 3] + "...")


def _near_miss(token: str) -> str | None:
    """The suggestion for a tag-shaped token that is not a real tag, or None for plain text.

    Only tokens that look like a botched speech or audio-caption tag count, so things such as
    `<laughs>` or `<b>` stay part of the description.
    """
    closing = "/" in token
    name = re.sub(r"[^A-Za-z]", "", token).upper()
    if "AUD" in name or "CAP" in name:
        return AUDCAP_CLOSE if closing or name.startswith("END") else AUDCAP_OPEN
    if name == "E" or name in {"END", "ENDS", "ENDSPEECH", "EOS"}:
        if name == "E":
            return SPEECH_CLOSE
        return f"{SPEECH_CLOSE} (end of speech) or {AUDCAP_CLOSE} (end of audio caption)"
    if name in _SPEECH_WORDS:
        return SPEECH_CLOSE if closing else SPEECH_OPEN
    return None


def parse_prompt(text: str) -> Prompt:
    """Parse an Ovi prompt in either caption format; raise PromptError on malformed tags."""
    if not isinstance(text, str):
        raise PromptError(f"prompt must be a str, got {type(text).__name__}")
    try:  # bytes that were not UTF-8 reach Python as lone surrogates (argv, surrogateescape)
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise PromptError(
            f"prompt is not valid UTF-8 text: {text[e.start:e.end]!r} at position {e.start} "
            "is not a character; write the prompt in UTF-8 (check the terminal's or the "
            "file's encoding)"
        ) from None
    if not text.strip():
        raise PromptError(
            "prompt is empty; describe the scene, e.g. 'A man at a desk says <S>Hello<E>. "
            "<AUDCAP>Clear male voice, quiet room<ENDAUDCAP>'"
        )

    pieces: list[str] = []  # the body, rebuilt with canonical speech tags
    speech: list[str] = []
    caption: str | None = None
    fmt: PromptFormat | None = None
    speech_at = audcap_at = colon_at = -1  # start of the open span, -1 when none is open
    plain_from = 0  # where the current run of plain description text starts

    for m in _TOKEN.finditer(text):
        tok, at = m.group(), m.start()
        if colon_at >= 0:
            # Everything after `Audio:` is caption; tags there are mistakes.
            if tok == SPEECH_OPEN:
                raise PromptError(
                    f"speech tag '<S>' at position {at} is inside the audio caption that "
                    f"starts with 'Audio:' at position {colon_at}; put the speech before 'Audio:'"
                )
            if tok in (AUDCAP_OPEN, AUDCAP_CLOSE):
                raise PromptError(
                    f"prompt mixes both caption formats: {tok!r} at position {at} and 'Audio:' "
                    f"at position {colon_at}; keep only one audio caption"
                )
            if tok == AUDIO_COLON:
                raise PromptError(
                    f"more than one audio caption: a second 'Audio:' at position {at} "
                    f"(the first is at {colon_at}); merge them into one"
                )
        if tok == AUDIO_COLON:
            if speech_at >= 0:
                continue  # spoken words may contain "Audio:"
            if audcap_at >= 0 or fmt == "audcap":
                where = f" at position {audcap_at}" if audcap_at >= 0 else ""
                raise PromptError(
                    f"prompt mixes both caption formats: 'Audio:' at position {at} and "
                    f"'<AUDCAP>'{where}; keep only one audio caption"
                )
            pieces.append(text[plain_from:at])
            colon_at, plain_from = at, len(text)
            caption = text[m.end():]
            if not caption.strip():
                raise PromptError(
                    f"empty audio caption after 'Audio:' at position {at}; describe the "
                    "sound after it or remove 'Audio:'"
                )
            fmt = "audio_colon"
            continue
        if tok not in _TAGS:
            suggestion = _near_miss(tok)
            if suggestion is not None:
                raise PromptError(
                    f"unknown tag {tok!r} at position {at}; did you mean {suggestion}? "
                    "Ovi's tags are <S>, <E>, <AUDCAP> and <ENDAUDCAP> (case-sensitive)"
                )
            continue
        if speech_at >= 0 and tok != SPEECH_CLOSE:
            raise PromptError(
                f"{tok!r} at position {at} is nested inside the speech "
                f"{_quote(text, speech_at, at)} opened at position {speech_at}; "
                "close the speech with <E> first"
            )
        if tok == SPEECH_OPEN:
            if audcap_at >= 0:
                raise PromptError(
                    f"speech tag '<S>' at position {at} is inside the audio caption opened "
                    f"at position {audcap_at}; put speech outside <AUDCAP>...<ENDAUDCAP>"
                )
            pieces.append(text[plain_from:at])
            speech_at = at
        elif tok == SPEECH_CLOSE:
            if speech_at < 0:
                raise PromptError(
                    f"'<E>' at position {at} has no matching '<S>'; "
                    "wrap spoken words as <S>words<E>"
                )
            words = _squash(text[speech_at + len(SPEECH_OPEN) : at])
            if not words:
                raise PromptError(
                    f"empty speech {_quote(text, speech_at, m.end())} at position {speech_at}; "
                    "put the spoken words between <S> and <E> or remove the tags"
                )
            speech.append(words)
            pieces.append(f"{SPEECH_OPEN}{words}{SPEECH_CLOSE}")
            speech_at, plain_from = -1, m.end()
        elif tok == AUDCAP_OPEN:
            if audcap_at >= 0:
                raise PromptError(
                    f"'<AUDCAP>' at position {at} is nested inside the audio caption opened "
                    f"at position {audcap_at}; close it with <ENDAUDCAP> first"
                )
            if caption is not None:
                raise PromptError(
                    f"more than one audio caption: a second '<AUDCAP>' at position {at}; "
                    "merge the descriptions into one <AUDCAP>...<ENDAUDCAP>"
                )
            pieces.append(text[plain_from:at])
            audcap_at = at
        else:  # AUDCAP_CLOSE
            if audcap_at < 0:
                raise PromptError(
                    f"'<ENDAUDCAP>' at position {at} has no matching '<AUDCAP>'; "
                    "wrap the audio description as <AUDCAP>description<ENDAUDCAP>"
                )
            caption = text[audcap_at + len(AUDCAP_OPEN) : at]
            if not caption.strip():
                raise PromptError(
                    f"empty audio caption {_quote(text, audcap_at, m.end())} at position "
                    f"{audcap_at}; describe the sound or remove the tags"
                )
            fmt = "audcap"
            pieces.append(" ")  # keep the words on either side of the caption apart
            audcap_at, plain_from = -1, m.end()

    if speech_at >= 0:
        raise PromptError(
            f"speech {_quote(text, speech_at, len(text))} opened at position {speech_at} "
            "is never closed; add <E> after the spoken words"
        )
    if audcap_at >= 0:
        raise PromptError(
            f"audio caption {_quote(text, audcap_at, len(text))} opened at position "
            f"{audcap_at} has no <ENDAUDCAP>; add it after the audio description"
        )
    pieces.append(text[plain_from:])

    body = _squash("".join(pieces))
    # Drop the speech tags but keep the words; a tag squeezed between two words becomes a space.
    visual = re.sub(r"(?<=\w)(?:<S>|<E>)(?=\w)", " ", body)
    visual = _squash(visual.replace(SPEECH_OPEN, "").replace(SPEECH_CLOSE, ""))
    return Prompt(
        text=_squash(text),
        speech=tuple(speech),
        audio_description=_squash(caption) if caption is not None else None,
        visual=visual,
        body=body,
        source_format=fmt,
    )
