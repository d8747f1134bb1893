"""Reads PyTorch checkpoints (`torch.save` files) without torch and without running pickled code.

A `torch.save` file is a pickle whose tensors point at raw storage buffers:
the zip format (torch >= 1.6: `ARCHIVE/data.pkl` plus one `ARCHIVE/data/KEY`
file per storage) or the legacy format (the pickle, then the storages
appended to the same file). Unpickling normally imports and calls whatever
the pickle names, so a checkpoint from the internet can run any code. This
reader resolves only:

- tensor rebuilds (`torch._utils._rebuild_tensor_v2` and kin) and the storage
  type names (`torch.FloatStorage` ...), mapped to NumPy arrays;
- `collections.OrderedDict` and the containers pickle builds natively
  (dict, list, tuple, str, numbers).

Any other name is never imported. Calling it (opcodes REDUCE, INST, OBJ) is
refused with `UnsafeCheckpointError` before anything runs. Creating an object
of it without a call (NEWOBJ, how protocol 2 pickles plain objects such as
PyTorch Lightning's hyper-parameter dict) gives an inert `ForeignObject`
that only records its state, so Lightning `.ckpt` files read whole.
"""

import collections
import io
import pathlib
import pickle
import struct
import zipfile

import numpy as np

# Storage type names -> NumPy dtypes. bfloat16 has no NumPy dtype: read as
# uint16 and widened to float32.
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle calls something other than a tensor rebuild."""


class CheckpointFormatError(ValueError):
    """The file is not a readable PyTorch checkpoint."""


class _ForeignClass(type):
    """Metaclass of the stand-ins for names outside the allow-list: calling one is refused."""

    def __call__(cls, *args, **kwargs):
        raise UnsafeCheckpointError(
            f"{cls.checkpoint_path}: the checkpoint's pickle calls {cls.qualified_name}, "
            "which is not a tensor rebuild; refused (nothing was run). Load it in a "
            "trusted PyTorch and save `model.state_dict()` with torch.save."
        )


class ForeignObject(metaclass=_ForeignClass):
    """An object of a class outside the allow-list, built without calling any code.

    Holds what the pickle gave it: `args` (NEWOBJ arguments), `state` (BUILD),
    `items` (SETITEMS on dict subclasses) and `elements` (APPENDS on list
    subclasses).
    """

    qualified_name = "?"
    checkpoint_path = "?"

    def __new__(cls, *args):
        instance = object.__new__(cls)
        instance.args, instance.state, instance.items, instance.elements = args, None, {}, []
        return instance

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.elements.append(value)

    def extend(self, values):
        self.elements.extend(values)

    def __repr__(self):
        return f"ForeignObject({self.qualified_name})"


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A flat storage buffer; `array` is filled when its bytes are read."""

    def __init__(self, storage_type, key, numel=None):
        self.storage_type, self.key, self.numel, self.array = storage_type, key, numel, None

    def fill(self, data, byteorder):
        raw_dtype = np.uint16 if self.storage_type.dtype == "bfloat16" else self.storage_type.dtype
        raw_dtype = np.dtype(raw_dtype).newbyteorder("<" if byteorder == "little" else ">")
        if len(data) % raw_dtype.itemsize:
            raise CheckpointFormatError(
                f"storage {self.key!r} holds {len(data)} bytes, not a whole number of "
                f"{self.storage_type.name} elements"
            )
        array = np.frombuffer(data, raw_dtype).astype(raw_dtype.newbyteorder("="))
        if self.storage_type.dtype == "bfloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        self.array = array


class _PendingTensor:
    """A tensor view of a storage, materialised once every storage is read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError(f"a tensor rebuild got {type(storage).__name__}, not a storage")
    return _PendingTensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    return data


# (module, name) -> what it stands for. Nothing else is ever resolved.
SAFE_CALLABLES = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path, storages, read_storage):
        super().__init__(file)
        self.path, self.storages, self.read_storage = path, storages, read_storage

    def find_class(self, module, name):
        if (module, name) in SAFE_CALLABLES:
            return SAFE_CALLABLES[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        # A stand-in class: inert as a value, refused when called.
        return _ForeignClass(
            name,
            (ForeignObject,),
            {
                "qualified_name": f"{module}.{name}",
                "checkpoint_path": str(self.path),
                "__module__": module,
            },
        )

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] in ("storage", b"storage")):
            raise CheckpointFormatError(f"{self.path}: unknown persistent id {saved_id!r:.80}")
        if self.read_storage is None or len(saved_id) < 5:
            raise CheckpointFormatError(f"{self.path}: unexpected storage reference {saved_id!r:.80}")
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(
                f"{self.path}: a storage of type {storage_type!r:.80} is not a tensor storage"
            )
        key = str(key)
        if key not in self.storages:
            storage = _Storage(storage_type, key, numel)
            self.read_storage(storage)
            self.storages[key] = storage
        storage = self.storages[key]
        view = saved_id[5] if len(saved_id) > 5 else None
        if view is not None:  # legacy storage views: (view_key, offset, size)
            _, offset, view_size = view
            return _StorageView(storage, offset, view_size)
        return storage


class _StorageView(_Storage):
    def __init__(self, root, offset, numel):
        super().__init__(root.storage_type, root.key, numel)
        self.root, self.view_offset = root, offset


def read_torch_checkpoint(path):
    """Loads a `torch.save` file as plain Python objects and NumPy arrays.

    Args:
        path: a zip-format (torch >= 1.6) or legacy-format checkpoint.

    Returns:
        The saved object with every tensor a NumPy array (bfloat16 widened to
        float32), dicts (`OrderedDict` kept), lists and tuples as saved, and
        objects of other classes as inert `ForeignObject`s.

    Raises:
        UnsafeCheckpointError: the pickle calls something outside the allow-list.
        CheckpointFormatError: the file is not a PyTorch checkpoint.
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise CheckpointFormatError(f"Cannot read checkpoint {path}: {error.strerror}") from error
    try:
        if head.startswith(b"PK"):
            result = _read_zip(path)
        elif head.startswith(b"\x80"):
            result = _read_legacy(path)
        else:
            raise CheckpointFormatError(
                f"{path} is not a PyTorch checkpoint (neither the zip nor the legacy "
                "torch.save format)"
            )
    except (
        pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile, TypeError, KeyError
    ) as error:
        raise CheckpointFormatError(f"{path} is damaged or not a PyTorch checkpoint: {error}") from error
    return _materialise(result, path)


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("data.pkl") and name.count("/") <= 1]
        if len(pickles) != 1:
            raise CheckpointFormatError(f"{path}: expected one data.pkl in the archive, found {pickles}")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode("ascii").strip()

        def read_storage(storage):
            name = f"{prefix}data/{storage.key}"
            if name not in names:
                raise CheckpointFormatError(f"{path}: storage file {name} is missing")
            storage.fill(archive.read(name), byteorder)

        unpickler = _RestrictedUnpickler(
            io.BytesIO(archive.read(pickles[0])), path, {}, read_storage
        )
        return unpickler.load()


def _read_legacy(path):
    with open(path, "rb") as handle:
        # Header pickles: magic number, protocol version, system info. Read
        # with the same restrictions, though they hold only plain values.
        def header():
            return _RestrictedUnpickler(handle, path, {}, None).load()

        if header() != LEGACY_MAGIC_NUMBER:
            raise CheckpointFormatError(f"{path} is not a PyTorch checkpoint (bad magic number)")
        header()  # protocol version
        system = header()
        byteorder = "little"
        if isinstance(system, dict) and not system.get("little_endian", True):
            byteorder = "big"
        storages = {}
        result = _RestrictedUnpickler(handle, path, storages, lambda storage: None).load()
        keys = _RestrictedUnpickler(handle, path, {}, None).load()
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise CheckpointFormatError(f"{path}: storage {key!r} is listed but never used")
            (numel,) = struct.unpack("<q", handle.read(8))
            data = handle.read(numel * storage.storage_type.itemsize)
            if len(data) != numel * storage.storage_type.itemsize:
                raise CheckpointFormatError(f"{path}: storage {key!r} is cut short")
            storage.fill(data, byteorder)
    return result


def _tensor_array(tensor, path):
    storage, offset = tensor.storage, tensor.offset
    if isinstance(storage, _StorageView):
        offset += storage.view_offset
        storage = storage.root
    array = storage.array
    size, stride = tensor.size, tensor.stride
    valid = (
        array is not None
        and isinstance(offset, int)
        and offset >= 0
        and len(size) == len(stride)
        and all(isinstance(v, int) and v >= 0 for v in (*size, *stride))
    )
    count = int(np.prod(size)) if valid else 0
    # Every element the view touches must lie inside the storage.
    if valid and count:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        valid = last < array.size
    if not valid:
        raise CheckpointFormatError(
            f"{path}: a tensor (size {size}, stride {stride}, offset {offset}) does not fit "
            f"its storage {storage.key!r}"
        )
    if not count:
        return np.zeros(size, array.dtype)
    itemsize = array.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        array[offset:], shape=size, strides=[s * itemsize for s in stride], writeable=False
    )
    return np.array(view)


def _materialise(value, path, seen=None):
    """Replaces every pending tensor in `value` by its array (in place for containers)."""
    seen = set() if seen is None else seen
    if isinstance(value, _PendingTensor):
        return _tensor_array(value, path)
    if id(value) in seen:
        return value
    seen.add(id(value))
    if isinstance(value, dict):
        for key in list(value):
            value[key] = _materialise(value[key], path, seen)
    elif isinstance(value, list):
        value[:] = [_materialise(item, path, seen) for item in value]
    elif type(value) is tuple:
        return tuple(_materialise(item, path, seen) for item in value)
    elif isinstance(value, ForeignObject):
        value.args = _materialise(value.args, path, seen)
        value.state = _materialise(value.state, path, seen)
        _materialise(value.items, path, seen)
        _materialise(value.elements, path, seen)
    return value
