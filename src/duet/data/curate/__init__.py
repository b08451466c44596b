"""Data curation: real videos → filtered, captioned clips → the shards `duet train` reads.

`curate(source, out_dir, CurateConfig(...))` is the entry point (`duet data curate` on the
command line); docs/curate.md describes the filters, the report and the numbers.
"""

from duet.data.curate.config import CurateConfig
from duet.data.curate.run import Summary, curate, list_inputs

__all__ = ["CurateConfig", "Summary", "curate", "list_inputs"]
