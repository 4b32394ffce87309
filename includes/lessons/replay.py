"""A replayed stream: a table cut into files in event-time order, one file per micro-batch.

There is no live event source in a classroom, so the streaming lessons replay recorded history.
:class:`ReplayFiles` sorts a DataFrame by its event-time columns, cuts it into ``n_files``
chunks of (nearly) equal size and writes them as ``<prefix>-000.<ext>``, ``<prefix>-001.<ext>``...
into a folder that a ``readStream`` watches (:func:`replay_stream`, ``maxFilesPerTrigger=1``).

Each file is written under a hidden name and renamed into place, so a running query never
reads half a file, and gets the modification time ``BASE_MTIME + index``: the file source takes
new files in modification-time order, so the stream sees them in event-time order, one per
micro-batch, however fast or in whatever order they are written. Used by ML17 (ratings, CSV)
and ready for ML18 (posts, JSON lines).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

# Files get modification times BASE_MTIME + index seconds: seconds apart keeps them far inside
# the file source's maxFileAge (7 days before the newest file).
BASE_MTIME = 1_700_000_000
FORMATS = {"csv": "csv", "json": "jsonl"}


class ReplayFiles:
    """``df`` sorted by ``order_by``, cut into ``n_files`` chunks, held on the driver (pandas)."""

    def __init__(self, df, n_files: int, order_by: Sequence[str], prefix: str = "part", fmt: str = "csv"):
        import numpy as np

        if n_files < 1:
            raise ValueError(f"n_files must be >= 1, got {n_files}")
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
        if not order_by:
            raise ValueError("order_by needs at least one column (the event time first)")
        pdf = df.orderBy(*order_by).toPandas()
        if len(pdf) < n_files:
            raise ValueError(f"{len(pdf)} rows cannot fill {n_files} files")
        bounds = np.linspace(0, len(pdf), n_files + 1).round().astype(int)
        self.chunks = [pdf.iloc[start:stop].reset_index(drop=True) for start, stop in zip(bounds[:-1], bounds[1:])]
        self.prefix, self.fmt = prefix, fmt

    @property
    def n_files(self) -> int:
        return len(self.chunks)

    @property
    def sizes(self) -> list[int]:
        return [len(chunk) for chunk in self.chunks]

    def file_name(self, index: int) -> str:
        return f"{self.prefix}-{index:03d}.{FORMATS[self.fmt]}"

    def write(self, directory: os.PathLike | str, files: Iterable[int] | None = None) -> list[Path]:
        """Write the chunks numbered ``files`` (default: all) into ``directory``; returns the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for index in (range(self.n_files) if files is None else files):
            target = directory / self.file_name(index)
            staging = directory / f".{target.name}.tmp"
            if self.fmt == "csv":
                self.chunks[index].to_csv(staging, index=False)
            else:
                self.chunks[index].to_json(staging, orient="records", lines=True)
            os.utime(staging, (BASE_MTIME + index, BASE_MTIME + index))
            os.replace(staging, target)
            written.append(target)
        return written


def replay_stream(spark, directory: os.PathLike | str, schema: str, fmt: str = "csv", max_files_per_trigger: int = 1):
    """A streaming DataFrame of the replay files: explicit schema, ``max_files_per_trigger`` files per micro-batch."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
    reader = spark.readStream.schema(schema).option("maxFilesPerTrigger", max_files_per_trigger)
    if fmt == "csv":
        return reader.option("header", True).csv(str(directory))
    return reader.json(str(directory))
