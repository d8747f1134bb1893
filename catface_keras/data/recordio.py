"""MXNet RecordIO (`.rec` + `.idx`) face datasets, read without mxnet.

insightface ships its training sets (MS1MV2, MS1MV3, Glint360K) as a `.rec`
file of records and an `.idx` text file of `key<TAB>byte offset` lines.

A record at an offset is a little-endian uint32 magic `0xced7230a`, a
uint32 `lrec` (bits 29-31: `cflag`, bits 0-28: length) and `length` payload
bytes zero-padded to a multiple of 4. The writer (dmlc-core) splits a record
wherever the magic number occurs in the data: `cflag` 1, 2, 3 mark the
start, middle and end pieces, and the reader re-inserts the 4 magic bytes
between them (`cflag` 0 is a whole record).

A payload starts with a 24-byte header `<IfQQ` = (flag, label, id, id2);
when `flag > 0` the next `4 * flag` bytes are float32 labels (label[0] is
the class). The rest is the encoded image (written through OpenCV from RGB
arrays, so the JPEG bytes decode to RGB with standard decoders;
`decode_image` returns RGB).

insightface layout: record 0 has flag 2 and labels (first identity record,
end); images are records 1 .. label0[0] - 1 and there are
label0[1] - label0[0] classes. A `.rec` without that header is read as
images only, its classes counted from a scan of every record's label.

The `.rec` is memory-mapped: any record is read in place, from any thread.
"""

import dataclasses
import mmap
import pathlib
import struct

import numpy as np

from catface_keras.data.attribute_csv import read_attribute_csv
from catface_keras.soft_biometrics import MISSING_LABEL

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_PREFIX = struct.Struct("<II")
HEADER = struct.Struct("<IfQQ")
_LENGTH_BITS = 29
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
WHOLE, START, MIDDLE, END = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class RecordHeader:
    """The `<IfQQ` header of a payload.

    Attributes:
        flag: the number of float32 labels after the header (0: one, in `label`).
        label: `(max(flag, 1),)` float32 labels.
        id, id2: record ids.
    """

    flag: int
    label: np.ndarray
    id: int
    id2: int


def unpack_record(payload):
    """Splits a payload into `(RecordHeader, the rest: the encoded image)`."""
    if len(payload) < HEADER.size:
        raise ValueError(
            f"a record payload needs a {HEADER.size}-byte header, found {len(payload)} bytes"
        )
    flag, label, record_id, record_id2 = HEADER.unpack_from(payload)
    start = HEADER.size
    if flag > 0:
        if len(payload) < start + 4 * flag:
            raise ValueError(f"the header announces {flag} labels, but the payload is too short")
        labels = np.frombuffer(payload, np.float32, count=flag, offset=start).copy()
        start += 4 * flag
    else:
        labels = np.array([label], np.float32)
    return RecordHeader(flag, labels, record_id, record_id2), bytes(payload[start:])


def read_index(path):
    """Parses an `.idx` file: `(keys, offsets)`, two `(N,)` int64 arrays in file order.

    Raises:
        ValueError: a line that is not `key<TAB>offset` (file and line named).
    """
    try:
        text = pathlib.Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot read RecordIO index {path}: {error}") from error
    lines = text.splitlines()
    tokens = text.split()
    if len(tokens) == 2 * len(lines):
        try:
            pairs = np.array(tokens, dtype=np.int64).reshape(-1, 2)
        except (ValueError, OverflowError):
            pairs = None
        if pairs is not None and (pairs[:, 1] >= 0).all():
            return pairs[:, 0], pairs[:, 1]
    # Something is wrong: find the first bad line to name it.
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) != 2 or not all(field.isdigit() for field in fields):
            raise ValueError(f"{path}:{number}: expected 'key<TAB>offset'. Received: {line!r}")
    raise ValueError(f"{path}: malformed index")


class RecordIOReader:
    """Random access to the records of a `.rec` file by key, through its `.idx`.

    Args:
        rec_path: the `.rec` file.
        idx_path: its index (default: `rec_path` with the suffix `.idx`).

    Example:
    >>> with RecordIOReader("faces_emore/train.rec") as reader:
    ...     header, image = unpack_record(reader.read(1))
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = pathlib.Path(rec_path)
        self.idx_path = pathlib.Path(idx_path) if idx_path else self.rec_path.with_suffix(".idx")
        keys, offsets = read_index(self.idx_path)
        order = np.argsort(keys, kind="stable")
        self._keys, self._offsets = keys[order], offsets[order]
        repeated = np.flatnonzero(self._keys[1:] == self._keys[:-1])
        if len(repeated):
            key = self._keys[repeated[0]]
            lines = np.flatnonzero(keys == key)[:2] + 1
            raise ValueError(f"{self.idx_path}:{lines[1]}: key {key} is also on line {lines[0]}")
        try:
            with open(self.rec_path, "rb") as handle:
                self._size = handle.seek(0, 2)
                self._data = b""
                if self._size:
                    self._data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as error:
            raise ValueError(
                f"Cannot read RecordIO file {self.rec_path}: {error.strerror}"
            ) from error
        if len(self._offsets) and self._offsets.max() >= self._size:
            line = int(np.flatnonzero(offsets >= self._size)[0]) + 1
            raise ValueError(
                f"{self.idx_path}:{line}: offset {offsets[line - 1]} is past the end of "
                f"{self.rec_path} ({self._size} bytes)"
            )

    @property
    def keys(self):
        """`(N,)` int64 keys, sorted."""
        return self._keys

    def __len__(self):
        return len(self._keys)

    def __contains__(self, key):
        position = np.searchsorted(self._keys, key)
        return position < len(self._keys) and self._keys[position] == key

    def offset(self, key):
        position = np.searchsorted(self._keys, key)
        if position == len(self._keys) or self._keys[position] != key:
            raise KeyError(f"{self.idx_path} has no key {key}")
        return int(self._offsets[position])

    def read(self, key):
        """The payload of record `key` (split pieces joined), as bytes."""
        return self.read_at(self.offset(key))

    def read_at(self, offset):
        """The payload of the record starting at byte `offset`."""
        pieces = []
        position = offset
        while True:
            if position + _PREFIX.size > self._size:
                raise ValueError(
                    f"{self.rec_path}: the record at byte offset {offset} runs past the end "
                    "of the file"
                )
            magic, lrec = _PREFIX.unpack_from(self._data, position)
            if magic != MAGIC:
                raise ValueError(
                    f"{self.rec_path}: no record at byte offset {position} (found 0x{magic:08x}, "
                    f"expected the magic number 0x{MAGIC:08x}); is {self.idx_path} the index of "
                    "this file?"
                )
            cflag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
            start = position + _PREFIX.size
            if start + length > self._size:
                raise ValueError(
                    f"{self.rec_path}: the record at byte offset {position} is truncated "
                    f"({length} bytes announced)"
                )
            expected = (WHOLE, START) if not pieces else (MIDDLE, END)
            if cflag not in expected:
                raise ValueError(
                    f"{self.rec_path}: unexpected piece (cflag {cflag}) at byte offset {position} "
                    f"in the record at offset {offset}"
                )
            pieces.append(self._data[start : start + length])
            position = start + ((length + 3) & ~3)
            if cflag in (WHOLE, END):
                return _MAGIC_BYTES.join(pieces)

    def check_records(self, keys, chunk=1 << 20):
        """Checks, from their prefixes alone, that the records `keys` are whole.

        Each record must start with the magic number, be a whole record or the first
        piece of one, and end before the next record of the index begins (and before
        the end of the file); split records are followed piece by piece. Training
        would otherwise meet a truncated record mid-epoch.

        Raises:
            ValueError: naming the file, the record's key and its byte offset.
        """
        keys = np.asarray(keys, np.int64)
        data = np.frombuffer(self._data, np.uint8) if self._size else np.zeros(0, np.uint8)
        starts = np.sort(self._offsets)
        for first in range(0, len(keys), chunk):
            part = keys[first : first + chunk]
            offsets = self._offsets[np.searchsorted(self._keys, part)]
            inside = offsets + _PREFIX.size <= self._size
            rows = np.zeros((len(part), _PREFIX.size), np.uint8)
            rows[inside] = data[offsets[inside, None] + np.arange(_PREFIX.size)]
            magic = rows[:, 0:4].copy().view("<u4")[:, 0]
            lrec = rows[:, 4:8].copy().view("<u4")[:, 0].astype(np.int64)
            cflag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
            following = np.searchsorted(starts, offsets, side="right")
            limit = np.where(
                following < len(starts), starts[np.minimum(following, len(starts) - 1)],
                self._size,
            )
            whole = cflag == WHOLE
            bad = ~inside | (magic != MAGIC) | ~np.isin(cflag, (WHOLE, START))
            bad |= whole & (offsets + _PREFIX.size + length > limit)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                key, offset = int(part[row]), int(offsets[row])
                if not inside[row] or magic[row] != MAGIC or not whole[row] and cflag[row] != START:
                    self.read_at(offset)  # raises, saying what is found there
                raise ValueError(
                    f"{self.rec_path}: record {key} (at byte offset {offset}) is truncated: it "
                    f"announces {int(length[row])} bytes, but "
                    + ("the file ends" if limit[row] == self._size else "the next record starts")
                    + f" at byte {int(limit[row])}. The file is damaged."
                )
            for row in np.flatnonzero(cflag == START):
                try:
                    self.read_at(int(offsets[row]))
                except ValueError as error:
                    raise ValueError(f"record {int(part[row])}: {error}") from None

    def header_labels(self, keys, chunk=1 << 20):
        """`(N,)` float64 class labels (label[0]) of the records `keys`, reading only headers.

        The headers are gathered straight from the memory map; a record whose first piece
        is too short to hold its header (the magic number inside it) is read whole.
        """
        keys = np.asarray(keys, np.int64)
        labels = np.empty(len(keys), np.float64)
        data = np.frombuffer(self._data, np.uint8) if self._size else np.zeros(0, np.uint8)
        need = _PREFIX.size + HEADER.size + 4
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            offsets = self._offsets[np.searchsorted(self._keys, part)]
            inside = offsets + need <= self._size
            rows = np.zeros((len(part), need), np.uint8)
            rows[inside] = data[offsets[inside, None] + np.arange(need)]
            magic = rows[:, 0:4].copy().view("<u4")[:, 0]
            lrec = rows[:, 4:8].copy().view("<u4")[:, 0]
            flag = rows[:, 8:12].copy().view("<u4")[:, 0]
            label = rows[:, 12:16].copy().view("<f4")[:, 0].astype(np.float64)
            first = rows[:, 32:36].copy().view("<f4")[:, 0].astype(np.float64)
            length = lrec & _LENGTH_MASK
            simple = (
                inside
                & (magic == MAGIC)
                & np.isin(lrec >> _LENGTH_BITS, (WHOLE, START))
                & (length >= HEADER.size + 4)
            )
            labels[start : start + len(part)] = np.where(flag > 0, first, label)
            for row in np.flatnonzero(~simple):
                header, _ = unpack_record(self.read(int(part[row])))
                labels[start + row] = header.label[0]
        return labels

    def close(self):
        if isinstance(self._data, mmap.mmap):
            self._data.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class InsightFaceRecords:
    """An insightface training set (`train.rec` + `train.idx`) as a random-access face source.

    Args:
        rec_path: the `.rec` file (the `.idx` next to it).
        attributes_csv: optional per-class CSV `identity,Male,...` (the
            identity is the class label in the `.rec`); classes without a
            row, and every class without a CSV, have unknown (-1) labels.
            insightface's sets carry no attributes: MS1MV2's gender labels
            must come from such a file.
        attribute_names: the attributes to read, in label order.
    """

    def __init__(self, rec_path, attributes_csv=None, attribute_names=("Male",)):
        self.reader = RecordIOReader(rec_path)
        self.attribute_names = tuple(attribute_names)
        header, rest = unpack_record(self.reader.read(0)) if 0 in self.reader else (None, None)
        # Record 0 of the insightface layout is a header with two labels and no image.
        if header is not None and header.flag >= 2 and not rest:
            first_identity, end = int(header.label[0]), int(header.label[1])
            self.image_keys = np.arange(1, first_identity, dtype=np.int64)
            self.num_classes = end - first_identity
            missing = ~np.isin(self.image_keys, self.reader.keys)
            if missing.any():
                raise ValueError(
                    f"{self.reader.idx_path}: record 0 announces images 1..{first_identity - 1}, "
                    f"but key {int(self.image_keys[missing][0])} is not in the index"
                )
        else:
            self.image_keys = self.reader.keys
            self.num_classes = None
        if len(self.image_keys) == 0:
            raise ValueError(f"{rec_path} holds no face images")
        self.reader.check_records(self.image_keys)
        self.num_classes = self._check_labels(self.num_classes)
        self.class_attributes = np.full(
            (self.num_classes, len(self.attribute_names)), MISSING_LABEL, np.int32
        )
        if attributes_csv is not None:
            self._read_class_attributes(attributes_csv)

    def _check_labels(self, num_classes):
        """Checks every image record's class label; returns the number of classes.

        With the header record the labels must lie in its `[0, classes)`; without it the
        classes are `0..max label`, and every one of them must have an image, so that one
        stray label cannot add empty classes.
        """
        labels = self.reader.header_labels(self.image_keys)
        rec = self.reader.rec_path

        raw = labels

        def refuse(row, why):
            key = int(self.image_keys[row])
            raise ValueError(f"{rec}: record {key} has label {float(raw[row]):g}: {why}")

        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0))
        if len(bad):
            refuse(bad[0], "a class label must be a non-negative integer")
        labels = labels.astype(np.int64)
        if num_classes is not None:
            outside = np.flatnonzero(labels >= num_classes)
            if len(outside):
                refuse(outside[0], f"outside the {num_classes} classes that record 0 announces")
            return num_classes
        present = np.zeros(labels.max() + 1, bool)
        present[labels] = True
        if not present.all():
            empty = int(np.flatnonzero(~present)[0])
            refuse(
                int(np.argmax(labels)),
                f"the largest label makes {labels.max() + 1} classes, but "
                f"{int((~present).sum())} of them (the first: {empty}) have no image; labels "
                "must number the classes 0..K-1 (is this one a stray?)",
            )
        if labels.max() + 1 < 1:
            raise ValueError(f"{rec} holds no face images")
        return int(labels.max()) + 1

    def _read_class_attributes(self, path):
        rows = read_attribute_csv(path, "identity", self.attribute_names)
        for text, (line, values) in rows.items():
            if not text.isdigit() or int(text) >= self.num_classes:
                raise ValueError(
                    f"{path}:{line}: identity must be a class label in [0, {self.num_classes}). "
                    f"Received: {text!r}"
                )
            self.class_attributes[int(text)] = values

    def __len__(self):
        return len(self.image_keys)

    def example(self, index):
        """`(name, encoded bytes, identity, attributes (A,))` of image `index`."""
        key = int(self.image_keys[index])
        header, encoded = unpack_record(self.reader.read(key))
        identity = int(header.label[0])
        if not 0 <= identity < self.num_classes:
            raise ValueError(
                f"{self.reader.rec_path}: record {key} has label {header.label[0]}, outside "
                f"the {self.num_classes} classes"
            )
        return f"{self.reader.rec_path}#{key}", encoded, identity, self.class_attributes[identity]


# MS1MV2 and the other insightface sets: the paper uses gender only (docs/PAPER.md section 7).
RECORDIO_ATTRIBUTES = ("Male",)


class RecordIOSource:
    """The insightface RecordIO face source (`catface_keras.data.registry`)."""

    def training_faces(self, data, attribute_names):
        return InsightFaceRecords(data.path, data.attributes_csv, attribute_names), None

    def default_attributes(self, path):
        return RECORDIO_ATTRIBUTES

    def conversion_sets(self, path, attributes_csv, attribute_names):
        return [("", InsightFaceRecords(path, attributes_csv, attribute_names))]


SOURCE = RecordIOSource()
