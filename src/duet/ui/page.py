"""The page `duet ui` serves: one `gr.Blocks` over a `Runner`.

Each widget holds one `Settings` field; the Generate handler turns their values into
`Settings` and hands them to the runner. What the page adds is presentation: the progress
bar, Cancel, the result, a gallery of this browser session's clips with the command line of
each, the attention picture, and errors as the CLI's one-line messages.
"""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import fields
from typing import Any

import gradio as gr

from duet.errors import DuetError
from duet.text.prompt import AUDCAP_CLOSE, AUDCAP_OPEN, SPEECH_CLOSE, SPEECH_OPEN, parse_prompt
from duet.ui.runner import Cancelled, Runner
from duet.ui.settings import Settings

log = logging.getLogger(__name__)

DEFAULT = "empty: the model's default"


def build_page(runner: Runner) -> gr.Blocks:
    """The page; its Generate event is the API endpoint `/generate` (inputs in `Settings`
    field order), Cancel is `/cancel`."""
    cancels: dict[str, threading.Event] = {}  # browser session -> its running generation's flag
    model = " ".join(runner.model_argv) or "--model=demo"
    with gr.Blocks(title="Duet") as page:
        gr.Markdown(f"## Duet: joint audio-video generation\nModel: `{model}`")
        with gr.Tab("Generate"), gr.Row():
            with gr.Column(scale=3):
                widgets = _settings_widgets()
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="generate")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
            with gr.Column(scale=2):
                # Plain text: a message quotes prompt tags, which Markdown would read as HTML.
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                video = gr.Video(label="Clip", elem_id="result", interactive=False,
                                 buttons=["download"])
                command = gr.Textbox(label="Same clip from the command line", interactive=False,
                                     buttons=["copy"], elem_id="command")
        with gr.Tab("Gallery"):
            gallery = gr.Gallery(label="This session's clips", columns=4, elem_id="gallery")
            chosen = gr.Textbox(label="Command line of the chosen clip", interactive=False,
                                buttons=["copy"])
        with gr.Tab("Cross-modal attention"):
            gr.Markdown("Where each audio instant of the last clip looked in its video: the audio "
                        "tower's cross-modal attention, summed over each video frame's patches and "
                        "averaged over heads, blocks and denoising steps (conditional pass).")
            attention = gr.Image(label="Audio -> video attention", type="filepath",
                                 interactive=False, elem_id="attention")
        history = gr.State([])  # [(mp4 path, command line)] of this session

        # Gradio passes the request and progress tracker to the parameters before *values.
        def run(request: gr.Request, progress: gr.Progress = gr.Progress(), *values: Any):  # noqa: B008
            *inputs, hist = values  # the widgets' values, then this session's history
            flag = cancels[request.session_hash] = threading.Event()
            try:
                result = runner.generate(_settings(inputs), cancel=flag, on_step=lambda done, total:
                                         progress((done, total), desc="denoising"))
            except Cancelled as e:
                return f"duet: {e}", None, "", None, _items(hist), hist
            except DuetError as e:
                return f"duet: error: {e}", None, "", None, _items(hist), hist
            except Exception as e:  # a bug: one line in the page, the traceback in the log
                log.exception("generation failed")
                line = f"duet: internal error: {type(e).__name__}: {e}".splitlines()[0]
                return line, None, "", None, _items(hist), hist
            finally:
                cancels.pop(request.session_hash, None)
            hist = [*hist, (str(result.video), result.command)]
            note = f"wrote {result.video.name} in {result.seconds:.1f} s"
            if result.random_init:
                note += " (RANDOM weights: the clip is noise)"
            return (note, str(result.video), result.command,
                    None if result.attention is None else str(result.attention), _items(hist), hist)

        def stop(request: gr.Request) -> None:
            if (flag := cancels.get(request.session_hash)) is not None:
                flag.set()

        generate.click(run, [*widgets, history],
                       [status, video, command, attention, gallery, history],
                       api_name="generate")
        cancel.click(stop, None, None, queue=False, api_name="cancel")

        def pick(hist: list[tuple[str, str]], event: gr.SelectData) -> str:
            return _items(hist)[event.index][1]

        gallery.select(pick, [history], chosen, queue=False)
    return page


def _settings_widgets() -> list[gr.components.Component]:
    """One widget per `Settings` field, in field order."""
    w: dict[str, gr.components.Component] = {}
    w["prompt"] = gr.Textbox(label="Prompt", lines=3, elem_id="prompt",
                             placeholder=f"a red ball bounces {AUDCAP_OPEN}low thuds{AUDCAP_CLOSE}")
    with gr.Row():
        speech = gr.Button(f"{SPEECH_OPEN}speech{SPEECH_CLOSE}", size="sm")
        sound = gr.Button(f"{AUDCAP_OPEN}sound{AUDCAP_CLOSE}", size="sm")
    problem = gr.Markdown(elem_id="prompt-error")
    with gr.Accordion("Clip", open=True), gr.Row():
        w["seed"] = gr.Number(0, label="Seed", precision=0)
        # Text boxes, as a browser's number box cannot be empty (the model's default).
        w["steps"] = gr.Textbox(label="Steps", placeholder=DEFAULT)
        w["duration"] = gr.Textbox(label="Duration (s)", placeholder=DEFAULT)
        w["height"] = gr.Textbox(label="Height", placeholder=DEFAULT)
        w["width"] = gr.Textbox(label="Width", placeholder=DEFAULT)
        w["solver"] = gr.Dropdown([("model default", ""), "unipc", "euler"], value="",
                                  label="Solver")
        w["shift"] = gr.Textbox(label="σ shift: S or video,audio", placeholder=DEFAULT)
    with gr.Accordion("Guidance", open=False):
        with gr.Row():
            w["video_guidance"] = gr.Textbox(label="Video CFG", placeholder=DEFAULT)
            w["audio_guidance"] = gr.Textbox(label="Audio CFG", placeholder=DEFAULT)
        with gr.Row():
            w["video_negative"] = gr.Textbox(label="Video negative prompt", placeholder=DEFAULT)
            w["audio_negative"] = gr.Textbox(label="Audio negative prompt", placeholder=DEFAULT)
        with gr.Row():
            w["slg"] = gr.Checkbox(True, label="Skip-layer guidance")
            w["stg_guidance"] = gr.Textbox(label="STG: S or video,audio", placeholder="0 (off)")
            w["stg_blocks"] = gr.Textbox(label="STG blocks: I,J", placeholder="the middle block")
            w["cross_modal_guidance"] = gr.Textbox(label="Cross-modal: S or video,audio",
                                                   placeholder="1 (off)")
            w["guidance_rescale"] = gr.Slider(0, 1, 0, step=0.05, label="Std rescale")
    with gr.Accordion("Given picture or sound (one at most)", open=False), gr.Row():
        w["image"] = gr.Image(label="First frame (image → audio + video)", type="filepath",
                              format="png", sources=["upload"])
        w["from_video"] = gr.Video(label="Video → its sound", sources=["upload"])
        w["from_audio"] = gr.Audio(label="Sound → its video", type="filepath", sources=["upload"])
    w["loras"] = gr.Textbox(label="LoRA adapters, one DIR[:SCALE] a line, merged in order",
                            lines=2, placeholder="runs/lora/adapter:0.8")
    speech.click(lambda p: f"{p} {SPEECH_OPEN} {SPEECH_CLOSE}".lstrip(), w["prompt"], w["prompt"],
                 queue=False, api_visibility="private")
    sound.click(lambda p: f"{p} {AUDCAP_OPEN} {AUDCAP_CLOSE}".lstrip(), w["prompt"], w["prompt"],
                queue=False, api_visibility="private")
    w["prompt"].change(prompt_problem, w["prompt"], problem, queue=False, api_name="check_prompt")
    names = [f.name for f in fields(Settings)]
    assert list(w) == names, "one widget per Settings field, in order"
    return list(w.values())


def prompt_problem(prompt: str) -> str:
    """The prompt's tag error as one line (escaped: it quotes tags, which Markdown would read
    as HTML), or "" (nothing typed yet is no error)."""
    if not prompt.strip():
        return ""
    try:
        parse_prompt(prompt)
    except DuetError as e:
        return f"⚠ {html.escape(str(e))}"
    return ""


def _settings(values: list[Any]) -> Settings:
    """Widget values (in `Settings` field order) -> Settings; empty means the default."""
    raw = dict(zip([f.name for f in fields(Settings)], values))
    raw["seed"] = int(raw["seed"] or 0)
    for name in ("solver", "video_negative", "audio_negative"):
        raw[name] = raw[name] or None  # "" means the model's default here
    if raw["guidance_rescale"] == 0:
        raw["guidance_rescale"] = None
    raw["loras"] = tuple(line.strip() for line in (raw["loras"] or "").splitlines() if line.strip())
    for name in ("steps", "duration", "height", "width", "shift", "video_guidance",
                 "audio_guidance", "stg_guidance", "stg_blocks",
                 "cross_modal_guidance"):
        raw[name] = (raw[name] or "").strip()
    return Settings(**raw)


def _items(history: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Gallery items, newest first, each captioned with its command line."""
    return [(path, cmd) for path, cmd in reversed(history)]
