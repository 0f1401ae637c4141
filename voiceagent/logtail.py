"""The last lines of a (possibly large) log file, read from its end.

Reading the whole file to keep the last N lines costs time in proportion to the
file (hundreds of milliseconds for a rotated-size log); reading fixed-size
blocks backwards from the end until N line breaks are seen costs time in
proportion to N only.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BLOCK_SIZE = 64 * 1024
# A file whose last lines are absurdly long (no line break in this many bytes)
# must not make one request read the whole file.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def tail_lines(
    path: str | os.PathLike[str],
    n: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[str]:
    """Return the last ``n`` lines of the file at ``path``, oldest first, without line breaks.

    A missing file has no lines. Bytes are joined before decoding, so a UTF-8
    character split across two blocks comes out whole; undecodable bytes become
    U+FFFD. At most ``max_bytes`` (rounded up to whole blocks) are read; a line
    cut by that limit is left out.
    """
    if n <= 0:
        return []
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    try:
        handle = open(Path(path), "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        blocks: list[bytes] = []
        breaks = 0
        # N complete lines need N+1 line breaks in view (the one before the
        # oldest line and the one ending each line), counting a final newline.
        while position > 0 and breaks <= n and end - position < max_bytes:
            size = min(block_size, position)
            position -= size
            handle.seek(position)
            block = handle.read(size)
            blocks.append(block)
            breaks += block.count(b"\n")
    data = b"".join(reversed(blocks))
    if not data:
        return []
    if data.endswith(b"\n"):
        # The file's last line is terminated; no empty line follows it.
        data = data[:-1]
    pieces = data.split(b"\n")
    if position > 0:
        # We started mid-file: the first piece may be the tail of a longer line.
        pieces = pieces[1:]
    return [piece.removesuffix(b"\r").decode("utf-8", errors="replace") for piece in pieces[-n:]]
