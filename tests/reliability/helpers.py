"""Helpers for the reliability tests: what the user had, hashed, and hostile inputs built small.

Every test here asserts two things: the message the user sees, and that nothing the user had
was lost (`snapshot` before, the same `snapshot` after).
"""

import hashlib
import pathlib
import struct
import zlib




def snapshot(root):
    """`{relative path: sha256}` of every file under `root` (hidden ones included)."""
    root = pathlib.Path(root)
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def leftovers(root):
    """Names under `root` that a failed write would leave: temporaries and partial files."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in pathlib.Path(root).rglob("*")
        if ".partial" in path.name
    )


def png_bomb(width=20000, height=20000):
    """A few hundred bytes of PNG whose header claims `width` x `height` RGB pixels.

    The IDAT holds a handful of compressed rows only: a decoder would allocate the whole
    image before finding out, a header check refuses it first.
    """

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * width) * 4, 9)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def fake_finished_run(out, config_text="data:\n  source: synthetic\n"):
    """A directory that looks like a finished stage-1 + stage-2 run (files with content)."""
    out = pathlib.Path(out)
    for name, content in {
        "stage1.keras": b"stage-1 model",
        "stage2.keras": b"stage-2 model",
        "metrics.json": b'{"stage1": {}, "stage2": {}}',
        "config.yaml": config_text.encode(),
        "checkpoints/epoch_001.keras": b"checkpoint 1",
        "checkpoints/stage2_epoch_001.keras": b"stage-2 checkpoint 1",
        "logs/train/events": b"tensorboard",
        "notes.txt": b"the user's own notes",
    }.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return out
