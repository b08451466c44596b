"""`DuetPipeline`: prompt in, `Clip` (frames + waveform) out.

The only module that holds the model, the codecs and the text encoder together. `__call__`
reads as numbered steps: check inputs, encode text, prepare latents, denoise, decode.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from duet.weights import (BUNDLE_WEIGHTS, load_into, load_weights, read_config,
                              save_weights, write_config)
from duet.chunks import MAX_DURATION, Chunk, ChunkPlan, plan_chunks
from duet.components import build_codecs
from duet.config import PRESETS, Preset, get_preset
from duet.devices import resolve_device_dtype
from duet.errors import CheckpointError, ConfigError, InputError, PromptError
from duet.media import write_clip
from duet.stitch import ClipBuffer
from duet.memory import MemoryConfig, apply_memory, release_text_encoder
from duet.quantize import refuse_quantized
from duet.model import TwinModel
from duet.sampling.guidance import CleanPrefix, Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas
from duet.text.encoder import TextEncoder
from duet.text.prompt import parse_prompt
from duet.weights import locate, ovi_preset, resolve_codec_paths

log = logging.getLogger(__name__)

#: The longest given video or sound in seconds (it is one pass, so its cost grows with the
#: square of its length); generated clips are made in chunks up to `duet.chunks.MAX_DURATION`.
MAX_GIVEN_DURATION = 60.0

RANDOM_INIT_WARNING = (
    "the model has RANDOM weights (no trained weights were found): the clip will be noise. "
    "Pass --model DIR with a trained bundle to generate real content.")


@dataclass
class Clip:
    """A generated clip: frames uint8 [T, H, W, 3] and a mono waveform float32 [N] in [-1, 1]."""

    video: Tensor
    audio: Tensor
    fps: float
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.video.shape[0] / self.fps

    def save(self, path: str | os.PathLike) -> Path:
        """Write the clip atomically in the container the extension names: .mp4 or .mkv
        (H.264 + AAC), .wav (the sound alone); see `duet.media.write_clip`."""
        return write_clip(path, self.video.numpy(), self.audio.numpy(), self.fps, self.sample_rate)


def snap_size(height: int | None, width: int | None, area: int, multiple: int) -> tuple[int, int]:
    """Height and width with the requested aspect ratio, about `area` pixels, both multiples
    of `multiple` (rounded down, as Ovi does: 720x720 -> 704x704)."""
    h = height if height is not None else (width if width is not None else 1)
    w = width if width is not None else h
    if h <= 0 or w <= 0:
        raise InputError(f"height and width must be positive, got {height}x{width}")
    aspect = h / w
    snapped_w = math.floor(math.sqrt(area / aspect) / multiple) * multiple
    snapped_h = math.floor(math.sqrt(area * aspect) / multiple) * multiple
    if snapped_h < multiple or snapped_w < multiple:
        raise InputError(
            f"aspect ratio {h}:{w} cannot be snapped to this model's area of {area} pixels in "
            f"multiples of {multiple} (a side would be below {multiple}); use an aspect ratio "
            f"between 1:{area // multiple**2} and {area // multiple**2}:1")
    return snapped_h, snapped_w


def _pair(value: float | tuple[float, float] | list[float], name: str) -> tuple[float, float]:
    """One scale for both modalities, or (video, audio)."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise InputError(f"{name} must be one number or (video, audio), got {value!r}")


def _check_negative(prompt: str | None, name: str) -> None:
    """A negative prompt passes the same checks as a prompt (tags, text), except that ""
    is allowed: the empty prompt is a real negative."""
    if prompt is not None and (not isinstance(prompt, str) or prompt.strip()):
        try:
            parse_prompt(prompt)
        except PromptError as e:
            raise PromptError(f"{name}: {e}") from None


def _check_seed(seed: int | None) -> None:
    """torch seeds are unsigned 64-bit numbers; anything else fails deep inside torch."""
    top = 2**64 - 1
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or not 0 <= seed <= top):
        raise InputError(f"seed {seed!r} is out of range; use an integer from 0 to {top}")


def _shipped_bundle(name: str) -> Path | None:
    """A bundle shipped inside the package (duet/assets/<name>), if this install has one."""
    path = Path(str(resources.files("duet"))) / "assets" / name
    return path if (path / BUNDLE_WEIGHTS).is_file() else None


def random_model(preset: Preset, seed: int = 0) -> TwinModel:
    """A reproducibly initialised model (for tests, benchmarks and the untrained fallback)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TwinModel.from_config(preset.model)


def _chunk_callback(callback: Callable[[dict[str, Any]], None] | None, index: int,
                    chunks: int) -> Callable[[dict[str, Any]], None] | None:
    """The user's step callback, told which chunk the step belongs to."""
    if callback is None:
        return None
    return lambda info: callback({**info, "chunk": index, "chunks": chunks})


def _held_by(nxt: Chunk, chunk: Chunk, pixels: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
    """What `nxt` holds clean of `chunk`: pixels (3, T, h, w) -> (1, 3, held, h, w) at the
    start of their overlap, and audio latents (1, L, C) -> (1, audio_held, C)."""
    f0, a0 = nxt.start - chunk.start, nxt.audio_start - chunk.audio_start
    return pixels[None, :, f0:f0 + nxt.held], audio[:, a0:a0 + nxt.audio_held]


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
        self._check_components()

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
        path = Path(model)
        random_init = False
        if path.is_dir():
            preset, extra = read_config(path)
            preset = resolve_codec_paths(preset, path)
            random_init = bool(extra.get("random_init", False))
            file = path / BUNDLE_WEIGHTS
        elif str(model) in PRESETS:
            preset = get_preset(str(model))
            shipped = _shipped_bundle(preset.name)
            file = None
            if shipped is not None:  # the bundle's own config: it is what its weights were trained as
                preset, _ = read_config(shipped)
                file = shipped / BUNDLE_WEIGHTS
            elif preset.name != "demo":
                raise CheckpointError(
                    f"preset {preset.name!r} has no weights in this install; pass a bundle "
                    "directory, or --weights with the official Ovi download (see `duet doctor`)")
            random_init = file is None
        else:
            raise ConfigError(f"--model {str(model)!r} is neither a bundle directory nor a preset; "
                              f"presets: {sorted(PRESETS)}")
        if random_init:
            log.warning(RANDOM_INIT_WARNING)
        if file is None:
            net = random_model(preset).to(dtype)
        else:
            net = TwinModel.from_config(preset.model, device="meta")
            load_into(net, load_weights(file), source=str(file), dtype=dtype)
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
        net = TwinModel.from_config(p.model, device="meta")
        load_into(net, load_weights(files.dit), source=str(files.dit), dtype=dtype)
        return cls.from_components(p, net, device=device, memory=memory)

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
        """Write config.json + model.safetensors; `from_pretrained(directory)` reads them back."""
        directory = Path(directory)
        refuse_quantized(self.model, "save a bundle")  # bundles hold full-precision weights
        save_weights(self.model.state_dict(), directory / BUNDLE_WEIGHTS)
        write_config(directory, self.preset, {"random_init": self.random_init})
        return directory

    def _check_components(self) -> None:
        m, vc, ac = self.preset.model, self.video_codec, self.audio_codec
        problems = []
        if vc.latent_channels != m.video.in_dim:
            problems.append(f"video codec has {vc.latent_channels} latent channels, tower takes {m.video.in_dim}")
        if ac.latent_channels != m.audio.in_dim:
            problems.append(f"audio codec has {ac.latent_channels} latent channels, tower takes {m.audio.in_dim}")
        if self.text_encoder.dim != m.video.text_dim:
            problems.append(f"text encoder is {self.text_encoder.dim}-d, towers take {m.video.text_dim}")
        if problems:
            raise ConfigError(f"preset {self.preset.name!r} does not fit its components: " + "; ".join(problems))

    # ---- generation -----------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, prompt: str, *, height: int | None = None, width: int | None = None,
                 duration: float | None = None, steps: int | None = None,
                 shift: float | tuple[float, float] | None = None, solver: str | None = None,
                 video_guidance: float | None = None, audio_guidance: float | None = None,
                 video_negative: str | None = None, audio_negative: str | None = None,
                 slg_block: int | None = -1, stg_guidance: float | tuple[float, float] = 0.0,
                 stg_blocks: tuple[int, ...] | None = None,
                 bridge_guidance: float | tuple[float, float] = 1.0, guidance_rescale: float = 0.0,
                 image: Tensor | np.ndarray | None = None,
                 from_video: Tensor | np.ndarray | None = None,
                 from_audio: Tensor | np.ndarray | None = None,
                 seed: int | None = None, generator: torch.Generator | None = None,
                 batch_cfg: bool = True, cross_modal: bool = True, progress: bool = True,
                 callback: Callable[[dict[str, Any]], None] | None = None,
                 then: Sequence[str] = (), schedule: Sequence[tuple[float, str]] = (),
                 overlap: int | None = None) -> Clip:
        """Generate one clip. Unset options take the preset's defaults (Ovi's for Ovi presets).

        slg_block: block skipped in the negative pass; -1 = the preset's, None = no skipping.
        stg_guidance, bridge_guidance: the extra guidance terms of `duet.sampling.guidance`
            (STG and MOVA's dual-CFG bridge term), one scale or (video, audio); neutral 0 and
            1. stg_blocks: the blocks the STG pass skips (default: the middle block).
        guidance_rescale: std rescale phi in [0, 1] (0 = off).
        shift: σ shift, one for both or (video, audio): two values give each modality its
            own σ grid (same steps), so one can be denoised ahead of the other.
        image: uint8 [H, W, 3] first frame (image-to-audio-video); it is resized to the output.
        from_video: uint8 [T, H, W, 3] frames at the preset's fps (video-to-audio): the video
            is held clean (t = 0) and only the audio is generated; the clip's duration is the
            video's (trimmed to whole latent frames) and its picture is the given one, resized.
        from_audio: float [N] waveform at the codec's sample rate (audio-to-video), the
            converse; the clip keeps the given sound.
        seed / generator: the same seed gives the same clip on the same device and dtype.
        cross_modal: False disables the fusion at inference (each tower runs alone), to
            measure what the cross-modal attention contributes.
        duration beyond the preset's clip length (up to `duet.chunks.MAX_DURATION`) makes the
            clip in chunks of that length, each overlapping the one before by `overlap`
            latent frames (default about 1/2 s) and the matching sound: the first half is
            held clean, the rest crossfaded (`duet.chunks`, `duet.stitch`).
        then: prompts of the 2nd, 3rd... chunk (the last carries on); or schedule: (seconds,
            prompt) changes, each read from the first chunk whose new frames begin after it.
        callback: gets the sampler's dict after each step, plus "chunk" (0-based) and "chunks".
        """
        # 1. Check inputs
        sc, media = self.preset.sampler, self.preset.media
        parsed = parse_prompt(prompt)
        text = parsed.to_format(self.preset.prompt_format)
        _check_negative(video_negative, "video_negative")
        _check_negative(audio_negative, "audio_negative")
        _check_seed(seed)
        h, w = snap_size(height, width, media.area, media.size_multiple)
        held = self._check_conditioning(image, from_video, from_audio, duration)
        if held is not None and (then or schedule):
            raise InputError("then / schedule prompts are for generated clips; a given video or "
                             "sound is one pass with one prompt")
        if from_video is not None:
            frames = self._frames_within(int(np.asarray(from_video).shape[0]))
        elif from_audio is not None:
            n = int(np.asarray(from_audio).shape[0])
            frames = self._frames_within(int(n * media.fps / self.audio_codec.sample_rate))
        else:
            frames = self._frames(duration)
        steps = sc.steps if steps is None else steps
        skip = sc.slg_block if slg_block == -1 else slg_block
        stg_v, stg_a = _pair(stg_guidance, "stg_guidance")
        bridge_v, bridge_a = _pair(bridge_guidance, "bridge_guidance")
        n_blocks = self.model.num_layers
        stg_blocks = (n_blocks // 2,) if stg_blocks is None else tuple(int(b) for b in stg_blocks)
        guidance = Guidance(
            video_scale=sc.video_guidance if video_guidance is None else video_guidance,
            audio_scale=sc.audio_guidance if audio_guidance is None else audio_guidance,
            negative_skip_blocks=() if skip is None else (skip,), stg_video=stg_v, stg_audio=stg_a,
            stg_blocks=stg_blocks, bridge_video=bridge_v, bridge_audio=bridge_a,
            rescale=guidance_rescale, batched=batch_cfg)
        for name, blocks in (("slg_block", () if skip is None else (skip,)), ("stg_blocks", stg_blocks)):
            bad = [b for b in blocks if not 0 <= b < n_blocks]
            if bad or (name == "stg_blocks" and len(set(blocks)) != len(blocks)):
                raise InputError(f"{name} {list(blocks)} out of range or repeated: the model has "
                                 f"blocks 0..{n_blocks - 1}")
        shift_v, shift_a = _pair(sc.shift if shift is None else shift, "shift")
        sigmas = flow_sigmas(steps, shift_v, dtype=torch.float64)
        if shift_a != shift_v:  # one σ grid per modality, same steps
            sigmas = (sigmas, flow_sigmas(steps, shift_a, dtype=torch.float64))
        if generator is None:
            generator = torch.Generator().manual_seed(seed if seed is not None else 0)

        # 2. Plan the chunks: one, unless the clip is longer than the model's native length
        if held is not None:  # a given video or sound is one pass, whatever its length
            plan = ChunkPlan.single(frames, media, text)
        else:
            follow = [self._format(p, f"then[{i}]") for i, p in enumerate(then)]
            timed = [(at, self._format(p, f"schedule at {at:g} s")) for at, p in schedule]
            plan = plan_chunks(frames, media, text, then=follow, schedule=timed, overlap=overlap)
        n = len(plan.chunks)
        if n > 1:
            log.info("%d frames in %d chunks of up to %d frames, %d shared between neighbours "
                     "(%d held)", frames, n, media.frames, plan.chunks[1].overlap,
                     plan.chunks[1].held)

        # 3. Encode text (each chunk's prompt for both towers; one negative prompt each)
        texts = list(dict.fromkeys(c.prompt for c in plan.chunks))
        *pos, vneg, aneg = self._encode([  # "" is a real negative: the empty prompt
            *texts, sc.video_negative if video_negative is None else video_negative,
            sc.audio_negative if audio_negative is None else audio_negative])
        conds = {t: Conditioning(e, e) for t, e in zip(texts, pos)}
        uncond = Conditioning(vneg, aneg)
        if self.memory.frees_text_encoder(self.device):  # embeddings stay in its cache
            release_text_encoder(self.text_encoder)

        # 4. Per chunk: prepare latents (noise drawn on the CPU so a seed means the same on
        #    any device), denoise, decode, blend into the clip. Of the previous chunk only
        #    what the next one holds is kept, so memory does not grow with the clip's length.
        dtype = self.model.video_model.patch_embedding_dtype
        c, _, lh, lw = self.video_codec.latent_shape(plan.chunks[0].frames, h, w)
        hop = self.audio_codec.hop
        first = self._encode_image(image, h, w, dtype) if image is not None else None
        given_frames = given_wave = None
        if from_video is not None:
            given_frames = self._fit_frames(from_video, h, w)[:, :, :frames]  # (1, 3, T, h, w)
        if from_audio is not None:
            given_wave = torch.as_tensor(np.asarray(from_audio), dtype=torch.float32)
        sigmas = (tuple(g.to(self.device) for g in sigmas) if isinstance(sigmas, tuple)
                  else sigmas.to(self.device))
        out = ClipBuffer(frames, h, w, round(frames / media.fps * self.audio_codec.sample_rate))
        held_pixels = held_audio = None  # given by the previous chunk: this one's clean prefix
        for chunk in plan.chunks:
            f = self.video_codec.latent_shape(chunk.frames, h, w)[1]
            video = torch.randn(1, c, f, lh, lw, generator=generator).to(self.device, dtype)
            audio = torch.randn(1, chunk.audio_latents, self.audio_codec.latent_channels,
                                generator=generator).to(self.device, dtype)
            vprefix, aprefix = first, None
            if chunk.index > 0:  # the codec's latents of those frames; the sound's own latents
                vprefix = self.video_codec.encode(held_pixels).to(self.device, dtype)
                aprefix = held_audio
            if given_frames is not None:
                video = self.video_codec.encode(given_frames).to(self.device, dtype)
            if given_wave is not None:
                m = chunk.audio_latents * hop
                head = torch.nn.functional.pad(given_wave, (0, max(0, m - given_wave.shape[0])))[:m]
                audio = self.audio_codec.encode(head[None]).to(self.device, dtype)
            clean = CleanPrefix(0 if vprefix is None else vprefix.shape[2],
                                0 if aprefix is None else aprefix.shape[1])
            denoise = functools.partial(guided_velocity, self.model, cond=conds[chunk.prompt],
                                        uncond=uncond, guidance=guidance, clean=clean,
                                        cross_modal=cross_modal)
            if n > 1:
                log.info("chunk %d of %d: frames %d-%d, %r", chunk.index + 1, n, chunk.start,
                         chunk.start + chunk.frames - 1, chunk.prompt[:60])
            video, audio = sample(denoise, video, audio, sigmas, solver=solver or sc.solver,
                                  video_prefix=vprefix, audio_prefix=aprefix, held=held,
                                  callback=_chunk_callback(callback, chunk.index, n),
                                  disable=not progress,
                                  desc=f"chunk {chunk.index + 1} of {n}" if n > 1 else "denoising")
            # (a given modality is returned as given, not through its codec's round trip)
            pixels = (given_frames[0] if given_frames is not None  # (3, T, h, w)
                      else self.video_codec.decode(video.float())[0, :, :chunk.frames])
            wave = (given_wave if given_wave is not None
                    else self.audio_codec.decode(audio.float())[0])
            out.add_video(chunk.start, pixels.permute(1, 2, 3, 0).cpu(), chunk.overlap, chunk.held)
            out.add_audio(chunk.audio_start * hop, wave.cpu(), chunk.audio_overlap * hop,
                          chunk.audio_held * hop)
            if chunk.index + 1 < n:
                nxt = plan.chunks[chunk.index + 1]
                held_pixels, held_audio = _held_by(nxt, chunk, pixels, audio)
        return Clip(out.video, out.audio, media.fps, self.audio_codec.sample_rate)

    def _format(self, prompt: str, name: str) -> str:
        """A follow-on prompt, checked like the main one and converted to the model's format."""
        try:
            return parse_prompt(prompt).to_format(self.preset.prompt_format)
        except PromptError as e:
            raise PromptError(f"{name}: {e}") from None

    def _frames(self, duration: float | None) -> int:
        media = self.preset.media
        if duration is None:
            return media.frames
        if not 0 < duration <= MAX_DURATION:
            raise InputError(f"duration must be in (0, {MAX_DURATION:g}] seconds, got {duration:g}")
        st = media.video_stride[0]
        return st * max(1, round(duration * media.fps / st)) + 1

    def _encode(self, prompts: list[str]) -> list[Tensor]:
        text_len = self.preset.model.video.text_len
        out = []
        for p, emb in zip(prompts, self.text_encoder.encode(prompts)):
            if emb.shape[0] > text_len:
                log.warning("prompt has %d tokens; the model reads %d, so %d are dropped: %r",
                            emb.shape[0], text_len, emb.shape[0] - text_len, p[:60])
                emb = emb[:text_len]
            out.append(emb[None].to(self.device, self.model.video_model.patch_embedding_dtype))
        return out

    def _encode_image(self, image: Tensor | np.ndarray, h: int, w: int,
                      dtype: torch.dtype) -> Tensor:
        """uint8 [H, W, 3] -> clean first-frame latent [1, C, 1, h', w'] (center crop + resize)."""
        img = torch.as_tensor(np.asarray(image))
        if img.dim() != 3 or img.shape[2] != 3 or img.dtype != torch.uint8:
            raise InputError(f"image must be uint8 RGB [H, W, 3], got {img.dtype} {tuple(img.shape)}; "
                             "convert grey or RGBA pictures to RGB first (PIL: .convert('RGB'))")
        x = self._fit_frames(img[None], h, w)  # (1, 3, 1, h, w)
        return self.video_codec.encode(x).to(self.device, dtype)  # (1, C, 1, h', w')

    @staticmethod
    def _fit_frames(frames: Tensor | np.ndarray, h: int, w: int) -> Tensor:
        """uint8 [T, H, W, 3] -> float [1, 3, T, h, w] in [-1, 1] (center crop + resize)."""
        x = torch.as_tensor(np.asarray(frames))
        if x.dim() != 4 or x.shape[3] != 3 or x.dtype != torch.uint8:
            raise InputError(f"frames must be uint8 [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1  # (T, 3, H, W)
        ih, iw = x.shape[2:]
        if (ih, iw) != (h, w):
            scale = max(h / ih, w / iw)
            size = (max(h, round(ih * scale)), max(w, round(iw * scale)))
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True,
                                                align_corners=False)
            top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
            x = x[:, :, top:top + h, left:left + w]
        return x.permute(1, 0, 2, 3)[None]  # (1, 3, T, h, w)

    def _frames_within(self, available: int) -> int:
        """The longest valid clip (st*k + 1 frames) that fits in `available` frames; a given
        video or sound longer than `MAX_GIVEN_DURATION` is refused."""
        st, fps = self.preset.media.video_stride[0], self.preset.media.fps
        if available < st + 1:
            raise InputError(f"the input is {available} frames long; this model needs at least "
                             f"{st + 1} ({(st + 1) / fps:.2f} s)")
        if available > self._frames(MAX_GIVEN_DURATION):
            raise InputError(f"the input is {available / fps:.1f} s long; given clips are at most "
                             f"{MAX_GIVEN_DURATION:g} s: trim it first")
        return st * ((available - 1) // st) + 1

    @staticmethod
    def _check_conditioning(image: Any, from_video: Any, from_audio: Any,
                            duration: float | None) -> str | None:
        """Which modality is held (given), after refusing combinations that make no sense."""
        given = [n for n, x in (("image", image), ("from_video", from_video),
                                ("from_audio", from_audio)) if x is not None]
        if len(given) > 1:
            raise InputError(f"pass at most one of image, from_video, from_audio (got {', '.join(given)})")
        if given and given[0] != "image" and duration is not None:
            raise InputError(f"{given[0]} sets the clip's duration; do not pass duration as well")
        if from_audio is not None:
            wave = np.asarray(from_audio)
            if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.floating):
                raise InputError(f"from_audio must be a float waveform [N], got {wave.dtype} {wave.shape}")
        return {"from_video": "video", "from_audio": "audio"}.get(given[0]) if given else None
