"""IJB-B/IJB-C as insightface evaluates them, on a small set in the official layout.

The references here are written from the protocol's description (eval_ijbc.py,
ijb_evals.py), with loops and scikit-learn's `roc_curve` as insightface calls
it, not with the package's functions. The stand-in extractor embeds an image as
a fixed random projection of its pixels, so no model is needed.
"""

import json

import cv2
import keras
import numpy as np
import pytest
from sklearn.metrics import roc_curve as sklearn_roc_curve

from evaluation.official.ijb_layout import ProjectionExtractor, write_ijb

from catface_keras.landmark_alignment import ARCFACE_TEMPLATE, align_face, estimate_similarity
from catface_keras.evaluation.official import ijb
from catface_keras.evaluation.official.ijb_meta import IJBSearchSet, read_protocol

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def reference_template_features(embeddings, faceness, images, norm_score, detector_score):
    """insightface's image2template_feature, loop by loop: dict template -> unit feature."""
    features = {}
    by_template = {}
    for row, (_, template, media, _, _) in enumerate(images):
        feature = embeddings[row].copy()
        if not norm_score:
            feature = feature / np.sqrt(np.sum(feature**2))
        if detector_score:
            feature = feature * faceness[row]
        by_template.setdefault(template, {}).setdefault(media, []).append(feature)
    for template, media in by_template.items():
        total = sum(np.mean(frames, axis=0) for frames in media.values())
        features[template] = total / np.sqrt(np.sum(total**2))
    return features


def reference_tars(scores, labels):
    """eval_ijbc.py's table: sklearn ROC, flipped, the first nearest FPR."""
    fpr, tpr, _ = sklearn_roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    table = {}
    for target in FARS:
        _, index = min(zip(abs(fpr - target), range(len(fpr))))
        table[target] = tpr[index]
    return table


def reference_identification(probe, probe_ids, gallery, gallery_ids, fpirs=(1e-2, 1e-1)):
    """ijb_evals.py's evaluation_1N, probe by probe."""
    similarity_matrix = probe @ gallery.T
    hits = {1: 0, 5: 0, 10: 0}
    positives, negatives, non_mated = [], [], []
    for row, subject in enumerate(probe_ids):
        if subject in gallery_ids:
            mated = gallery_ids.index(subject)
            better = sum(1 for col, value in enumerate(similarity_matrix[row])
                         if col != mated and value >= similarity_matrix[row, mated])
            for k in hits:
                hits[k] += better < k
            positives.append(similarity_matrix[row, mated])
            negatives.append(max([v for c, v in enumerate(similarity_matrix[row]) if c != mated],
                                 default=-np.inf))
        else:
            non_mated.append(max(similarity_matrix[row]))
    best = sorted(non_mated, reverse=True)
    tpirs = {}
    for fpir in fpirs:
        threshold = best[max(int(len(best) * fpir) - 1, 0)]
        correct = sum(1 for p, n in zip(positives, negatives) if p > n and p > threshold)
        tpirs[fpir] = correct / len(positives)
    return hits, len(positives), tpirs


@pytest.fixture(scope="module")
def small_ijbc(tmp_path_factory):
    keras.utils.set_random_seed(0)  # the layout draws its warps and scores from seeded NumPy
    root = tmp_path_factory.mktemp("ijb")
    return root, write_ijb(root)


@pytest.mark.parametrize("flip, norm_score, detector_score",
                         [(True, True, True), (False, False, False), (True, False, True)])
def test_run_matches_the_protocol_written_out(small_ijbc, tmp_path, flip, norm_score,
                                              detector_score):
    root, written = small_ijbc
    extractor = ProjectionExtractor()
    cells = ijb.run("ijbc", root, extractor, tmp_path, flip=flip, norm_score=norm_score,
                    detector_score=detector_score)
    images = written["images"]
    assert extractor.calls == [("ijbc", len(images), flip, False)]

    faceness = np.array([image[4] for image in images])
    expected = reference_template_features(extractor.embeddings, faceness, images, norm_score,
                                           detector_score)
    expected_scores = np.array([expected[a] @ expected[b] for a, b, _ in written["pairs"]])
    scores = np.load(tmp_path / "scores.npy")
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)

    labels = np.array([label for _, _, label in written["pairs"]])
    tars = reference_tars(expected_scores, labels)
    report = json.loads((tmp_path / "report.json").read_text())
    assert {far: entry["tar"] for far, entry in report["tar_at_far"].items()} == {
        key: tars[far] for key, far in zip(["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"], FARS)
    }
    assert cells["ijbc"] == tars[1e-4]
    assert cells["ijbc_tar_at_far_1e-1"] == tars[1e-1]

    # 1:N, each gallery separately; the mean adds the hits over all probes.
    probes = [101, 201, 301, 401]
    probe_features = np.array([expected[t] for t in probes])
    probe_ids = [written["subjects"][t] for t in probes]
    total_hits = {1: 0, 5: 0, 10: 0}
    tpir_sum = {1e-2: 0.0, 1e-1: 0.0}
    for gallery_name, members in (("G1", [100, 200]), ("G2", [300, 400])):
        hits, mated, tpirs = reference_identification(
            probe_features, probe_ids, np.array([expected[t] for t in members]),
            [written["subjects"][t] for t in members],
        )
        result = report["identification"][gallery_name]
        assert result["rank1"] == hits[1] / mated and result["rank5"] == hits[5] / mated
        assert result["tpir_at_fpir_1e-2"] == tpirs[1e-2]
        assert result["tpir_at_fpir_1e-1"] == tpirs[1e-1]
        for k in total_hits:
            total_hits[k] += hits[k]
        for fpir in tpir_sum:
            tpir_sum[fpir] += tpirs[fpir] / 2
    assert cells["ijbc_1n_rank1"] == total_hits[1] / len(probes)
    assert cells["ijbc_1n_rank10"] == total_hits[10] / len(probes)
    assert cells["ijbc_1n_tpir_at_fpir_1e-1"] == pytest.approx(tpir_sum[1e-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.json", "report.md", "roc.png", "scores.npy"
    ]
    assert "| TAR |" in (tmp_path / "report.md").read_text()


def test_ijbb_names_its_files_and_galleries_its_own_way(tmp_path):
    keras.utils.set_random_seed(1)
    write_ijb(tmp_path / "data", name="ijbb")
    out = tmp_path / "out"
    out.mkdir()
    cells = ijb.run("ijbb", tmp_path / "data", ProjectionExtractor(), out)
    expected = {"ijbb", "ijbb_tar_at_far_1e-6", "ijbb_1n_rank1", "ijbb_1n_tpir_at_fpir_1e-2"}
    assert expected <= set(cells)
    report = json.loads((out / "report.json").read_text())
    assert set(report["identification"]) == {"S1", "S2", "mean"}
    assert report["pairs"] == 28 and report["templates"] == 8


def test_the_aligned_crop_undoes_the_warp_of_the_loose_crop(small_ijbc):
    root, written = small_ijbc
    protocol = read_protocol(root, "ijbc")
    aligned = ijb.aligned_image_loader(protocol)(np.arange(6))
    for slot in range(6):
        original = written["originals"][written["images"][slot][0]].astype(np.float64)
        centre = np.s_[20:92, 20:92]
        error = np.abs(aligned[slot][centre] - original[centre]).mean()
        # Unaligned, the same window of the loose crop is another picture altogether.
        loose = cv2.imread(str(protocol.image_folder / written["images"][slot][0]))[..., ::-1]
        unaligned = np.abs(loose[:112, :112][centre] - original[centre]).mean()
        assert error < 6 and unaligned > 4 * error


def skimage_umeyama(source, target):
    """skimage's SimilarityTransform.estimate (Umeyama with scale), as the paper writes it."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    d = np.ones(2)
    if np.linalg.det(covariance) < 0:
        d[1] = -1
    u, singular, v = np.linalg.svd(covariance)
    rotation = u @ np.diag(d) @ v
    scale = (singular @ d) / source_centred.var(axis=0).sum()
    matrix = np.eye(3)
    matrix[:2, :2] = scale * rotation
    matrix[:2, 2] = target_mean - scale * rotation @ source_mean
    return matrix[:2]


def test_alignment_is_insightfaces_similarity_estimate_and_warp():
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (140, 130, 3), dtype=np.uint8)
    for _ in range(5):
        landmarks = ARCFACE_TEMPLATE * rng.uniform(0.7, 1.3) + rng.normal(0, 4, (5, 2)) + 10
        expected = skimage_umeyama(landmarks, ARCFACE_TEMPLATE)
        np.testing.assert_allclose(estimate_similarity(landmarks, ARCFACE_TEMPLATE), expected,
                                   atol=1e-9)
        # eval_ijbc.py: cv2.warpAffine(img, M, (112, 112), borderValue=0.0).
        reference = cv2.warpAffine(image, expected, (112, 112), borderValue=0.0)
        np.testing.assert_array_equal(align_face(image, landmarks), reference)


def test_template_pooling_averages_media_and_sums_them():
    # Template 7: media 1 = rows 0, 2 (mean (2, 0)), media 2 = row 3 -> (2, 0) + (0, 5).
    features = np.array([[1.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 5.0]])
    ids, pooled = ijb.template_features(features, [7, 9, 7, 7], [1, 1, 1, 2], chunk_size=3)
    np.testing.assert_array_equal(ids, [7, 9])
    np.testing.assert_allclose(pooled, [[2 / np.sqrt(29), 5 / np.sqrt(29)], [0.0, 1.0]])


def test_template_pooling_and_both_scoring_paths_match_loops():
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    templates = rng.integers(0, 40, 500) * 3
    media = rng.integers(0, 6, 500)
    features = rng.standard_normal((500, 16))
    ids, pooled = ijb.template_features(features, templates, media, chunk_size=64)
    for row, template in enumerate(ids):
        total = sum(features[(templates == template) & (media == m)].mean(axis=0)
                    for m in np.unique(media[templates == template]))
        np.testing.assert_allclose(pooled[row], total / np.linalg.norm(total), atol=1e-12)
    # Few templates on one side: matrix products; spread on both sides: gathered rows.
    for first in (rng.integers(0, 3, 3000), rng.integers(0, len(ids), 30)):
        second = rng.integers(0, len(ids), len(first))
        expected = np.array([pooled[a] @ pooled[b] for a, b in zip(first, second)])
        np.testing.assert_allclose(ijb.pair_scores(pooled, first, second, chunk_size=7), expected,
                                   atol=1e-12)
        np.testing.assert_allclose(ijb.pair_scores(pooled, second, first, chunk_size=7), expected,
                                   atol=1e-12)


def test_roc_drops_collinear_points_as_scikit_learn():
    # Thresholds .9 .. .3 give (FAR, TAR) = (0, 1/3) (1/4, 1/3) (1/4, 2/3) (1/2, 2/3)
    # (1/2, 1) (3/4, 1) (1, 1); (3/4, 1) lies on the line from (1/2, 1) to (1, 1).
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    same = np.array([1, 0, 1, 0, 1, 0, 0], bool)
    far, tar = ijb.insightface_roc(scores, same)
    np.testing.assert_allclose(far, [0, 0, 0.25, 0.25, 0.5, 0.5, 1])
    np.testing.assert_allclose(tar, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=2000), 2)  # many ties
    same = rng.random(2000) < 0.3
    expected_far, expected_tar, _ = sklearn_roc_curve(same, scores)
    far, tar = ijb.insightface_roc(scores, same)
    np.testing.assert_allclose(far, expected_far)
    np.testing.assert_allclose(tar, expected_tar)


def test_tar_is_read_at_the_nearest_far_and_ties_take_the_largest_tar():
    far = np.array([0, 0, 0.25, 0.25, 0.5, 0.5, 1])
    tar = np.array([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    table = ijb.tar_at_nearest_fars(far, tar, fars=(1e-6, 0.1, 0.125, 0.3, 0.4))
    assert table == {
        1e-6: (1 / 3, 0.0),  # FAR 0, the higher of its two points
        0.1: (1 / 3, 0.0),
        0.125: (2 / 3, 0.25),  # as near to 0 as to 0.25: insightface's order picks 0.25
        0.3: (2 / 3, 0.25),
        0.4: (1.0, 0.5),
    }


def test_identification_ranks_and_tpir_by_hand():
    # Gallery subjects 1, 2 (2-D unit rows); probes: subject 1 (rank 1), subject 2
    # (rank 2), subjects 8 and 9 not in the gallery (best scores 0.6 and 0.8).
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    probes = np.array([[0.8, 0.6], [0.8, 0.6], [0.6, 0.0], [0.0, 0.8]])
    pooled = np.concatenate([gallery, probes])
    ids = np.arange(6)
    results = ijb.identification(
        pooled, ids, [IJBSearchSet("G1", np.array([0, 1]), np.array([1, 2]))],
        IJBSearchSet("probe_mixed", np.array([2, 3, 4, 5]), np.array([1, 2, 8, 9])),
        fpirs=(0.5, 1.0),
    )
    g1 = results["G1"]
    assert (g1["rank1"], g1["rank5"]) == (0.5, 1.0)
    # FPIR 0.5: threshold = the 1st best non-mated score, 0.8: the rank-1 probe scores
    # 0.8, not above. FPIR 1.0: the 2nd, 0.6: it counts.
    assert (g1["tpir_at_fpir_5e-1"], g1["tpir_at_fpir_1e0"]) == (0.0, 0.5)
    assert results["mean"]["rank1"] == 1 / 4  # one hit over four probes
