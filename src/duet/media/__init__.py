"""Media files: MP4 (video + sound, `mp4`), WAV and other sound files (`wav`), frames as
PNG previews and at other rates (`frames`), clips by extension (`clips`). Every writer is
atomic, and the MP4 writer and reader keep audio sample n at n / sample_rate on the
timeline where frame k is at k / fps (see `duet.media.mp4`)."""

from duet.media.checks import AAC_SAMPLE_RATES
from duet.media.clips import CLIP_FORMATS, check_clip_path, check_length, write_clip
from duet.media.frames import frame_grid, retime_frames, save_png
from duet.media.mp4 import Mp4Contents, read_mp4, write_mp4
from duet.media.wav import read_audio, read_wav, write_wav

__all__ = [
    "AAC_SAMPLE_RATES",
    "CLIP_FORMATS",
    "Mp4Contents",
    "check_clip_path",
    "check_length",
    "frame_grid",
    "read_audio",
    "read_mp4",
    "read_wav",
    "retime_frames",
    "save_png",
    "write_clip",
    "write_mp4",
    "write_wav",
]
