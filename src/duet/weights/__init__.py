"""Weights on disk, in one place:

    files.py     safetensors and `.pth` files: atomic writes, checked reads, headers
    keys.py      the one key/shape check (`key_problems`) and strict loading
    bundle.py    Duet bundles (config.json + model.safetensors), and bundles made from the
                 official download
    official.py  the official Ovi/Wan/MMAudio layout, its codec table and key maps
    inflate.py   a video tower's patch embedding and head inflated to a longer temporal patch

Training checkpoints live with the trainer (`duet.train.checkpoint`) and use `keys.py`;
`duet doctor`'s checks of an official folder load each file with its codec's loader, so
they live above the codecs (`duet.doctor`).
"""

from duet.weights.bundle import (BUNDLE_CONFIG, BUNDLE_WEIGHTS, FORMAT, PATH_OPTIONS,
                                 bundle_codec_files, codec_files, convert_bundle, convert_dit,
                                 preset_or_bundle, read_config, resolve_codec_paths, write_bundle,
                                 write_config)
from duet.weights.files import (load_weights, read_torch_file, safetensors_header, save_weights,
                                tensor_dict)
from duet.weights.keys import check_state_dict, key_problems, load_into
from duet.weights.official import (AUDIO_VAE_FILE, DIT_FILES, OVI_TEXT_LEN, T5_FILE, TOKENIZER_DIR,
                                   UMT5_BLOCK_INDEX, UMT5_BLOCK_KEYS, UMT5_TOP_KEYS, VAE_FILE,
                                   VOCODER_FILE, WAN_DIR, WAN_DIT_KEYS, WAN_HEAD_DIM, WAN_VAE_KEYS,
                                   OviFiles,
                                   check_dit, dit_preset, locate, official_codecs, ovi_preset,
                                   tower_from_shapes, twin_from_header, umt5_key, wan_dit_key,
                                   wan_vae_key)

__all__ = [
    "AUDIO_VAE_FILE", "BUNDLE_CONFIG", "BUNDLE_WEIGHTS", "DIT_FILES", "FORMAT", "OVI_TEXT_LEN",
    "PATH_OPTIONS", "T5_FILE", "TOKENIZER_DIR", "UMT5_BLOCK_INDEX", "UMT5_BLOCK_KEYS",
    "UMT5_TOP_KEYS", "VAE_FILE", "VOCODER_FILE", "WAN_DIR", "WAN_DIT_KEYS", "WAN_HEAD_DIM",
    "WAN_VAE_KEYS",
    "OviFiles", "bundle_codec_files", "check_dit", "codec_files", "check_state_dict", "convert_bundle", "convert_dit", "dit_preset", "key_problems",
    "load_into", "load_weights", "locate", "official_codecs", "ovi_preset", "preset_or_bundle",
    "read_config", "read_torch_file", "resolve_codec_paths", "safetensors_header", "save_weights",
    "tensor_dict", "tower_from_shapes", "twin_from_header", "umt5_key", "wan_dit_key", "wan_vae_key",
    "write_bundle", "write_config",
]
