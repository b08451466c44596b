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
from dataclasses import dataclass, field
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
    _check_text(text)
    scan = _Scan(text)
    for m in _TOKEN.finditer(text):
        scan.token(m)
    return scan.finish()


def _check_text(text: object) -> None:
    """PromptError for what is not a prompt at all: not a str, not UTF-8, or blank."""
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


@dataclass
class _Scan:
    """One left-to-right pass over a prompt's tag-shaped tokens: each tag opens or closes a
    span, and the text between tags goes to the body, a speech or the audio caption."""

    text: str
    pieces: list[str] = field(default_factory=list)  # the body, rebuilt with canonical speech tags
    speech: list[str] = field(default_factory=list)
    caption: str | None = None
    fmt: PromptFormat | None = None
    # start of the open span, -1 when none is open
    speech_at: int = -1
    audcap_at: int = -1
    colon_at: int = -1
    plain_from: int = 0  # where the current run of plain description text starts

    def token(self, m: re.Match[str]) -> None:
        """Take one tag-shaped token: a real tag moves the state, a near miss is an error."""
        tok, at = m.group(), m.start()
        if self.colon_at >= 0:
            self._check_after_colon(tok, at)
        if tok == AUDIO_COLON:
            if self.speech_at < 0:  # spoken words may contain "Audio:"
                self._audio_colon(m)
            return
        if tok not in _TAGS:
            suggestion = _near_miss(tok)
            if suggestion is not None:
                raise PromptError(
                    f"unknown tag {tok!r} at position {at}; did you mean {suggestion}? "
                    "Ovi's tags are <S>, <E>, <AUDCAP> and <ENDAUDCAP> (case-sensitive)"
                )
            return
        if self.speech_at >= 0 and tok != SPEECH_CLOSE:
            raise PromptError(
                f"{tok!r} at position {at} is nested inside the speech "
                f"{_quote(self.text, self.speech_at, at)} opened at position {self.speech_at}; "
                "close the speech with <E> first"
            )
        handlers = {SPEECH_OPEN: self._speech_open, SPEECH_CLOSE: self._speech_close,
                    AUDCAP_OPEN: self._audcap_open, AUDCAP_CLOSE: self._audcap_close}
        handlers[tok](m)

    def _check_after_colon(self, tok: str, at: int) -> None:
        """Everything after `Audio:` is caption; tags there are mistakes."""
        if tok == SPEECH_OPEN:
            raise PromptError(
                f"speech tag '<S>' at position {at} is inside the audio caption that "
                f"starts with 'Audio:' at position {self.colon_at}; put the speech before 'Audio:'"
            )
        if tok in (AUDCAP_OPEN, AUDCAP_CLOSE):
            raise PromptError(
                f"prompt mixes both caption formats: {tok!r} at position {at} and 'Audio:' "
                f"at position {self.colon_at}; keep only one audio caption"
            )
        if tok == AUDIO_COLON:
            raise PromptError(
                f"more than one audio caption: a second 'Audio:' at position {at} "
                f"(the first is at {self.colon_at}); merge them into one"
            )

    def _audio_colon(self, m: re.Match[str]) -> None:
        at = m.start()
        if self.audcap_at >= 0 or self.fmt == "audcap":
            where = f" at position {self.audcap_at}" if self.audcap_at >= 0 else ""
            raise PromptError(
                f"prompt mixes both caption formats: 'Audio:' at position {at} and "
                f"'<AUDCAP>'{where}; keep only one audio caption"
            )
        self.pieces.append(self.text[self.plain_from:at])
        self.colon_at, self.plain_from = at, len(self.text)
        self.caption = self.text[m.end():]
        if not self.caption.strip():
            raise PromptError(
                f"empty audio caption after 'Audio:' at position {at}; describe the "
                "sound after it or remove 'Audio:'"
            )
        self.fmt = "audio_colon"

    def _speech_open(self, m: re.Match[str]) -> None:
        at = m.start()
        if self.audcap_at >= 0:
            raise PromptError(
                f"speech tag '<S>' at position {at} is inside the audio caption opened "
                f"at position {self.audcap_at}; put speech outside <AUDCAP>...<ENDAUDCAP>"
            )
        self.pieces.append(self.text[self.plain_from:at])
        self.speech_at = at

    def _speech_close(self, m: re.Match[str]) -> None:
        at = m.start()
        if self.speech_at < 0:
            raise PromptError(
                f"'<E>' at position {at} has no matching '<S>'; "
                "wrap spoken words as <S>words<E>"
            )
        words = _squash(self.text[self.speech_at + len(SPEECH_OPEN) : at])
        if not words:
            raise PromptError(
                f"empty speech {_quote(self.text, self.speech_at, m.end())} at position "
                f"{self.speech_at}; put the spoken words between <S> and <E> or remove the tags"
            )
        self.speech.append(words)
        self.pieces.append(f"{SPEECH_OPEN}{words}{SPEECH_CLOSE}")
        self.speech_at, self.plain_from = -1, m.end()

    def _audcap_open(self, m: re.Match[str]) -> None:
        at = m.start()
        if self.audcap_at >= 0:
            raise PromptError(
                f"'<AUDCAP>' at position {at} is nested inside the audio caption opened "
                f"at position {self.audcap_at}; close it with <ENDAUDCAP> first"
            )
        if self.caption is not None:
            raise PromptError(
                f"more than one audio caption: a second '<AUDCAP>' at position {at}; "
                "merge the descriptions into one <AUDCAP>...<ENDAUDCAP>"
            )
        self.pieces.append(self.text[self.plain_from:at])
        self.audcap_at = at

    def _audcap_close(self, m: re.Match[str]) -> None:
        at = m.start()
        if self.audcap_at < 0:
            raise PromptError(
                f"'<ENDAUDCAP>' at position {at} has no matching '<AUDCAP>'; "
                "wrap the audio description as <AUDCAP>description<ENDAUDCAP>"
            )
        self.caption = self.text[self.audcap_at + len(AUDCAP_OPEN) : at]
        if not self.caption.strip():
            raise PromptError(
                f"empty audio caption {_quote(self.text, self.audcap_at, m.end())} at position "
                f"{self.audcap_at}; describe the sound or remove the tags"
            )
        self.fmt = "audcap"
        self.pieces.append(" ")  # keep the words on either side of the caption apart
        self.audcap_at, self.plain_from = -1, m.end()

    def finish(self) -> Prompt:
        """The parsed prompt, once no span is left open."""
        text = self.text
        if self.speech_at >= 0:
            raise PromptError(
                f"speech {_quote(text, self.speech_at, len(text))} opened at position "
                f"{self.speech_at} is never closed; add <E> after the spoken words"
            )
        if self.audcap_at >= 0:
            raise PromptError(
                f"audio caption {_quote(text, self.audcap_at, len(text))} opened at position "
                f"{self.audcap_at} has no <ENDAUDCAP>; add it after the audio description"
            )
        self.pieces.append(text[self.plain_from:])
        body = _squash("".join(self.pieces))
        # Drop the speech tags but keep the words; a tag squeezed between two words becomes a space.
        visual = re.sub(r"(?<=\w)(?:<S>|<E>)(?=\w)", " ", body)
        visual = _squash(visual.replace(SPEECH_OPEN, "").replace(SPEECH_CLOSE, ""))
        return Prompt(
            text=_squash(text),
            speech=tuple(self.speech),
            audio_description=_squash(self.caption) if self.caption is not None else None,
            visual=visual,
            body=body,
            source_format=self.fmt,
        )
