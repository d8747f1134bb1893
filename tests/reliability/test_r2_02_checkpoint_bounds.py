"""Round two, item 2 (and the checkpoint messages of item 10): a tiny checkpoint cannot make
`import-weights` allocate more than the architecture's tensors.

Each hostile checkpoint is built here, small: a stride-0 tensor (a few bytes standing for
terabytes), a storage member that inflates far past what its tensor needs (a zip bomb), a
legacy storage count of 2**60, and a pickle of lists nested 100 000 deep.
"""

import collections
import struct
import zipfile

import numpy as np
import pytest

from catface_keras.weights.iresnet_import import import_iresnet
from catface_keras.weights.torch_checkpoint import CheckpointFormatError, read_torch_checkpoint

torch = pytest.importorskip("torch")

from weights.torch_iresnets import LAYERS, InsightFaceIR, randomise  # noqa: E402  (needs torch)


@pytest.fixture(scope="module")
def ir18_state():
    return randomise(InsightFaceIR(LAYERS["ir_18"]), seed=3).state_dict()


def test_a_stride_0_tensor_is_refused_before_it_is_materialised(tmp_path):
    path = tmp_path / "stride0.pth"
    # 4 bytes of storage standing for 2**42 elements (16 TB as float32).
    torch.save({"weight": torch.zeros(1).expand(2**21, 2**21)}, path)
    assert path.stat().st_size < 2000
    # Before: MemoryError (or the machine swapping) while materialising it.
    with pytest.raises(CheckpointFormatError, match=r"size \(2097152, 2097152\), stride \(0, 0\).*overlaps itself"):
        read_torch_checkpoint(path)


def test_an_import_refuses_a_stride_0_parameter_of_the_right_shape(tmp_path, ir18_state):
    state = collections.OrderedDict(ir18_state)
    state["layer1.0.bn1.running_mean"] = torch.zeros(1).expand(64)
    path = tmp_path / "stride0_param.pth"
    torch.save(state, path)
    # Before: imported, the 64 running means read from one float.
    with pytest.raises(CheckpointFormatError, match=r"stride \(0,\).*overlaps itself"):
        import_iresnet(path, "insightface", "ir_18")


def deflated(path, member_size):
    """The same checkpoint with its members of `member_size` bytes DEFLATE-compressed (torch
    stores every member raw), and the compressed size of those."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    target = path.with_name("bomb-" + path.name)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members:
            kind = zipfile.ZIP_DEFLATED if len(data) == member_size else zipfile.ZIP_STORED
            archive.writestr(name, data, compress_type=kind, compresslevel=9)
    with zipfile.ZipFile(target) as archive:
        packed = [info.compress_size for info in archive.infolist() if info.file_size == member_size]
    return target, packed


def test_a_storage_that_inflates_past_what_its_tensor_needs_is_refused_unread(tmp_path, ir18_state):
    state = collections.OrderedDict(ir18_state)
    # A 64-element view of a 16M-element storage: torch saves the whole storage (64 MB of
    # zeros, 62 KB deflated); the import needs 64 elements of it.
    state["layer1.0.bn1.running_mean"] = torch.zeros(16_000_000)[:64]
    path = tmp_path / "view.pth"
    torch.save(state, path)
    bomb, packed = deflated(path, 64_000_000)
    assert len(packed) == 1 and packed[0] < 100_000
    # Before: the member inflated whole and the import went on.
    with pytest.raises(CheckpointFormatError, match=r"holds 16000000 elements, more than the 64 its tensors need"):
        import_iresnet(bomb, "insightface", "ir_18")


def test_a_member_larger_than_declared_is_cut_off(tmp_path):
    path = tmp_path / "small.pth"
    torch.save({"weight": torch.arange(4.0)}, path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    storage = next(name for name in members if "/data/" in name)
    members[storage] = members[storage] + b"\x00" * 1_000_000  # size no longer matches numel
    bad = tmp_path / "bad.pth"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(CheckpointFormatError, match=r"declares 4 FloatStorage elements \(16 bytes\)"):
        read_torch_checkpoint(bad)


def test_a_huge_legacy_storage_count_is_refused(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"weight": torch.arange(4.0)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    count = struct.pack("<q", 4) + np.arange(4, dtype="<f4").tobytes()
    position = data.rfind(count)
    assert position > 0
    path.write_bytes(data[:position] + struct.pack("<q", 2**60) + data[position + 8 :])
    # Before: OverflowError / MemoryError from reading 2**62 bytes.
    with pytest.raises(CheckpointFormatError, match=r"announces 1152921504606846976 elements"):
        read_torch_checkpoint(path)


def test_lists_nested_100000_deep_end_in_an_error_not_a_crash(tmp_path):
    depth = 100_000
    pickled = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    path = tmp_path / "nested.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("nested/data.pkl", pickled)
    # Before: RecursionError.
    with pytest.raises(CheckpointFormatError, match=r"nest more than \d+ deep"):
        read_torch_checkpoint(path)


def test_an_oversized_head_is_refused_before_the_model_is_built(tmp_path, ir18_state):
    state = collections.OrderedDict(ir18_state)
    # 10**9 embedding dimensions: a dense layer of 25 TB, declared by a stride-0 view.
    state["fc.weight"] = torch.zeros(1).expand(10**9, 512 * 7 * 7)
    path = tmp_path / "head.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointFormatError, match="overlaps itself"):
        import_iresnet(path, "insightface", "ir_18")


def test_a_directory_or_a_foreign_file_as_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointFormatError, match=r"is a directory; expected a checkpoint file"):
        read_torch_checkpoint(tmp_path)
    text = tmp_path / "notes.pth"
    text.write_bytes(b"\x80" + b"garbage" * 10)
    with pytest.raises(CheckpointFormatError, match="notes.pth is damaged or not a PyTorch checkpoint"):
        read_torch_checkpoint(text)


def test_ordinary_views_still_read_back(tmp_path):
    base = torch.arange(24.0).reshape(4, 6)
    path = tmp_path / "views.pth"
    torch.save({"t": base.t(), "s": base[1:3, 2:], "e": torch.zeros(0, 3)}, path)
    loaded = read_torch_checkpoint(path)
    np.testing.assert_array_equal(loaded["t"], base.t().numpy())
    np.testing.assert_array_equal(loaded["s"], base[1:3, 2:].numpy())
    assert loaded["e"].shape == (0, 3)
    with pytest.raises(CheckpointFormatError, match="need more than 10 bytes"):
        read_torch_checkpoint(path, max_bytes=10)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_pickle_declaring_a_huge_value_ends_in_an_error(tmp_path, zip_format):
    # BINBYTES8 announcing 2**60 bytes, followed by three.
    pickled = b"\x80\x04\x8e" + struct.pack("<Q", 2**60) + b"abc"
    path = tmp_path / "huge.pth"
    if zip_format:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("huge/data.pkl", pickled)
    else:
        path.write_bytes(pickled)
    with pytest.raises(CheckpointFormatError, match="huge.pth is damaged or not a PyTorch "
                                                    "checkpoint: it declares a value larger"):
        read_torch_checkpoint(path)
