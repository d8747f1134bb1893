"""The torch-free checkpoint reader: tensors as saved, nothing pickled ever runs."""

import argparse
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from catface_keras.weights.torch_checkpoint import (
    CheckpointFormatError,
    ForeignObject,
    UnsafeCheckpointError,
    read_torch_checkpoint,
)

torch = pytest.importorskip("torch")


def reference_tensors():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=generator)
    return collections.OrderedDict(
        conv=torch.randn(8, 3, 3, 3, generator=generator),
        transposed=base.t(),  # non-contiguous: strides (1, 6)
        sliced=base[1:3, 2:],  # storage offset 8, shares `base`'s storage
        half=torch.randn(5, generator=generator).half(),
        bfloat=torch.randn(5, generator=generator).to(torch.bfloat16),
        count=torch.tensor(1000),
        flags=torch.tensor([True, False, True]),
        empty=torch.zeros(0, 3),
    )


def as_numpy(tensor):
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_tensors_read_back_as_saved_without_torch(tmp_path, zip_format):
    tensors = reference_tensors()
    path = tmp_path / "checkpoint.pth"
    torch.save(
        {"state_dict": tensors, "epoch": 3, "nested": [tensors["conv"], {"x": tensors["sliced"]}]},
        path,
        _use_new_zipfile_serialization=zip_format,
    )
    loaded = read_torch_checkpoint(path)
    assert isinstance(loaded["state_dict"], collections.OrderedDict)
    assert list(loaded["state_dict"]) == list(tensors)
    for key, tensor in tensors.items():
        array = loaded["state_dict"][key]
        assert isinstance(array, np.ndarray) and array.shape == tuple(tensor.shape), key
        np.testing.assert_array_equal(array, as_numpy(tensor))
    assert loaded["state_dict"]["bfloat"].dtype == np.float32
    assert loaded["epoch"] == 3
    np.testing.assert_array_equal(loaded["nested"][1]["x"], tensors["sliced"].numpy())


def test_objects_pickled_without_a_call_stay_inert(tmp_path):
    path = tmp_path / "lightning.ckpt"
    torch.save({"hyper_parameters": argparse.Namespace(lr=0.1), "state_dict": {}}, path)
    loaded = read_torch_checkpoint(path)
    hyper_parameters = loaded["hyper_parameters"]
    assert isinstance(hyper_parameters, ForeignObject)
    assert hyper_parameters.qualified_name == "argparse.Namespace"
    assert hyper_parameters.state == {"lr": 0.1}


class WritesMarker:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class ExecsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload", [WritesMarker, ExecsCode])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_pickle_that_calls_a_function_is_refused_and_nothing_runs(tmp_path, payload, zip_format):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    state = {"conv.weight": torch.zeros(2, 3), "conv.bias": payload(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    # The payload does run under plain pickle (the test would be void otherwise) ...
    if zip_format:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        assert b"system" in raw or b"exec" in raw
    # ... and is refused here, naming what it calls.
    with pytest.raises(UnsafeCheckpointError, match=r"calls (posix\.system|os\.system|__builtin__\.exec|builtins\.exec)"):
        read_torch_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_of_the_payload_would_run_it(tmp_path):
    """The payload is live: unpickled normally it creates the marker."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(WritesMarker(marker)))
    assert marker.exists()


class _FakeStorage:
    pass


class _OutOfBoundsTensor:
    def __reduce__(self):
        # Ten elements of a four-element storage.
        return torch._utils._rebuild_tensor_v2, (
            _FakeStorage(), 0, (10,), (1,), False, collections.OrderedDict()
        )


class _StoragePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _FakeStorage):
            return ("storage", torch.FloatStorage, "0", "cpu", 4)
        return None


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    buffer = io.BytesIO()
    _StoragePickler(buffer, protocol=2).dump({"weight": _OutOfBoundsTensor()})
    path = tmp_path / "crafted.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("crafted/data.pkl", buffer.getvalue())
        archive.writestr("crafted/data/0", np.zeros(4, "<f4").tobytes())
    with pytest.raises(CheckpointFormatError, match=r"size \(10,\).*does not fit its storage '0'"):
        read_torch_checkpoint(path)


def test_a_file_that_is_no_checkpoint_is_named(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(CheckpointFormatError, match="notes.pth is not a PyTorch checkpoint"):
        read_torch_checkpoint(path)
    with pytest.raises(CheckpointFormatError, match="missing.pth"):
        read_torch_checkpoint(tmp_path / "missing.pth")
