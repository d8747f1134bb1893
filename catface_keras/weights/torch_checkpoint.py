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
import math
import os
import pathlib
import pickle
import reprlib
import struct
import zipfile
import zlib

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


# Bounds on what a checkpoint may describe, checked before anything is allocated.
MAX_PICKLE_BYTES = 64 << 20  # `data.pkl` of a backbone or a Lightning .ckpt: well under 1 MB
MAX_TENSOR_DIMS = 16
MAX_NESTING = 200  # dicts in lists in dicts ...: a real checkpoint nests a handful deep
# Default bound of `read_torch_checkpoint` on the bytes of all storages read.
DEFAULT_MAX_BYTES = 4 << 30


def _short(value):
    """A bounded repr (a crafted value can be nested thousands deep)."""
    return reprlib.repr(value)


class _Storage:
    """A flat storage buffer, read only when a tensor of it is materialised.

    `numel` is the element count the checkpoint declares; `read(numel)` returns exactly
    that many bytes' worth or raises; nothing is read before `load`.
    """

    def __init__(self, storage_type, key, numel, read):
        self.storage_type, self.key, self.numel, self._read = storage_type, key, numel, read
        self.array = None

    @property
    def nbytes(self):
        return self.numel * self.storage_type.itemsize

    def load(self, byteorder):
        if self.array is not None:
            return self.array
        data = self._read(self)
        raw_dtype = np.uint16 if self.storage_type.dtype == "bfloat16" else self.storage_type.dtype
        raw_dtype = np.dtype(raw_dtype).newbyteorder("<" if byteorder == "little" else ">")
        array = np.frombuffer(data, raw_dtype).astype(raw_dtype.newbyteorder("="))
        if self.storage_type.dtype == "bfloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        self.array = array
        return array


class PendingTensor:
    """A tensor of a checkpoint, checked against its storage but not read yet.

    Attributes:
        shape: the tensor's size (a tuple of ints).
        count: its number of elements.
        nbytes: the bytes it takes once read (bfloat16 widens to 4 bytes).
    """

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride
        self.count = math.prod(shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def nbytes(self):
        itemsize = 4 if self.storage.storage_type.dtype == "bfloat16" else (
            self.storage.storage_type.itemsize)
        return self.count * itemsize

    def __repr__(self):
        return f"PendingTensor(shape={self.shape}, storage={self.storage.key!r})"


def _is_index(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_view(path, storage, offset, size, stride):
    """Refuses a tensor view that is malformed, overlaps itself or reaches past its storage.

    Elements of a saved parameter never share memory; a stride of 0 (or strides that make
    elements coincide) would let a few stored bytes stand for terabytes once materialised.
    """
    described = f"a tensor (size {size}, stride {stride}, offset {offset})"
    if not (
        isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
        and len(size) == len(stride) <= MAX_TENSOR_DIMS
        and _is_index(offset) and all(_is_index(v) for v in (*size, *stride))
    ):
        raise CheckpointFormatError(
            f"{path}: {_short(described)} is malformed: sizes, strides and offset must be "
            f"non-negative integers, one stride per size, at most {MAX_TENSOR_DIMS} dimensions"
        )
    size, stride = tuple(size), tuple(stride)
    if math.prod(size) == 0:
        return size, stride
    # Non-overlapping: each dimension steps over everything the smaller-stride ones span.
    span = 0
    for length, step in sorted(
        ((length, step) for length, step in zip(size, stride) if length > 1), key=lambda d: d[1]
    ):
        if step <= span:
            raise CheckpointFormatError(
                f"{path}: {described} overlaps itself (a stride of 0, or strides that make "
                "elements coincide); a saved parameter never does. Refused."
            )
        span += (length - 1) * step
    if offset + span >= storage.numel:
        raise CheckpointFormatError(
            f"{path}: {described} does not fit its storage {storage.key!r} of "
            f"{storage.numel} elements"
        )
    return size, stride


def _rebuild_tensor_in(path):
    def rebuild(storage, storage_offset, size, stride, *unused):
        if isinstance(storage, _StorageView):
            storage, storage_offset = storage.root, storage_offset + storage.view_offset
        if not isinstance(storage, _Storage):
            raise CheckpointFormatError(
                f"{path}: a tensor rebuild got {type(storage).__name__}, not a storage"
            )
        size, stride = _check_view(path, storage, storage_offset, size, stride)
        return PendingTensor(storage, storage_offset, size, stride)

    return rebuild


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path, storages, open_storage):
        super().__init__(file)
        self.path, self.storages, self.open_storage = path, storages, open_storage
        self.safe = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_in(path),
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_in(path),
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        }

    def find_class(self, module, name):
        if (module, name) in self.safe:
            return self.safe[(module, name)]
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
            raise CheckpointFormatError(f"{self.path}: unknown persistent id {_short(saved_id)}")
        if self.open_storage is None or len(saved_id) < 5:
            raise CheckpointFormatError(
                f"{self.path}: unexpected storage reference {_short(saved_id)}"
            )
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(
                f"{self.path}: a storage of type {_short(storage_type)} is not a tensor storage"
            )
        if not _is_index(numel):
            raise CheckpointFormatError(
                f"{self.path}: storage {_short(key)} declares {_short(numel)} elements"
            )
        key = str(key)
        if key not in self.storages:
            self.storages[key] = self.open_storage(storage_type, key, numel)
        storage = self.storages[key]
        if storage.storage_type.name != storage_type.name or storage.numel != numel:
            raise CheckpointFormatError(
                f"{self.path}: storage {key!r} is declared twice, differently"
            )
        view = saved_id[5] if len(saved_id) > 5 else None
        if view is not None:  # legacy storage views: (view_key, offset, size)
            if not (isinstance(view, tuple) and len(view) == 3 and _is_index(view[1])
                    and _is_index(view[2]) and view[1] + view[2] <= storage.numel):
                raise CheckpointFormatError(
                    f"{self.path}: storage view {_short(view)} does not fit storage {key!r}"
                )
            return _StorageView(storage, view[1], view[2])
        return storage


class _StorageView:
    def __init__(self, root, offset, numel):
        self.root, self.view_offset, self.numel = root, offset, numel


class TorchCheckpoint:
    """A `torch.save` file opened without reading its tensors (see `read_torch_checkpoint`).

    `content` is the saved object with every tensor a `PendingTensor` (its
    shape known, its bytes unread); `read_tensors` reads the ones asked for,
    after bounding what that reads. Use as a context manager.

    Raises (on opening):
        UnsafeCheckpointError: the pickle calls something outside the allow-list.
        CheckpointFormatError: the file is not a PyTorch checkpoint, or declares
            tensors that overlap themselves or do not fit their storage.
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        if self.path.is_dir():
            raise CheckpointFormatError(
                f"{self.path} is a directory; expected a checkpoint file (.pth, .pt, .ckpt)"
            )
        try:
            self._handle = open(self.path, "rb")
        except OSError as error:
            raise CheckpointFormatError(
                f"Cannot read checkpoint {self.path}: {error.strerror}"
            ) from error
        self._archive = None
        try:
            head = self._handle.read(4)
            self._handle.seek(0)
            if head.startswith(b"PK"):
                self.content = self._open_zip()
            elif head.startswith(b"\x80"):
                self.content = self._open_legacy()
            else:
                raise CheckpointFormatError(
                    f"{self.path} is not a PyTorch checkpoint (neither the zip nor the legacy "
                    "torch.save format)"
                )
        except (
            pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile, TypeError,
            KeyError, ValueError, OverflowError, MemoryError, RecursionError,
            NotImplementedError, zlib.error,
        ) as error:
            self.close()
            if isinstance(error, (CheckpointFormatError, UnsafeCheckpointError)):
                raise
            detail = _short(error)
            if isinstance(error, (MemoryError, OverflowError)):
                detail = "it declares a value larger than memory can hold"
            elif isinstance(error, RecursionError):
                detail = "its objects nest too deep"
            raise CheckpointFormatError(
                f"{self.path} is damaged or not a PyTorch checkpoint: {detail}"
            ) from None
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._archive is not None:
            self._archive.close()
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _open_zip(self):
        archive = self._archive = zipfile.ZipFile(self._handle)
        names = set(archive.namelist())
        pickles = [name for name in names if name.endswith("data.pkl") and name.count("/") <= 1]
        if len(pickles) != 1:
            raise CheckpointFormatError(
                f"{self.path}: expected one data.pkl in the archive, found {sorted(pickles)[:5]}"
            )
        prefix = pickles[0][: -len("data.pkl")]
        self.byteorder = "little"
        if f"{prefix}byteorder" in names:
            self.byteorder = self._member(f"{prefix}byteorder", 16, exact=False).decode(
                "ascii", "replace").strip()
            if self.byteorder not in ("little", "big"):
                raise CheckpointFormatError(
                    f"{self.path}: byteorder must be 'little' or 'big'. "
                    f"Received: {self.byteorder!r}"
                )

        def open_storage(storage_type, key, numel):
            name = f"{prefix}data/{key}"
            if name not in names:
                raise CheckpointFormatError(f"{self.path}: storage file {name} is missing")
            size = archive.getinfo(name).file_size
            if size != numel * storage_type.itemsize:
                raise CheckpointFormatError(
                    f"{self.path}: storage {key!r} declares {numel} {storage_type.name} "
                    f"elements ({numel * storage_type.itemsize} bytes), its file {name} holds "
                    f"{size} bytes"
                )
            return _Storage(storage_type, key, numel, lambda storage: self._member(
                name, storage.nbytes))

        pickled = self._member(pickles[0], MAX_PICKLE_BYTES, exact=False)
        return _RestrictedUnpickler(io.BytesIO(pickled), self.path, {}, open_storage).load()

    def _member(self, name, size, exact=True):
        """A zip member's bytes, never more than `size` inflated (a zip bomb stops there)."""
        with self._archive.open(name) as member:
            data = member.read(size + 1)
        if len(data) > size:
            raise CheckpointFormatError(
                f"{self.path}: {name} inflates to more than {size} bytes; refused"
            )
        if exact and len(data) != size:
            raise CheckpointFormatError(
                f"{self.path}: {name} holds {len(data)} bytes, {size} expected"
            )
        return data

    def _open_legacy(self):
        handle = self._handle
        file_size = os.fstat(handle.fileno()).st_size

        # Header pickles: magic number, protocol version, system info. Read with the
        # same restrictions, though they hold only plain values.
        def header():
            return _RestrictedUnpickler(handle, self.path, {}, None).load()

        if header() != LEGACY_MAGIC_NUMBER:
            raise CheckpointFormatError(
                f"{self.path} is not a PyTorch checkpoint (bad magic number)"
            )
        header()  # protocol version
        system = header()
        self.byteorder = "little"
        if isinstance(system, dict) and not system.get("little_endian", True):
            self.byteorder = "big"
        storages, positions = {}, {}

        def read(storage):
            handle.seek(positions[storage.key])
            data = handle.read(storage.nbytes)
            if len(data) != storage.nbytes:
                raise CheckpointFormatError(f"{self.path}: storage {storage.key!r} is cut short")
            return data

        content = _RestrictedUnpickler(
            handle, self.path, storages, lambda kind, key, numel: _Storage(kind, key, numel, read)
        ).load()
        keys = _RestrictedUnpickler(handle, self.path, {}, None).load()
        if not isinstance(keys, list):
            raise CheckpointFormatError(f"{self.path}: the storage list is a {type(keys).__name__}")
        # The storages follow, each an 8-byte element count and its data: their places are
        # noted (the counts checked against the pickle and the file), nothing is read.
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise CheckpointFormatError(
                    f"{self.path}: storage {_short(key)} is listed but never used"
                )
            (numel,) = struct.unpack("<q", handle.read(8))
            position = handle.tell()
            if numel != storage.numel or position + storage.nbytes > file_size:
                raise CheckpointFormatError(
                    f"{self.path}: storage {storage.key!r} announces {numel} elements; the "
                    f"pickle declares {storage.numel} and the file holds "
                    f"{max(file_size - position, 0)} more bytes"
                )
            positions[storage.key] = position
            handle.seek(position + storage.nbytes)
        missing = sorted(set(storages) - set(positions))
        if missing:
            raise CheckpointFormatError(f"{self.path}: storage {missing[0]!r} has no data")
        return content

    def read_tensors(self, tensors, exact_storages=True, max_bytes=None):
        """Reads `tensors` (`PendingTensor`s of this checkpoint) as NumPy arrays.

        Args:
            tensors: the tensors to read.
            exact_storages: refuse a storage larger than the tensors read from it need
                (a parameter's storage holds exactly its elements), so that what is
                inflated and read is bounded by the tensors asked for.
            max_bytes: refuse when the storages to read add up to more bytes.

        Returns:
            A list of arrays (bfloat16 widened to float32), in the order given.
        """
        needs = {}
        for tensor in tensors:
            needs.setdefault(id(tensor.storage), [tensor.storage, {}])[1][id(tensor)] = tensor
        total = 0
        for storage, users in needs.values():
            if exact_storages:
                needed = sum(tensor.count for tensor in users.values())
                if storage.numel > needed:
                    raise CheckpointFormatError(
                        f"{self.path}: storage {storage.key!r} holds {storage.numel} elements, "
                        f"more than the {needed} its tensors need; refused"
                    )
            total += storage.nbytes
            if max_bytes is not None and total > max_bytes:
                raise CheckpointFormatError(
                    f"{self.path}: its tensors need more than {max_bytes} bytes; refused "
                    "(raise max_bytes to read it)"
                )
        try:
            return [self._array(tensor) for tensor in tensors]
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise CheckpointFormatError(f"{self.path} is damaged: {error}") from None

    def _array(self, tensor):
        array = tensor.storage.load(self.byteorder)
        if not tensor.count:
            return np.zeros(tensor.shape, array.dtype)
        itemsize = array.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            array[tensor.offset :], shape=tensor.shape,
            strides=[s * itemsize for s in tensor.stride], writeable=False,
        )
        return np.array(view)


def pending_tensors(value, path="checkpoint"):
    """Every distinct `PendingTensor` in a loaded structure, in the order found."""
    found = {}

    def visit(node):
        if isinstance(node, PendingTensor):
            found.setdefault(id(node), node)
        return node

    _map_tensors(value, visit, path)
    return list(found.values())


def _map_tensors(value, replace, path, depth=0, seen=None):
    """Replaces every pending tensor by `replace(tensor)` (containers in place; a tuple is
    rebuilt). Depth is bounded, so a crafted nest of lists ends in an error, not a crash."""
    if isinstance(value, PendingTensor):
        return replace(value)
    if depth > MAX_NESTING:
        raise CheckpointFormatError(
            f"{path}: its objects nest more than {MAX_NESTING} deep; refused"
        )
    seen = set() if seen is None else seen
    if id(value) in seen:
        return value
    seen.add(id(value))
    depth += 1
    if isinstance(value, dict):
        for key in list(value):
            value[key] = _map_tensors(value[key], replace, path, depth, seen)
    elif isinstance(value, list):
        value[:] = [_map_tensors(item, replace, path, depth, seen) for item in value]
    elif type(value) is tuple:
        return tuple(_map_tensors(item, replace, path, depth, seen) for item in value)
    elif isinstance(value, ForeignObject):
        value.args = _map_tensors(value.args, replace, path, depth, seen)
        value.state = _map_tensors(value.state, replace, path, depth, seen)
        _map_tensors(value.items, replace, path, depth, seen)
        _map_tensors(value.elements, replace, path, depth, seen)
    return value


def read_torch_checkpoint(path, max_bytes=DEFAULT_MAX_BYTES):
    """Loads a `torch.save` file as plain Python objects and NumPy arrays.

    Args:
        path: a zip-format (torch >= 1.6) or legacy-format checkpoint.
        max_bytes: refuse a checkpoint whose tensor storages add up to more bytes.

    Returns:
        The saved object with every tensor a NumPy array (bfloat16 widened to
        float32), dicts (`OrderedDict` kept), lists and tuples as saved, and
        objects of other classes as inert `ForeignObject`s.

    Raises:
        UnsafeCheckpointError: the pickle calls something outside the allow-list.
        CheckpointFormatError: the file is not a PyTorch checkpoint, or is malformed
            (a tensor that overlaps itself or leaves its storage, objects nested
            deeper than `MAX_NESTING`, storages over `max_bytes`).
    """
    with TorchCheckpoint(path) as checkpoint:
        tensors = pending_tensors(checkpoint.content, path)
        arrays = checkpoint.read_tensors(tensors, exact_storages=False, max_bytes=max_bytes)
        by_id = {id(tensor): array for tensor, array in zip(tensors, arrays)}
        return _map_tensors(checkpoint.content, lambda tensor: by_id[id(tensor)], path)
