"""Small on-disk face datasets for the reader tests: images, CelebA files, RecordIO.

The RecordIO writer follows dmlc-core's: a record is split wherever the
magic number occurs at a 4-byte-aligned position of the data (the magic is
dropped and the reader re-inserts it), pieces flagged 1 (start), 2 (middle)
and 3 (end), each zero-padded to a multiple of 4 bytes.
"""

import struct

import cv2
import numpy as np

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)


def face_image(seed, height=40, width=40):
    """A random smooth RGB uint8 image (JPEG keeps it close to the original)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def encode(rgb, suffix=".png"):
    """RGB -> encoded bytes (through OpenCV, which expects BGR)."""
    ok, data = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def write_image(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(rgb, path.suffix))
    return path


def write_celeba(root, identities, partitions, attribute_rows, image_dir="img_align_celeba",
                 size=(49, 40)):
    """A CelebA-layout root: `len(identities)` JPEGs (H, W = size) and the three text files.

    `attribute_rows[i]` is a dict of the attributes set to 1 for image i
    (the other 38 of the 40 names are -1). Returns the file names.
    """
    names = [f"{index + 1:06d}.jpg" for index in range(len(identities))]
    for index, name in enumerate(names):
        write_image(root / image_dir / name, face_image(index, *size))
    header = CELEBA_ATTRIBUTES
    attribute_lines = [str(len(names)), " ".join(header)]
    for name, row in zip(names, attribute_rows):
        values = ["1" if attribute in row else "-1" for attribute in header]
        attribute_lines.append(f"{name}  " + " ".join(f"{v:>2}" for v in values))
    (root / "list_attr_celeba.txt").write_text("\n".join(attribute_lines) + "\n")
    (root / "identity_CelebA.txt").write_text(
        "".join(f"{name} {identity}\n" for name, identity in zip(names, identities))
    )
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{name} {partition}\n" for name, partition in zip(names, partitions))
    )
    return names


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young"
).split()


def record_pieces(payload):
    """dmlc-core's split: `[(cflag, piece), ...]` of one record."""
    pieces, start = [], 0
    aligned = len(payload) - len(payload) % 4
    for position in range(0, aligned, 4):
        if payload[position : position + 4] == MAGIC_BYTES:
            pieces.append(payload[start:position])
            start = position + 4
    pieces.append(payload[start:])
    if len(pieces) == 1:
        return [(0, pieces[0])]
    flags = [1] + [2] * (len(pieces) - 2) + [3]
    return list(zip(flags, pieces))


def pack_payload(label, image, flag_labels=None, record_id=0):
    """An `<IfQQ` header (+ float labels) followed by the image bytes."""
    if flag_labels is None:
        return struct.pack("<IfQQ", 0, float(label), record_id, 0) + image
    labels = np.asarray(flag_labels, np.float32)
    return struct.pack("<IfQQ", len(labels), 0.0, record_id, 0) + labels.tobytes() + image


def write_recordio(rec_path, payloads):
    """Writes `{key: payload}` to `rec_path` and `rec_path.with_suffix('.idx')`."""
    lines = []
    with open(rec_path, "wb") as handle:
        for key, payload in payloads.items():
            lines.append(f"{key}\t{handle.tell()}\n")
            for cflag, piece in record_pieces(payload):
                handle.write(struct.pack("<II", MAGIC, (cflag << 29) | len(piece)))
                handle.write(piece + b"\0" * (-len(piece) % 4))
    rec_path.with_suffix(".idx").write_text("".join(lines))


def write_insightface_rec(rec_path, identities, images):
    """insightface layout: record 0 header, images 1..N, then one record per identity."""
    count = len(images)
    num_classes = int(max(identities)) + 1
    payloads = {0: pack_payload(0, b"", flag_labels=[count + 1, count + 1 + num_classes])}
    for index, (identity, image) in enumerate(zip(identities, images), 1):
        payloads[index] = pack_payload(identity, image, flag_labels=[identity], record_id=index)
    for identity in range(num_classes):
        members = [i + 1 for i, label in enumerate(identities) if label == identity]
        payloads[count + 1 + identity] = pack_payload(
            0, b"", flag_labels=[members[0], members[-1] + 1]
        )
    write_recordio(rec_path, payloads)
