"""Parsing, format conversion and error messages of Ovi's combined prompts."""

import pytest

from duet.errors import ConfigError, PromptError
from duet.text.prompt import PROMPT_FORMATS, Prompt, parse_prompt

AUDCAP = (
    "A woman at a desk looks up, she says <S>Hello there.<E> then smiles. "
    "<AUDCAP>Clear female voice, soft room tone<ENDAUDCAP>"
)
COLON = (
    "A woman at a desk looks up, she says <S>Hello there.<E> then smiles. "
    "Audio: Clear female voice, soft room tone"
)


def test_parse_audcap_format():
    p = parse_prompt(AUDCAP)
    assert p == Prompt(
        text=AUDCAP,
        speech=("Hello there.",),
        audio_description="Clear female voice, soft room tone",
        visual="A woman at a desk looks up, she says Hello there. then smiles.",
        body="A woman at a desk looks up, she says <S>Hello there.<E> then smiles.",
        source_format="audcap",
    )


def test_parse_audio_colon_format_gives_same_content():
    a, c = parse_prompt(AUDCAP), parse_prompt(COLON)
    assert c.source_format == "audio_colon"
    assert (c.speech, c.audio_description, c.visual, c.body) == (
        a.speech, a.audio_description, a.visual, a.body
    )
    assert c.text == COLON


def test_several_speech_segments_and_whitespace_normalised():
    p = parse_prompt("Two men talk.\n First says <S>  Hi,\n Bob <E>;  second  <S>Hey<E>.\t")
    assert p.speech == ("Hi, Bob", "Hey")
    assert p.text == "Two men talk. First says <S> Hi, Bob <E>; second <S>Hey<E>."
    assert p.body == "Two men talk. First says <S>Hi, Bob<E>; second <S>Hey<E>."
    assert p.visual == "Two men talk. First says Hi, Bob; second Hey."
    assert p.audio_description is None and p.source_format is None


def test_no_tags_at_all():
    p = parse_prompt("  A red kite over a beach  ")
    assert p.speech == () and p.audio_description is None
    assert p.text == p.visual == p.body == "A red kite over a beach"
    assert p.to_format("audcap") == p.to_format("audio_colon") == "A red kite over a beach"


def test_caption_in_the_middle_is_moved_to_the_end():
    p = parse_prompt("A cat<AUDCAP>soft purring<ENDAUDCAP>sleeps on a sofa")
    assert p.body == p.visual == "A cat sleeps on a sofa"
    assert p.to_format("audcap") == "A cat sleeps on a sofa <AUDCAP>soft purring<ENDAUDCAP>"


def test_speech_between_words_keeps_words_apart_in_visual():
    assert parse_prompt("he says<S>hi<E>there").visual == "he says hi there"


def test_plain_angle_words_are_kept_as_text():
    p = parse_prompt("A baby <laughs> loudly <AUDCAP>giggles<ENDAUDCAP>")
    assert p.visual == "A baby <laughs> loudly"


def test_audio_colon_inside_speech_is_speech():
    p = parse_prompt("He taps the mic: <S>Audio: one, two<E> Audio: mic thumps, male voice")
    assert p.speech == ("Audio: one, two",)
    assert p.audio_description == "mic thumps, male voice"


def test_convert_between_formats():
    assert parse_prompt(AUDCAP).to_format("audio_colon") == COLON
    assert parse_prompt(COLON).to_format("audcap") == AUDCAP
    assert parse_prompt(AUDCAP).to_format("audcap") == AUDCAP


@pytest.mark.parametrize("src", [AUDCAP, COLON, "A dog <S>Woof<E> Audio: barking"])
@pytest.mark.parametrize("fmt", PROMPT_FORMATS)
def test_round_trip_keeps_content(src, fmt):
    p = parse_prompt(src)
    q = parse_prompt(p.to_format(fmt))
    assert q.source_format == fmt
    assert (q.speech, q.audio_description, q.visual, q.body) == (
        p.speech, p.audio_description, p.visual, p.body
    )
    assert parse_prompt(q.to_format(p.source_format)).text == p.to_format(p.source_format)


def test_caption_only_prompt():
    p = parse_prompt("Audio: rain on a tin roof")
    assert p.body == "" and p.to_format("audcap") == "<AUDCAP>rain on a tin roof<ENDAUDCAP>"


def test_unknown_format_lists_allowed():
    with pytest.raises(ConfigError, match="audcap, audio_colon"):
        parse_prompt(AUDCAP).to_format("wan")


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_prompt(text):
    with pytest.raises(PromptError, match="prompt is empty"):
        parse_prompt(text)


def test_bytes_that_are_not_utf8_are_refused():
    # what Python makes of the argv bytes 'a ball \xff\xfe bounces' (surrogateescape)
    with pytest.raises(PromptError, match=r"not valid UTF-8 text: .* at position 7"):
        parse_prompt("a ball \udcff\udcfe bounces <AUDCAP>thud<ENDAUDCAP>")


def test_not_a_string():
    with pytest.raises(PromptError, match="must be a str, got NoneType"):
        parse_prompt(None)


# (prompt, fragments that the message must contain)
ERRORS = [
    ("She says <S>hello there", ["'<S>hello there'", "position 9", "never closed", "add <E>"]),
    ("She says hello<E>", ["'<E>' at position 14", "no matching '<S>'"]),
    ("<S>a <S>b<E><E>", ["'<S>' at position 5", "nested", "'<S>a '", "position 0"]),
    ("<S>a <AUDCAP>b<ENDAUDCAP><E>", ["'<AUDCAP>' at position 5", "nested inside the speech"]),
    ("<AUDCAP>a <S>b<E><ENDAUDCAP>", ["'<S>' at position 10", "inside the audio caption"]),
    ("Rain. <AUDCAP>rain falls", ["'<AUDCAP>rain falls'", "position 6", "no <ENDAUDCAP>"]),
    ("Rain falls<ENDAUDCAP>", ["'<ENDAUDCAP>' at position 10", "no matching '<AUDCAP>'"]),
    ("<AUDCAP>a<ENDAUDCAP> <AUDCAP>b<ENDAUDCAP>", ["more than one audio caption", "position 21"]),
    ("<AUDCAP>a<ENDAUDCAP> <AUDCAP>b", ["more than one audio caption", "position 21"]),
    ("x Audio: a Audio: b", ["more than one audio caption", "position 11", "first is at 2"]),
    ("<AUDCAP>a<ENDAUDCAP> Audio: b", ["both caption formats", "'Audio:' at position 21"]),
    ("<AUDCAP>a Audio: b<ENDAUDCAP>", ["both caption formats", "'<AUDCAP>' at position 0"]),
    ("x Audio: a <AUDCAP>b<ENDAUDCAP>", ["both caption formats", "position 11", "position 2"]),
    ("x Audio: a <S>b<E>", ["'<S>' at position 11", "inside the audio", "before 'Audio:'"]),
    ("She says <S> \n <E>.", ["empty speech", "'<S> \\n <E>'", "position 9"]),
    ("Rain <AUDCAP>  <ENDAUDCAP>", ["empty audio caption", "<AUDCAP>  <ENDAUDCAP>'", "position 5"]),
    ("Rain. Audio:   ", ["empty audio caption after 'Audio:' at position 6"]),
    ("She says <s>hi<E>", ["unknown tag '<s>' at position 9", "did you mean <S>?"]),
    ("She says <S>hi<e>", ["unknown tag '<e>' at position 14", "did you mean <E>?"]),
    ("She says <S>hi</S>", ["unknown tag '</S>' at position 14", "did you mean <E>?"]),
    ("She says <S>hi<END>", ["'<END>' at position 14", "<E> (end of speech)", "<ENDAUDCAP>"]),
    ("Rain <AUDIOCAP>rain<ENDAUDCAP>", ["'<AUDIOCAP>' at position 5", "did you mean <AUDCAP>?"]),
    ("Rain <AUDCAP>rain</AUDCAP>", ["'</AUDCAP>' at position 17", "did you mean <ENDAUDCAP>?"]),
    ("Rain <audcap>rain<ENDAUDCAP>", ["unknown tag '<audcap>'", "did you mean <AUDCAP>?"]),
    ("He <speech>hi<E>", ["unknown tag '<speech>' at position 3", "did you mean <S>?"]),
]


@pytest.mark.parametrize(("text", "fragments"), ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages(text, fragments):
    with pytest.raises(PromptError) as info:
        parse_prompt(text)
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_long_offending_part_is_shortened():
    with pytest.raises(PromptError) as info:
        parse_prompt("She says <S>" + "la " * 100)
    assert "...'" in str(info.value) and len(str(info.value)) < 200
