"""Tiny copies of the official benchmark layouts, written into a test's tmp_path."""

import pickle

import cv2
import numpy as np
import scipy.io


def face(seed, size=112):
    """A smooth random RGB face stand-in, `size` x `size` uint8 (distinct per seed)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def write_image(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def write_bin(path, num_pairs=10, seed=0):
    """An insightface `.bin`: pairs of PNG-encoded 112x112 faces, alternating same/different.

    A "same" pair shows one seed twice (slightly shifted), a "different" pair two seeds.
    """
    bins, issame = [], []
    for pair in range(num_pairs):
        same = pair % 2 == 0
        first = face(seed + 2 * pair)
        second = np.roll(first, 3, axis=1) if same else face(seed + 2 * pair + 1)
        bins += [cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1]
                 for image in (first, second)]
        issame.append(same)
    path.write_bytes(pickle.dumps((bins, issame), protocol=4))
    return path


def _cell_list(names):
    cells = np.empty((len(names), 1), dtype=object)
    for index, name in enumerate(names):
        cells[index, 0] = name
    return cells


def write_tinyface(root, probes=None, matches=None, distractors=3, aligned=True):
    """The TinyFace test split under `root/tinyface/Testing_Set` and its aligned copy.

    `probes`/`matches`: lists of identity numbers (one image each); files are named
    `<id>_<n>.jpg` as in TinyFace. Returns the dict of names and ids written.
    """
    probes = [1, 2, 3, 1] if probes is None else probes
    matches = [1, 2, 3, 3] if matches is None else matches
    test = root / "tinyface" / "Testing_Set"
    written = {}
    for folder, ids, mat, names_key, ids_key in (
        ("Probe", probes, "probe_img_ID_pairs.mat", "probe_set", "probe_ids"),
        ("Gallery_Match", matches, "gallery_match_img_ID_pairs.mat", "gallery_set",
         "gallery_ids"),
    ):
        names = [f"{identity}_{index}.jpg" for index, identity in enumerate(ids)]
        test.joinpath(folder).mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(test / mat, {names_key: _cell_list(names),
                                      ids_key: np.array(ids, np.float64)[:, None]})
        for index, (name, identity) in enumerate(zip(names, ids)):
            # Raw crops are tiny; the aligned copy is 112x112 and PNG (matched by stem).
            seed = 1000 * identity + index + (500 if folder == "Probe" else 0)
            write_image(test / folder / name, face(seed, 16))
            if aligned:
                write_image(root / "aligned_pad_0.1_pad_high" / folder /
                            name.replace(".jpg", ".png"), face(seed))
        written[folder] = (names, ids)
    for index in range(distractors):
        name = f"{90000 + index}.jpg"
        write_image(test / "Gallery_Distractor" / name, face(90000 + index, 16))
        if aligned:
            write_image(root / "aligned_pad_0.1_pad_high" / "Gallery_Distractor" / name,
                        face(90000 + index))
    return written


def write_scface(root, subjects=(1, 2, 3), cameras=(1, 2), infrared=(6,)):
    """SCface's folders under `root/SCface_database`: aligned 112x112 images with the
    database's names; `infrared` cameras get distance-1 images (to be left out)."""
    database = root / "SCface_database"
    for subject in subjects:
        write_image(database / "mugshot_frontal_cropped_all" / f"{subject:03d}_frontal.JPG",
                    face(5000 + subject))
        for distance in (1, 2, 3):
            for camera in cameras + (infrared if distance == 1 else ()):
                name = f"{subject:03d}_cam{camera}_{distance}.jpg"
                write_image(database / f"surveillance_cameras_distance_{distance}" /
                            f"cam{camera}" / name,
                            face(6000 + 100 * subject + 10 * distance + camera))
    return database
