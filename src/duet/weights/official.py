"""The official layout: where each file of the Ovi download lives, the one table of codecs
that reads them, a DiT's model config from its header, and the key maps from the Wan and
umT5 releases' names to the networks that load them (and from the Wan DiT's to diffusers'
`WanTransformer3DModel`, which the video tower is held to).

The official download puts every component under one folder:

    DIR/Ovi/model.safetensors                         DiT, 720x720 5 s  (ovi-720x720-5s)
    DIR/Ovi/model_960x960.safetensors                 DiT, 960x960 5 s  (ovi-960x960-5s)
    DIR/Ovi/model_960x960_10s.safetensors             DiT, 960x960 10 s (ovi-960x960-10s)
    DIR/Wan2.2-TI2V-5B/Wan2.2_VAE.pth                 video VAE
    DIR/Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth  text encoder
    DIR/Wan2.2-TI2V-5B/google/umt5-xxl/               its tokenizer
    DIR/MMAudio/ext_weights/v1-16.pth                 audio VAE
    DIR/MMAudio/ext_weights/best_netG.pt              BigVGAN vocoder

Only the DiT file differs between the three presets. The DiT's keys are Duet's own
(`duet convert` needs no key map), so it is checked from its safetensors header alone: the
doctor never reads 23 GB to tell a user that a file is truncated. The header's shapes also
give a DiT's model config (`dit_preset`), so `duet convert` takes a checkpoint of any size.

Key maps are named `<component>_KEYS` (official name or pattern -> the loading network's
name) with one function `<component>_key(official_key)` each.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duet.errors import CheckpointError, ConfigError
from duet.weights.files import safetensors_header
from duet.weights.keys import key_problems

if TYPE_CHECKING:
    from duet.config import Modality, Preset, TowerConfig, TwinConfig

DIT_FILES: dict[str, str] = {
    "ovi-720x720-5s": "model.safetensors",
    "ovi-960x960-5s": "model_960x960.safetensors",
    "ovi-960x960-10s": "model_960x960_10s.safetensors",
}
WAN_DIR = "Wan2.2-TI2V-5B"
VAE_FILE = f"{WAN_DIR}/Wan2.2_VAE.pth"
T5_FILE = f"{WAN_DIR}/models_t5_umt5-xxl-enc-bf16.pth"
TOKENIZER_DIR = f"{WAN_DIR}/google/umt5-xxl"
AUDIO_VAE_FILE = "MMAudio/ext_weights/v1-16.pth"
VOCODER_FILE = "MMAudio/ext_weights/best_netG.pt"


@dataclass(frozen=True)
class OviFiles:
    """Paths of every component of one Ovi preset inside an official weights folder."""

    root: Path
    dit: Path
    vae: Path
    text: Path
    tokenizer: Path
    audio_vae: Path
    vocoder: Path

    @classmethod
    def at(cls, root: str | os.PathLike, preset: str) -> OviFiles:
        """Where the files should be (nothing is checked; see `locate`)."""
        root = Path(root)
        return cls(root, root / "Ovi" / DIT_FILES.get(preset, DIT_FILES["ovi-720x720-5s"]),
                   root / VAE_FILE, root / T5_FILE, root / TOKENIZER_DIR,
                   root / AUDIO_VAE_FILE, root / VOCODER_FILE)

    def items(self) -> list[tuple[str, Path]]:
        return [("dit", self.dit), ("video vae", self.vae), ("text encoder", self.text),
                ("tokenizer", self.tokenizer), ("audio vae", self.audio_vae),
                ("vocoder", self.vocoder)]

    def codecs(self, vae_tiling: bool = False) -> dict[str, dict[str, Any]]:
        """The preset `codecs` table that builds this folder's codecs and text encoder."""
        return official_codecs(str(self.vae), str(self.audio_vae), str(self.vocoder),
                               str(self.text.parent), vae_tiling)


def official_codecs(vae: str, audio_vae: str, vocoder: str, text_dir: str,
                    vae_tiling: bool = False) -> dict[str, dict[str, Any]]:
    """The preset `codecs` table for the official components at these paths (absolute, or
    relative to a bundle); `text_dir` holds the umT5 `.pth` and google/umt5-xxl."""
    video: dict[str, Any] = {"name": "wan2.2-vae", "path": vae}
    if vae_tiling:
        video["tiled"] = True
    return {"video": video,
            "audio": {"name": "mmaudio-16k", "vae_path": audio_vae, "vocoder_path": vocoder},
            "text": {"name": "umt5-xxl", "path": text_dir}}


def locate(root: str | os.PathLike, preset: str) -> OviFiles:
    """The files of `preset` under `root`; raises CheckpointError listing every missing one."""
    root = Path(root)
    if not root.is_dir():
        raise CheckpointError(f"weights folder {str(root)!r} does not exist; pass the folder the "
                              "official Ovi download wrote (it holds Ovi/, Wan2.2-TI2V-5B/, MMAudio/)")
    files = OviFiles.at(root, preset)
    missing = [f"{name}: {path.relative_to(root)}" for name, path in files.items()
               if not path.exists()]
    if missing:
        raise CheckpointError(
            f"weights folder {str(root)!r} lacks {len(missing)} file(s) that {preset} needs:\n  "
            + "\n  ".join(missing) + "\n`duet doctor --weights DIR` lists what is present")
    return files


def check_dit(path: str | os.PathLike, preset: str | Preset) -> str:
    """Check an Ovi DiT file's keys and shapes against `preset` from its header alone."""
    from duet.model import TwinModel

    p = ovi_preset(preset)
    header = safetensors_header(path)
    want = TwinModel.from_config(p.model, device="meta").state_dict()
    problems = key_problems(want, {k: shape for k, (_, shape) in header.items()})
    if problems:
        raise CheckpointError(f"{path} is not an {p.name} DiT: {problems}")
    dtypes = sorted({d for d, _ in header.values()})
    return f"{len(header)} tensors ({', '.join(dtypes)}), shapes match {p.name}"


# ---- a DiT's model config from its header ------------------------------------------------
WAN_HEAD_DIM = 128  # Wan's and Ovi's heads: 3072 / 24; the weights do not record the count
OVI_TEXT_LEN = 512  # text rows Ovi pads its umT5 context to; not in the weights either


def _shape(shapes: dict[str, tuple[int, ...]], key: str, rank: int) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(f"the checkpoint has no {key}: it is not an Ovi-format DiT "
                              "(video_model.* and audio_model.* towers)")
    if len(shapes[key]) != rank:
        raise CheckpointError(f"{key} has shape {shapes[key]}, not {rank}-D as in an Ovi DiT")
    return shapes[key]


def tower_from_shapes(shapes: dict[str, tuple[int, ...]], modality: Modality,
                      num_heads: int | None = None, text_len: int = OVI_TEXT_LEN,
                      rope_time_scale: float = 1.0) -> TowerConfig:
    """The `modality` tower whose state dict has these shapes. Widths, depth, channels,
    patch and flags are in the shapes (a flag's norm is present or not); the head count,
    text length, eps and RoPE factor are not, so they are arguments (eps keeps Ovi's 1e-6)."""
    from duet.config import TowerConfig

    p = f"{modality}_model."
    dim, freq_dim = _shape(shapes, p + "time_embedding.0.weight", 2)
    text_dim = _shape(shapes, p + "text_embedding.0.weight", 2)[1]
    ffn_dim = _shape(shapes, p + "blocks.0.ffn.0.weight", 2)[0]
    layers = {k.split(".")[2] for k in shapes if k.startswith(p + "blocks.")}
    head_out = _shape(shapes, p + "head.head.weight", 2)[0]
    if modality == "video":
        _, in_dim, *patch = _shape(shapes, p + "patch_embedding.weight", 5)
        shaped: dict[str, Any] = {"patch_size": tuple(patch), "out_dim": head_out // math.prod(patch)}
    else:
        _, in_dim, kernel = _shape(shapes, p + "patch_embedding.0.weight", 3)
        shaped = {"patch_size": (1,), "out_dim": head_out, "audio_stem_kernel": kernel,
                  "rope_time_scale": rope_time_scale}
    if num_heads is None:
        if dim % WAN_HEAD_DIM:
            raise ConfigError(f"the weights do not record the head count and width {dim} is not "
                              f"a multiple of Wan's {WAN_HEAD_DIM}-wide heads: pass num_heads "
                              "(--num-heads)")
        num_heads = dim // WAN_HEAD_DIM
    block = p + "blocks.0."
    return TowerConfig(
        modality, dim=dim, ffn_dim=ffn_dim, freq_dim=freq_dim, num_heads=num_heads,
        num_layers=len(layers), in_dim=in_dim, text_len=text_len, text_dim=text_dim,
        qk_norm=block + "self_attn.norm_q.weight" in shapes,
        cross_attn_norm=block + "norm3.weight" in shapes,
        cross_modal=block + "cross_attn.k_fusion.weight" in shapes, **shaped)


def twin_from_header(path: str | os.PathLike, num_heads: int | None = None,
                     text_len: int = OVI_TEXT_LEN) -> TwinConfig:
    """Both towers of an Ovi-format DiT file, read from its safetensors header alone; the
    audio RoPE factor is Ovi's (0.19676: 24 fps video, 31.25 Hz audio latents)."""
    from duet.config import TwinConfig
    from duet.presets import get_preset

    shapes = {k: shape for k, (_, shape) in safetensors_header(path).items()}
    scale = get_preset("ovi-720x720-5s").model.audio.rope_time_scale
    return TwinConfig(tower_from_shapes(shapes, "video", num_heads, text_len),
                      tower_from_shapes(shapes, "audio", num_heads, text_len, scale))


def dit_preset(path: str | os.PathLike, preset: str | None = None, num_heads: int | None = None,
               text_len: int | None = None) -> Preset:
    """The preset of an Ovi-format DiT file, checked against its header. With `preset`, that
    preset; without, the model read from the shapes, under the name of the preset with that
    model if there is one (the 720x720 one for the real size), else "custom" with Ovi's
    720x720 5 s media, sampler and codecs."""
    from duet.presets import PRESETS, get_preset

    if preset is not None:
        if num_heads is not None or text_len is not None:
            raise ConfigError(f"preset {preset!r} fixes the head count and text length: pass "
                              "either a preset or num_heads/text_len for a model read from the file")
        p = get_preset(preset)
    else:
        model = twin_from_header(path, num_heads, OVI_TEXT_LEN if text_len is None else text_len)
        p = next((q for q in PRESETS.values() if q.model == model),
                 dataclasses.replace(get_preset("ovi-720x720-5s"), name="custom", model=model))
    check_dit(path, p)
    return p


def ovi_preset(preset: str | Preset) -> Preset:
    """An Ovi preset by name (or a Preset object, e.g. a test's tiny variant), checked."""
    from duet.config import Preset
    from duet.presets import get_preset

    if isinstance(preset, Preset):
        return preset
    if preset not in DIT_FILES:
        raise ConfigError(f"an official weights folder holds the Ovi presets {sorted(DIT_FILES)}, "
                          f"not {preset!r}: pass --model with one of them")
    return get_preset(preset)


# ---- key maps ------------------------------------------------------------------------------
# Official (Wan-Video/Wan2.2 wan/modules/vae2_2.py) -> diffusers (AutoencoderKLWan) key names,
# applied in order, each at most once. Both hold the same layers; they differ in nesting:
# the official code uses positional nn.Sequential children where diffusers names them.
WAN_VAE_KEYS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    # 1x1 convolutions on either side of the latent
    (r"^conv1\.", "quant_conv."),
    (r"^conv2\.", "post_quant_conv."),
    # stems; head = Sequential(RMS_norm, SiLU, CausalConv3d)
    (r"^(encoder|decoder)\.conv1\.", r"\1.conv_in."),
    (r"^(encoder|decoder)\.head\.0\.", r"\1.norm_out."),
    (r"^(encoder|decoder)\.head\.2\.", r"\1.conv_out."),
    # middle = Sequential(ResidualBlock, AttentionBlock, ResidualBlock)
    (r"^(encoder|decoder)\.middle\.0\.", r"\1.mid_block.resnets.0."),
    (r"^(encoder|decoder)\.middle\.1\.", r"\1.mid_block.attentions.0."),
    (r"^(encoder|decoder)\.middle\.2\.", r"\1.mid_block.resnets.1."),
    # a stage = Sequential(ResidualBlock..., Resample): the Resample is the last child
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.\d+\.(resample|time_conv)\.",
     r"encoder.down_blocks.\1.downsampler.\2."),
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.\d+\.(resample|time_conv)\.",
     r"decoder.up_blocks.\1.upsampler.\2."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.(\d+)\.", r"decoder.up_blocks.\1.resnets.\2."),
    # ResidualBlock.residual = Sequential(norm, SiLU, conv, norm, SiLU, Dropout, conv)
    (r"\.residual\.0\.", ".norm1."),
    (r"\.residual\.2\.", ".conv1."),
    (r"\.residual\.3\.", ".norm2."),
    (r"\.residual\.6\.", ".conv2."),
    (r"\.shortcut\.", ".conv_shortcut."),
))


def wan_vae_key(key: str) -> str:
    """The diffusers name of an official Wan2.2 VAE parameter. Keys that no rule matches come
    back unchanged, so that loading reports them as unexpected."""
    for pattern, replacement in WAN_VAE_KEYS:
        key = pattern.sub(replacement, key, count=1)
    return key


# Official Wan DiT name -> diffusers `WanTransformer3DModel` name (one video tower; Ovi's
# fusion layers have no counterpart there). Used to check the tower against diffusers'
# implementation (tests/model/test_diffusers_wan.py, benchmarks/forward_vs_diffusers.py).
WAN_DIT_KEYS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    # Sequential(Linear, activation, Linear) -> linear_1, linear_2
    (r"^(text|time)_embedding\.0\.", r"condition_embedder.\1_embedder.linear_1."),
    (r"^(text|time)_embedding\.2\.", r"condition_embedder.\1_embedder.linear_2."),
    (r"^time_projection\.1\.", "condition_embedder.time_proj."),
    (r"\.self_attn\.", ".attn1."),
    (r"\.cross_attn\.", ".attn2."),
    (r"\.(attn[12])\.o\.", r".\1.to_out.0."),
    (r"\.(attn[12])\.([qkv])\.", r".\1.to_\2."),
    (r"\.norm3\.", ".norm2."),  # the norm before the text cross-attention
    (r"\.ffn\.0\.", ".ffn.net.0.proj."),
    (r"\.ffn\.2\.", ".ffn.net.2."),
    (r"\.modulation\.modulation$", ".scale_shift_table"),
    (r"^head\.modulation$", "scale_shift_table"),
    (r"^head\.head\.", "proj_out."),
))


def wan_dit_key(key: str) -> str:
    """The diffusers name of an official Wan DiT (video tower) parameter; keys that no rule
    matches come back unchanged, so that loading reports them."""
    for pattern, replacement in WAN_DIT_KEYS:
        key = pattern.sub(replacement, key, count=1)
    return key


# Per-block Wan suffix -> UMT5EncoderModel suffix (under "encoder.block.N.").
UMT5_BLOCK_KEYS: dict[str, str] = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",  # Linear then GELU in Wan
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",  # the linear branch
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
UMT5_TOP_KEYS: dict[str, str] = {
    "token_embedding.weight": "shared.weight",  # encoder.embed_tokens is tied to it
    "norm.weight": "encoder.final_layer_norm.weight",
}
UMT5_BLOCK_INDEX = re.compile(r"blocks\.(\d+)\.")


def umt5_key(wan_key: str) -> str:
    """The `UMT5EncoderModel` name of one Wan T5-encoder key (KeyError if it has none)."""
    if wan_key in UMT5_TOP_KEYS:
        return UMT5_TOP_KEYS[wan_key]
    m = UMT5_BLOCK_INDEX.match(wan_key)
    if m is None:
        raise KeyError(wan_key)
    return f"encoder.block.{m[1]}.{UMT5_BLOCK_KEYS[wan_key[m.end():]]}"
