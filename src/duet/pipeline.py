"""`DuetPipeline`: prompt in, `Clip` (frames + waveform) out.

The only module that holds the model, the codecs and the text encoder together. `__call__`
reads as diffusers' steps, each a method: check inputs (every default resolved against the
preset once, guidance included), encode the prompts, prepare the given picture or sound,
then per chunk prepare latents, denoise and decode.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from duet.chunks import Chunk, ChunkPlan, plan_chunks
from duet.clip import Clip
from duet.components import build_codecs, check_components
from duet.config import Preset
from duet.devices import resolve_device_dtype
from duet.errors import InputError
from duet.inputs import (check_conditioning, check_image, check_negative, check_seed,
                         clip_frames, fit_frames, format_prompt, snap_size)
from duet.loading import load_model, load_twin
from duet.memory import MemoryConfig, apply_memory, release_text_encoder
from duet.model import TwinModel
from duet.quantize import refuse_quantized
from duet.sampling.guidance import (CleanPrefix, Conditioning, Guidance, Scale, guided_velocity,
                                    per_modality, resolve_guidance)
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas
from duet.stitch import ClipBuffer, held_by
from duet.text.encoder import TextEncoder
from duet.weights import (BUNDLE_WEIGHTS, bundle_codec_files, locate, ovi_preset, save_weights,
                          write_config)

log = logging.getLogger(__name__)

Texts = tuple[dict[str, Conditioning], Conditioning]  # each chunk prompt's embeddings; negatives
Callback = Callable[[dict[str, Any]], None]  # gets the sampler's dict after each step


@dataclass(frozen=True)
class Request:
    """One call's arguments, checked and resolved against the preset before any model runs:
    the steps after `check_inputs` read this and never look at a default again."""

    plan: ChunkPlan  # the chunks and their prompts, in the model's format
    height: int
    width: int
    guidance: Guidance
    sigmas: Tensor | tuple[Tensor, Tensor]  # float64 on the device; one grid or (video, audio)
    solver: str
    negatives: tuple[str, str]  # (video, audio); "" is a real negative: the empty prompt
    held: str | None  # "video" or "audio": given, not generated
    cross_modal: bool  # False: the fusion is off in every pass


@dataclass(frozen=True)
class Given:
    """The caller's picture or sound in the model's terms (None: not given)."""

    first: Tensor | None = None  # clean first-frame latent [1, C, 1, h', w'] (image-to-video)
    frames: Tensor | None = None  # [1, 3, T, h, w] in [-1, 1] (video-to-audio)
    wave: Tensor | None = None  # [N] (audio-to-video)


@dataclass(frozen=True)
class Latents:
    """One chunk's start: video [1, C, F, h', w'] and audio [1, L, C] (noise, or a given
    modality's encoding) and the clean prefixes the sampler holds (None: nothing held)."""

    video: Tensor
    audio: Tensor
    video_prefix: Tensor | None
    audio_prefix: Tensor | None


def _chunk_callback(callback: Callback | None, index: int, chunks: int) -> Callback | None:
    """The user's step callback, told which chunk the step belongs to."""
    if callback is None:
        return None
    return lambda info: callback({**info, "chunk": index, "chunks": chunks})


def _cross_modal_scale(cross_modal_guidance: Scale, bridge_guidance: Scale | None) -> Scale:
    """`bridge_guidance` is the former name of `cross_modal_guidance`: still accepted, with a
    DeprecationWarning, so that scripts written before the rename keep their clips."""
    if bridge_guidance is None:
        return cross_modal_guidance
    warnings.warn("bridge_guidance is deprecated: pass cross_modal_guidance (the same scale)",
                  DeprecationWarning, stacklevel=4)  # the caller of `DuetPipeline.__call__`
    if cross_modal_guidance != 1.0:
        raise InputError("pass cross_modal_guidance or its former name bridge_guidance, not both")
    return bridge_guidance


class DuetPipeline:
    """Text → joint video + audio. Build with `from_pretrained(bundle dir or preset name)`."""

    def __init__(self, preset: Preset, model: TwinModel, text_encoder: TextEncoder,
                 video_codec: Any, audio_codec: Any, *, device: torch.device | str = "cpu",
                 random_init: bool = False, memory: MemoryConfig | None = None) -> None:
        self.preset = preset
        self.memory = memory or MemoryConfig()  # what `from_components` applied; read per call
        self.model = model.eval().requires_grad_(False)
        self.text_encoder = text_encoder
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.device = torch.device(device)
        self.random_init = random_init
        self.loras: list[tuple[str, float]] = []  # adapters merged into `model`, in order
        check_components(preset, text_encoder, video_codec, audio_codec)

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = "demo", *, weights: str | os.PathLike | None = None,
                        device: str | None = None, dtype: torch.dtype | str | None = None,
                        memory: MemoryConfig | None = None) -> DuetPipeline:
        """Load a bundle directory, or a preset name (its shipped weights if any).
        `weights`: an official Ovi weights folder (see `duet.weights`); `model` then names the
        Ovi preset to run from it. `memory`: offload / fp8 or int8 weights / tiling, to fit
        smaller GPUs (`duet.memory`)."""
        if weights is not None:
            return cls.from_official(weights, str(model), device=device, dtype=dtype, memory=memory)
        device, dtype = resolve_device_dtype(device, dtype)
        preset, net, random_init = load_model(model, dtype)
        return cls.from_components(preset, net, device=device, random_init=random_init,
                                   memory=memory)

    @classmethod
    def from_official(cls, root: str | os.PathLike, preset: str | Preset = "ovi-720x720-5s", *,
                      device: str | None = None, dtype: torch.dtype | str | None = None,
                      memory: MemoryConfig | None = None) -> DuetPipeline:
        """The released Ovi model from the folder the official download wrote: its DiT file for
        `preset`, the Wan2.2 VAE and umT5 encoder, MMAudio's VAE and vocoder (`duet.weights`)."""
        device, dtype = resolve_device_dtype(device, dtype)
        p = ovi_preset(preset)
        files = locate(root, p.name)
        p = dataclasses.replace(p, codecs=files.codecs())
        return cls.from_components(p, load_twin(p, files.dit, dtype), device=device,
                                   memory=memory)

    @classmethod
    def from_components(cls, preset: Preset, model: TwinModel, *, device: torch.device | str = "cpu",
                        random_init: bool = False,
                        memory: MemoryConfig | None = None) -> DuetPipeline:
        """Build the codecs and text encoder that the preset names around `model`, and put
        `model` on `device` as `memory` says (quantized and/or offloaded, else whole)."""
        memory = memory or MemoryConfig()
        video_codec, audio_codec, text = build_codecs(preset, device, vae_tiling=memory.vae_tiling)
        return cls(preset, apply_memory(model, memory, device), text, video_codec, audio_codec,
                   device=device, random_init=random_init, memory=memory)

    def load_lora(self, path: str | os.PathLike, scale: float = 1.0) -> DuetPipeline:
        """Merge a LoRA adapter (`duet train` with lora) into this pipeline's model weights:
        W += scale * (alpha/r) B A. Adapters stack; merge with -scale to take one out again."""
        from duet.lora import load_adapter, merge_adapter

        if not math.isfinite(scale):
            raise InputError(f"LoRA scale must be a finite number, got {scale}")
        refuse_quantized(self.model, "merge a LoRA adapter")
        merged = merge_adapter(self.model, load_adapter(path), scale, source=str(path))
        log.info("merged LoRA %s (scale %g) into %d layers", path, scale, merged)
        self.loras.append((str(path), float(scale)))
        return self

    def enable_sequence_parallel(self, group: torch.distributed.ProcessGroup | None = None,
                                 ) -> DuetPipeline:
        """Split the model's tokens over the processes of `group` (default: all; see
        `TwinModel.enable_sequence_parallel`). Every process must call the pipeline with the
        same arguments and seed: each draws the same noise, runs the sampler on its share of
        the tokens and decodes the same clip."""
        self.model.enable_sequence_parallel(group)
        return self

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json + model.safetensors, and a copy (or hard link) of every codec
        file the preset names, so that `from_pretrained(directory)` reads them back even
        where the files it was loaded with are gone."""
        directory = Path(directory)
        refuse_quantized(self.model, "save a bundle")  # bundles hold full-precision weights
        save_weights(self.model.state_dict(), directory / BUNDLE_WEIGHTS)
        preset = bundle_codec_files(self.preset, directory, self.preset.codecs)
        write_config(directory, preset, {"random_init": self.random_init})
        return directory

    # ---- generation -----------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, prompt: str, *, height: int | None = None, width: int | None = None,
                 duration: float | None = None, steps: int | None = None,
                 shift: Scale | None = None, solver: str | None = None,
                 video_guidance: float | None = None, audio_guidance: float | None = None,
                 video_negative: str | None = None, audio_negative: str | None = None,
                 slg: bool = True, slg_block: int | None = None, stg_guidance: Scale = 0.0,
                 stg_blocks: tuple[int, ...] | None = None, cross_modal_guidance: Scale = 1.0,
                 guidance_rescale: float = 0.0, image: Tensor | np.ndarray | None = None,
                 from_video: Tensor | np.ndarray | None = None,
                 from_audio: Tensor | np.ndarray | None = None,
                 seed: int | None = None, generator: torch.Generator | None = None,
                 batch_cfg: bool = True, cross_modal: bool = True, progress: bool = True,
                 callback: Callback | None = None, then: Sequence[str] = (),
                 schedule: Sequence[tuple[float, str]] = (), overlap: int | None = None,
                 bridge_guidance: Scale | None = None) -> Clip:
        """Generate one clip. Unset (None) options take the preset's defaults (Ovi's for Ovi
        presets). slg: skip-layer guidance, slg_block: its block (None: the preset's, if any).
        stg_guidance, cross_modal_guidance: the extra terms of `duet.sampling.guidance`: STG
            (stg_blocks: the blocks its pass skips; default the middle one) and cross-modal
            guidance (MOVA's dual CFG: cond vs the fusion off), one scale or (video, audio);
            neutral 0 and 1. bridge_guidance: the deprecated name of cross_modal_guidance.
        guidance_rescale: std rescale phi in [0, 1] (0 = off).
        shift: σ shift, one for both or (video, audio): two values give each modality its
            own σ grid (same steps), so one can be denoised ahead of the other.
        image: uint8 [H, W, 3] first frame (image-to-audio-video); it is resized to the output.
        from_video: uint8 [T, H, W, 3] frames at the preset's fps (video-to-audio): held clean
            (t = 0), only the audio is generated; the clip takes the video's duration (whole
            latent frames) and picture. from_audio: float [N] waveform at the codec's sample
            rate (audio-to-video), the converse.
        seed / generator: the same seed gives the same clip on the same device and dtype.
        cross_modal: False runs each tower alone (no fusion), to measure what fusion adds.
        duration beyond the preset's clip length (up to `duet.chunks.MAX_DURATION`) makes the
            clip in chunks overlapping by `overlap` latent frames (default about 1/2 s): the
            first half held clean, the rest crossfaded (`duet.chunks`, `duet.stitch`).
        then: prompts of the 2nd, 3rd... chunk (the last carries on); or schedule: (seconds,
            prompt) changes, each read from the first chunk whose new frames begin after it.
        callback: gets the sampler's dict after each step, plus "chunk" (0-based) and "chunks".
        """
        # 1. Resolve the guidance options against the preset, once; check the other inputs
        guidance = resolve_guidance(
            self.preset.sampler, self.model.num_layers, video_guidance=video_guidance,
            audio_guidance=audio_guidance, slg=slg, slg_block=slg_block, stg_guidance=stg_guidance,
            stg_blocks=stg_blocks, guidance_rescale=guidance_rescale, batch_cfg=batch_cfg,
            cross_modal_guidance=_cross_modal_scale(cross_modal_guidance, bridge_guidance))
        request = self.check_inputs(
            prompt, guidance, height=height, width=width, duration=duration, steps=steps,
            shift=shift, solver=solver, video_negative=video_negative,
            audio_negative=audio_negative, image=image, from_video=from_video,
            from_audio=from_audio, seed=seed, then=then, schedule=schedule, overlap=overlap,
            cross_modal=cross_modal)
        # 2. Encode the prompts; 3. the given picture or sound
        texts = self.encode_prompt(request)
        given = self.prepare_given(request, image, from_video, from_audio)
        if generator is None:
            generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        # 4. Per chunk: prepare latents, denoise, decode, blend into the clip. Of the previous
        #    chunk only what the next one holds is kept, so memory does not grow with length.
        plan, hop = request.plan, self.audio_codec.hop
        out = ClipBuffer(plan.frames, request.height, request.width,
                         round(plan.frames / self.preset.media.fps * self.audio_codec.sample_rate))
        carried = None
        for chunk in plan.chunks:
            latents = self.prepare_latents(request, chunk, given, carried, generator)
            video, audio = self.denoise(request, chunk, latents, texts, callback=callback,
                                        progress=progress)
            pixels, wave = self.decode(chunk, video, audio, given)  # (3, T, h, w), [N]
            out.add_video(chunk.start, pixels.permute(1, 2, 3, 0).cpu(), chunk.overlap, chunk.held)
            out.add_audio(chunk.audio_start * hop, wave.cpu(), chunk.audio_overlap * hop,
                          chunk.audio_held * hop)
            if chunk.index + 1 < len(plan.chunks):
                carried = held_by(plan.chunks[chunk.index + 1], chunk, pixels, audio)
        return Clip(out.video, out.audio, self.preset.media.fps, self.audio_codec.sample_rate)

    def check_inputs(self, prompt: str, guidance: Guidance, *, height: int | None,
                     width: int | None, duration: float | None, steps: int | None,
                     shift: Scale | None, solver: str | None, video_negative: str | None,
                     audio_negative: str | None, image: Any, from_video: Any, from_audio: Any,
                     seed: int | None, then: Sequence[str],
                     schedule: Sequence[tuple[float, str]], overlap: int | None,
                     cross_modal: bool) -> Request:
        """Refuse bad arguments with a message that names them, before any model runs, and
        resolve the preset's defaults (the σ grids, the negative prompts, the solver). Plans
        the chunks: one, unless the clip is longer than the model's native length."""
        sc, media = self.preset.sampler, self.preset.media
        text = format_prompt(prompt, self.preset.prompt_format)
        check_negative(video_negative, "video_negative")
        check_negative(audio_negative, "audio_negative")
        check_seed(seed)
        h, w = snap_size(height, width, media.area, media.size_multiple)
        held = check_conditioning(image, from_video, from_audio, duration)
        if held is not None and (then or schedule):
            raise InputError("then / schedule prompts are for generated clips; a given video or "
                             "sound is one pass with one prompt")
        frames = clip_frames(media, duration, from_video, from_audio, self.audio_codec.sample_rate)
        steps = sc.steps if steps is None else steps
        shift_v, shift_a = per_modality(sc.shift if shift is None else shift, "shift")
        sigmas = flow_sigmas(steps, shift_v, dtype=torch.float64).to(self.device)
        if shift_a != shift_v:  # one σ grid per modality, same steps
            sigmas = (sigmas, flow_sigmas(steps, shift_a, dtype=torch.float64).to(self.device))
        if held is not None:  # a given video or sound is one pass, whatever its length
            plan = ChunkPlan.single(frames, media, text)
        else:
            fmt = self.preset.prompt_format
            follow = [format_prompt(p, fmt, f"then[{i}]") for i, p in enumerate(then)]
            timed = [(at, format_prompt(p, fmt, f"schedule at {at:g} s")) for at, p in schedule]
            plan = plan_chunks(frames, media, text, then=follow, schedule=timed, overlap=overlap)
        if len(plan.chunks) > 1:
            log.info("%d frames in %d chunks of up to %d frames, %d shared between neighbours "
                     "(%d held)", frames, len(plan.chunks), media.frames,
                     plan.chunks[1].overlap, plan.chunks[1].held)
        negatives = (sc.video_negative if video_negative is None else video_negative,
                     sc.audio_negative if audio_negative is None else audio_negative)
        return Request(plan, h, w, guidance, sigmas, solver or sc.solver, negatives, held,
                       cross_modal)

    def encode_prompt(self, request: Request) -> Texts:
        """Each chunk's prompt (the same for both towers) and one negative prompt per tower;
        the text encoder is freed afterwards where memory says so (embeddings stay cached)."""
        texts = list(dict.fromkeys(c.prompt for c in request.plan.chunks))
        prompts, embeddings = [*texts, *request.negatives], []
        text_len = self.preset.model.video.text_len
        for p, emb in zip(prompts, self.text_encoder.encode(prompts)):
            if emb.shape[0] > text_len:  # [Lt, text_dim]: cut to the rows the model reads
                log.warning("prompt has %d tokens; the model reads %d, so %d are dropped: %r",
                            emb.shape[0], text_len, emb.shape[0] - text_len, p[:60])
                emb = emb[:text_len]
            embeddings.append(emb[None].to(self.device, self._dtype))
        *pos, vneg, aneg = embeddings
        if self.memory.frees_text_encoder(self.device):
            release_text_encoder(self.text_encoder)
        return {t: Conditioning(e, e) for t, e in zip(texts, pos)}, Conditioning(vneg, aneg)

    def prepare_given(self, request: Request, image: Any, from_video: Any,
                      from_audio: Any) -> Given:
        """The given first frame as a clean latent, the given video as frames cut to the
        clip's length, the given sound as a waveform."""
        h, w = request.height, request.width
        first = frames = wave = None
        if image is not None:  # center crop + resize, then the codec: (1, C, 1, h', w')
            x = fit_frames(check_image(image)[None], h, w)
            first = self.video_codec.encode(x).to(self.device, self._dtype)
        if from_video is not None:
            frames = fit_frames(from_video, h, w)[:, :, :request.plan.frames]  # (1, 3, T, h, w)
        if from_audio is not None:
            wave = torch.as_tensor(np.asarray(from_audio), dtype=torch.float32)
        return Given(first, frames, wave)

    def prepare_latents(self, request: Request, chunk: Chunk, given: Given,
                        carried: tuple[Tensor, Tensor] | None,
                        generator: torch.Generator) -> Latents:
        """Noise drawn on the CPU (so a seed means the same on any device), a given
        modality's encoding in its place, and the clean prefix: the first frame, or what the
        previous chunk hands on (`carried`: its held pixels, and its own audio latents)."""
        dtype = self._dtype
        c, f, lh, lw = self.video_codec.latent_shape(chunk.frames, request.height, request.width)
        video = torch.randn(1, c, f, lh, lw, generator=generator).to(self.device, dtype)
        audio = torch.randn(1, chunk.audio_latents, self.audio_codec.latent_channels,
                            generator=generator).to(self.device, dtype)
        vprefix, aprefix = given.first, None
        if carried is not None:
            vprefix = self.video_codec.encode(carried[0]).to(self.device, dtype)
            aprefix = carried[1]
        if given.frames is not None:
            video = self.video_codec.encode(given.frames).to(self.device, dtype)
        if given.wave is not None:
            m = chunk.audio_latents * self.audio_codec.hop
            head = torch.nn.functional.pad(given.wave, (0, max(0, m - given.wave.shape[0])))[:m]
            audio = self.audio_codec.encode(head[None]).to(self.device, dtype)
        return Latents(video, audio, vprefix, aprefix)

    def denoise(self, request: Request, chunk: Chunk, latents: Latents, texts: Texts, *,
                callback: Callback | None = None, progress: bool = True) -> tuple[Tensor, Tensor]:
        """One chunk's sampling loop with the resolved guidance: latents at t = 0."""
        conds, uncond = texts
        clean = CleanPrefix(0 if latents.video_prefix is None else latents.video_prefix.shape[2],
                            0 if latents.audio_prefix is None else latents.audio_prefix.shape[1])
        velocity = functools.partial(guided_velocity, self.model, cond=conds[chunk.prompt],
                                     uncond=uncond, guidance=request.guidance, clean=clean,
                                     cross_modal=request.cross_modal)
        n = len(request.plan.chunks)
        if n > 1:
            log.info("chunk %d of %d: frames %d-%d, %r", chunk.index + 1, n, chunk.start,
                     chunk.start + chunk.frames - 1, chunk.prompt[:60])
        return sample(velocity, latents.video, latents.audio, request.sigmas,
                      solver=request.solver, video_prefix=latents.video_prefix,
                      audio_prefix=latents.audio_prefix, held=request.held,
                      callback=_chunk_callback(callback, chunk.index, n), disable=not progress,
                      desc=f"chunk {chunk.index + 1} of {n}" if n > 1 else "denoising")

    def decode(self, chunk: Chunk, video: Tensor, audio: Tensor,
               given: Given) -> tuple[Tensor, Tensor]:
        """Pixels (3, T, h, w) in [-1, 1] and the waveform [N]; a given modality is returned
        as given, not through its codec's round trip."""
        pixels = (given.frames[0] if given.frames is not None
                  else self.video_codec.decode(video.float())[0, :, :chunk.frames])
        wave = given.wave if given.wave is not None else self.audio_codec.decode(audio.float())[0]
        return pixels, wave

    @property
    def _dtype(self) -> torch.dtype:
        """The dtype the model takes its inputs in."""
        return self.model.video_model.patch_embedding_dtype
