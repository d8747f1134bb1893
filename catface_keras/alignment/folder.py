"""`catface align`: a folder of photos per person -> a folder of aligned 112x112 faces.

    SRC/alice/holiday.jpg ...        DST/alice/holiday.png ...
    SRC/bob/IMG_0001.jpeg ...   ->   DST/bob/IMG_0001.png ...
                                     DST/align_report.json

DST has the image-folder layout that `catface train` / `catface evaluate`
read (`catface_keras.data.image_folder`). Crops are PNG (lossless); with
`all_faces` a photo's faces are `NAME_face0.png`, `NAME_face1.png`, ...,
largest first. A photo in which no face is found, or that does not decode,
is listed in the report and counted; it never stops the run. Identity
folders left with no face at all are not created (the reader would skip
them anyway).

Detections scored below `min_confidence` are dropped and listed in the report
(`below_min_confidence`); a photo left with no face counts as "no face".

With `workers > 1` photos are detected, aligned and PNG-encoded in that many
processes (spawned, each building its own detector); the parent writes every
file in the order of the photos, so the folder and the report are the same as
with one worker. The folder is built in a scratch folder beside DST and
renamed into place when complete, so an interrupted run leaves DST as it was;
the next run removes the scratch folder that a killed run left (see
`remove_abandoned_scratch`).
"""

import collections
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import pathlib
import shutil
import tempfile
import threading
import time

import cv2

from catface_keras.atomic_files import swap_into_place
from catface_keras.alignment.photos import align_confident_faces, read_photo
from catface_keras.landmark_alignment import ALIGNED_SIZE
from catface_keras.data.decoding import ImageDecodeError
from catface_keras.data.image_folder import IMAGE_SUFFIXES
from catface_keras.progress import track

try:
    import fcntl
except ImportError:  # not POSIX: abandoned scratch folders are left for the user
    fcntl = None

REPORT_FILE = "align_report.json"
# The scratch folder of a run is `.DST.partial-XXXX`, beside DST; the run holds a lock on
# OWNER_LOCK inside it, so that the next run can tell a dead run's folder from a live one's.
SCRATCH_TAG = ".partial-"
OWNER_LOCK = ".owner.lock"


@dataclasses.dataclass(frozen=True)
class AlignSummary:
    """What `align_folder` did (the report file holds the details)."""

    photos: int
    photos_with_face: int
    faces: int
    no_face: int
    undecodable: int
    identities: int
    report_path: pathlib.Path
    below_min_confidence: int = 0


def _visible(name):
    return not name.startswith(".")


def _entry_is(entry, kind):
    """`entry.is_dir()` / `is_file()`, or the `OSError` they raise (a symlink loop: ELOOP)."""
    try:
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError as error:
        return error


def list_photos(source):
    """The photos of `source`: `(photos, loose, unreadable)`.

    `photos` is `[(identity folder name, file name)]`, sorted; `loose` the visible
    files directly in `source` (not in a person's folder); `unreadable` the
    `{"photo", "reason"}` entries that cannot even be listed (a symlink loop, a
    folder without permission), reported like undecodable photos.
    """
    source = pathlib.Path(source)
    photos, loose, unreadable = [], [], []
    for entry in sorted(os.scandir(source), key=lambda entry: entry.name):
        if not _visible(entry.name):
            continue
        is_dir = _entry_is(entry, "dir")
        if isinstance(is_dir, OSError):
            unreadable.append({"photo": entry.name, "reason": f"cannot be read: {is_dir}"})
            continue
        if is_dir:
            try:
                items = sorted(os.scandir(entry.path), key=lambda item: item.name)
            except OSError as error:
                unreadable.append({"photo": entry.name, "reason": f"cannot be listed: {error}"})
                continue
            for item in items:
                if not _visible(item.name) or (
                    os.path.splitext(item.name)[1].lower() not in IMAGE_SUFFIXES
                ):
                    continue
                is_file = _entry_is(item, "file")
                if isinstance(is_file, OSError):
                    unreadable.append({
                        "photo": f"{entry.name}/{item.name}",
                        "reason": f"cannot be read: {is_file}",
                    })
                elif is_file:
                    photos.append((entry.name, item.name))
        elif _entry_is(entry, "file") is True:
            loose.append(entry.name)
    return photos, loose, unreadable


def remove_abandoned_scratch(destination, min_age_s=60.0):
    """Removes the scratch folders beside `destination` that killed runs left.

    A run holds an exclusive lock on `OWNER_LOCK` inside its scratch folder for as
    long as it lives; the system drops the lock when the process dies, however it
    dies. A folder whose lock can be taken belongs to no live run. One without a
    lock file (a run killed in the instant between creating the folder and the
    lock, or an older version) is removed once it is `min_age_s` old.

    Returns:
        The folders removed.
    """
    destination = pathlib.Path(destination)
    prefix = f".{destination.name}{SCRATCH_TAG}"
    removed = []
    if fcntl is None or not destination.parent.is_dir():
        return removed
    for entry in os.scandir(destination.parent):
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            handle = open(os.path.join(entry.path, OWNER_LOCK), "rb")
        except FileNotFoundError:
            if time.time() - entry.stat().st_mtime >= min_age_s:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(pathlib.Path(entry.path))
            continue
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run's
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(pathlib.Path(entry.path))
    return removed


def _claim_scratch(destination):
    """This run's scratch folder beside `destination`, and the open lock that marks it live."""
    scratch = pathlib.Path(
        tempfile.mkdtemp(prefix=f".{destination.name}{SCRATCH_TAG}", dir=destination.parent)
    )
    handle = open(scratch / OWNER_LOCK, "wb")
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return scratch, handle


def check_folders(source, destination, overwrite):
    """Raises ValueError unless SRC is a folder and DST may be written (see `align_folder`)."""
    source, destination = pathlib.Path(source), pathlib.Path(destination)
    if not source.is_dir():
        raise ValueError(f"SRC {source} is not a folder (expected one sub-folder per person)")
    resolved_source, resolved_destination = source.resolve(), destination.resolve()
    if resolved_destination == resolved_source or resolved_source in resolved_destination.parents:
        raise ValueError(f"DST {destination} must lie outside SRC {source}")
    if resolved_destination in resolved_source.parents:
        raise ValueError(f"DST {destination} must not contain SRC {source}")
    if destination.exists() and not overwrite:
        raise ValueError(f"DST {destination} exists; pass --overwrite to replace it")
    if destination.exists() and not destination.is_dir():
        raise ValueError(f"DST {destination} exists and is not a folder")


def _write_file(path, data):
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _output_names(folder_photos):
    """Photo file name -> output stem, unique in its folder (`a.jpg`, `a.png` -> `a`, `a_png`)."""
    names, taken = {}, set()
    for name in folder_photos:
        stem, suffix = os.path.splitext(name)
        candidate = stem if stem not in taken else f"{stem}_{suffix.lstrip('.').lower()}"
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        names[name] = candidate
    return names


def align_folder(source, destination, detector, all_faces=False, overwrite=False,
                 size=ALIGNED_SIZE, min_confidence=0.0, workers=1):
    """Aligns every photo of a person-per-folder tree into `destination`.

    Args:
        source: folder of identity folders of photos.
        destination: the folder to create (beside it, a scratch folder is used).
        detector: an object with `detect(rgb uint8 image) -> [DetectedFace]`, or a
            picklable zero-argument callable that makes one (such as
            `detection.detector_factory(...)`); `workers > 1` needs the latter,
            each worker process calls it once.
        all_faces: keep every face of a photo, not only the largest.
        overwrite: replace an existing `destination` (only once the new one is complete).
        size: crop side (112, the ArcFace template's).
        min_confidence: detections scored below it are dropped (and reported).
        workers: processes that detect and align (1: this process).

    Returns:
        An `AlignSummary`.

    Raises:
        ValueError: `source` is not a folder or holds no photos; `destination`
            exists without `overwrite`, or overlaps `source`; `workers` or
            `min_confidence` is out of range.
    """
    source, destination = pathlib.Path(source), pathlib.Path(destination)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be an int >= 1. Received: workers={workers!r}")
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) or (
        not 0.0 <= min_confidence <= 1.0
    ):
        raise ValueError(
            f"`min_confidence` must be a number in [0, 1]. Received: min_confidence={min_confidence!r}"
        )
    if workers > 1 and (hasattr(detector, "detect") or not callable(detector)):
        raise ValueError(
            "With `workers` > 1, `detector` must be a picklable callable that makes a detector "
            f"(each worker builds its own). Received: detector={detector!r}"
        )
    check_folders(source, destination, overwrite)
    photos, loose, unreadable = list_photos(source)
    if not photos:
        raise ValueError(
            f"SRC {source} holds no photos in person folders (expected SRC/NAME/photo with "
            f"a suffix in {', '.join(IMAGE_SUFFIXES)})"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_scratch(destination)
    scratch, owner = _claim_scratch(destination)
    try:
        built = scratch / "aligned"
        built.mkdir()
        settings = _PhotoSettings(all_faces, size, float(min_confidence))
        if workers == 1:
            if not hasattr(detector, "detect"):
                detector = detector()
            results = (_align_one(source / folder / name, detector, settings)
                       for folder, name in photos)
        else:
            results = _align_in_workers(source, photos, detector, settings, workers)
        try:
            report = _align_into(source, built, photos, results, settings, unreadable)
        finally:
            results.close()  # stops the worker processes at once if writing failed
        report["not_in_a_person_folder"] = loose
        report_path = built / REPORT_FILE
        _write_file(report_path, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
        swap_into_place(built, destination)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        owner.close()
    counts = report["counts"]
    return AlignSummary(
        photos=counts["photos"],
        photos_with_face=counts["photos_with_face"],
        faces=counts["faces"],
        no_face=counts["no_face"],
        undecodable=counts["undecodable"],
        identities=counts["identities"],
        report_path=destination / REPORT_FILE,
        below_min_confidence=counts["below_min_confidence"],
    )


@dataclasses.dataclass(frozen=True)
class _PhotoSettings:
    all_faces: bool
    size: int
    min_confidence: float


@dataclasses.dataclass(frozen=True)
class _PhotoResult:
    """What became of one photo: its PNG-encoded crops, or why it gave none."""

    undecodable: str = None
    crops: tuple = ()  # ((png bytes, DetectedFace), ...), largest first
    dropped: tuple = ()  # DetectedFaces scored below min_confidence


def _align_one(path, detector, settings):
    try:
        image = read_photo(path)
    except (OSError, ImageDecodeError) as error:
        return _PhotoResult(undecodable=str(error))
    aligned, dropped = align_confident_faces(
        image, detector, settings.all_faces, settings.size, settings.min_confidence)
    crops = []
    for face in aligned:
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"PNG encoding failed for a face of {path}")
        crops.append((encoded.tobytes(), face.face))
    return _PhotoResult(crops=tuple(crops), dropped=tuple(dropped))


# A worker process's own detector, made once by `_start_worker` (a process pool's
# initializer has nowhere else to leave it); never set in the parent process.
_worker_detector = None


def _start_worker(make_detector, parent_pid):
    global _worker_detector
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    _worker_detector = make_detector()


def _exit_with_parent(parent_pid, interval_s=1.0):
    """Ends this worker once its parent is gone (a killed `catface align`): the pool's
    queues never report it, so the worker would wait for work for ever."""
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    os._exit(1)


def _align_in_worker(path, settings):
    return _align_one(path, _worker_detector, settings)


def _align_in_workers(source, photos, make_detector, settings, workers):
    """`_align_one` of each photo in `workers` spawned processes, yielded in the photos' order.

    Spawned, not forked: a forked child would inherit TensorFlow's threads in an
    unknown state and the open lock of the scratch folder (a killed run's folder
    would then look live to the next run). At most `4 * workers` photos are in
    flight, so memory does not grow with the folder. Each worker keeps TensorFlow's
    default thread pools: fewer threads change MTCNN's float sums (its boxes move
    in the last bits), and the output would no longer match one worker's.
    """
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(make_detector, os.getpid()))
    try:
        pending = collections.deque()
        for folder, name in photos:
            pending.append(pool.submit(_align_in_worker, source / folder / name, settings))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _box(face):
    return [round(float(value), 2) for value in face.box]


def _align_into(source, built, photos, results, settings, unreadable=()):
    """Writes each photo's crops (`results`, in the order of `photos`) into `built`; returns
    the report."""
    faces, no_face, undecodable, identities = [], [], list(unreadable), set()
    dropped = []
    by_folder = {}
    for folder, name in photos:
        by_folder.setdefault(folder, []).append(name)
    output_names = {folder: _output_names(names) for folder, names in by_folder.items()}
    photos_with_face = 0
    for (folder, name), result in zip(
        photos, track(results, len(photos), "aligning", unit="photo"), strict=True
    ):
        relative = f"{folder}/{name}"
        if result.undecodable is not None:
            undecodable.append({"photo": relative, "reason": result.undecodable})
            continue
        dropped.extend({"photo": relative, "box": _box(face),
                        "confidence": round(face.confidence, 5)} for face in result.dropped)
        if not result.crops:
            no_face.append(relative)
            continue
        photos_with_face += 1
        (built / folder).mkdir(exist_ok=True)
        identities.add(folder)
        stem = output_names[folder][name]
        for index, (encoded, face) in enumerate(result.crops):
            output = (f"{folder}/{stem}_face{index}.png" if settings.all_faces
                      else f"{folder}/{stem}.png")
            _write_file(built / output, encoded)
            faces.append({
                "photo": relative,
                "face": output,
                "box": _box(face),
                "confidence": round(face.confidence, 5),
                "landmarks": [[round(float(value), 2) for value in point]
                              for point in face.landmarks],
            })
    return {
        "source": str(source),
        "all_faces": bool(settings.all_faces),
        "size": settings.size,
        "min_confidence": settings.min_confidence,
        "counts": {
            "photos": len(photos) + len(unreadable),
            "photos_with_face": photos_with_face,
            "faces": len(faces),
            "no_face": len(no_face),
            "undecodable": len(undecodable),
            "identities": len(identities),
            "below_min_confidence": len(dropped),
        },
        "no_face": no_face,
        "undecodable": undecodable,
        "below_min_confidence": dropped,
        "faces": faces,
    }
