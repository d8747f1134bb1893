"""Training under each dtype policy, and the policy `train.mixed_precision: auto` picks."""

import keras
import numpy as np
import pytest

from catface_keras.config import OptimizerConfig
from catface_keras.models.fusion import FusionModel
from catface_keras.models.multibranch import MultiBranchModel
from catface_keras.models.stage1_training import MultiBranchTraining
from catface_keras.models.stage2_training import FusionTraining
from catface_keras.precision import choose_dtype_policy, cpu_flags, dtype_policy
from catface_keras.models.builders import make_optimizer

SIZE, PAIRS, CLASSES = 16, 4, 6


def paired_batch(seed=0):
    rng = np.random.default_rng(seed)
    hq = rng.uniform(0, 255, (PAIRS, SIZE, SIZE, 3)).astype("float32")
    lq = np.clip(hq + rng.normal(0, 40, hq.shape), 0, 255).astype("float32")
    targets = {
        "identity": np.arange(PAIRS, dtype="int32") % CLASSES,
        "attributes": rng.integers(0, 2, (PAIRS, 5)).astype("int32"),
    }
    return {"hq": hq, "lq": lq}, targets


def compiled(model):
    # The trainer's optimizer: SGD, momentum, weight decay, clipping to norm 5.
    model.compile(optimizer=make_optimizer(OptimizerConfig(lr_milestones=[]), 10))
    return model


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_both_stages_train_with_float32_heads(policy):
    inputs, targets = paired_batch()
    images = np.concatenate([inputs["hq"], inputs["lq"]])
    with dtype_policy(policy):
        keras.utils.set_random_seed(0)
        stage1 = compiled(MultiBranchTraining(
            MultiBranchModel(backbone="ir_tiny", image_size=SIZE, embedding_dim=16, dropout=0.0),
            num_classes=CLASSES,
        ))
        assert stage1.dtype_policy.name == policy
        if policy == "mixed_float16":
            assert isinstance(stage1.optimizer, keras.optimizers.LossScaleOptimizer)
        for _ in range(2):
            logs = stage1.train_on_batch(inputs, targets, return_dict=True)
        assert all(np.isfinite(value) for value in logs.values()), logs

        features = stage1.network.feature_network(images)
        assert features["embedding"].dtype == "float32"
        norms = np.linalg.norm(features["embedding"], axis=-1)
        assert np.all(np.isfinite(norms)) and np.all(norms > 0)
        labels = np.concatenate([targets["identity"]] * 2)
        logits = stage1.adaface(features["embedding"], labels)
        assert logits.dtype == "float32" and np.all(np.isfinite(logits))
        losses = stage1.compute_stage1_losses(features, targets, PAIRS, training=False)
        for term in ("fr_distillation", "sb_distillation"):
            # 1 - cosine, summed over A and V: in [0, 4].
            assert losses[term].dtype == "float32"
            assert 0.0 <= float(losses[term]) <= 4.0

        stage2 = compiled(
            FusionTraining(FusionModel(stage1.network, fusion="catf"), num_classes=CLASSES)
        )
        for _ in range(2):
            logs = stage2.train_on_batch(inputs, targets, return_dict=True)
        assert all(np.isfinite(value) for value in logs.values()), logs
        fused = stage2(images)["embedding"]
        assert fused.dtype == "float32"
        assert stage2.adaface(fused, labels).dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_auto_picks_by_device_and_cpu_features():
    assert choose_dtype_policy("auto", gpus=["gpu:0"], flags=set()) == "mixed_float16"
    assert choose_dtype_policy("auto", gpus=[], flags={"avx2", "avx512_bf16"}) == "mixed_bfloat16"
    assert choose_dtype_policy("auto", gpus=[], flags={"avx2", "amx_bf16"}) == "mixed_bfloat16"
    assert choose_dtype_policy("auto", gpus=[], flags={"avx2", "avx512f"}) == "float32"
    assert choose_dtype_policy("mixed_float16", gpus=[], flags=set()) == "mixed_float16"
    assert choose_dtype_policy(None) is None


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\nbugs\t\t: x\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def partial_fc_step(policy, initial_scale=None):
    """Centres and a conv kernel before and after one step of a Partial FC stage 1."""
    with dtype_policy(policy):
        keras.utils.set_random_seed(0)
        model = MultiBranchTraining(
            MultiBranchModel(backbone="ir_tiny", image_size=SIZE, embedding_dim=16, dropout=0.0),
            num_classes=CLASSES, partial_fc_sample_rate=1.0,
        )
        optimizer = make_optimizer(OptimizerConfig(lr_milestones=[]), 10)
        if initial_scale is not None:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=initial_scale)
        model.compile(optimizer=optimizer)
        kernel = model.network.get_layer("stem_conv").kernel
        before = model.adaface.all_centres(), kernel.numpy()
        model.train_on_batch(*paired_batch())
        return before, (model.adaface.all_centres(), kernel.numpy())


@pytest.mark.parametrize("policy,initial_scale", [("mixed_bfloat16", None),
                                                  ("mixed_float16", 16.0)])
@pytest.mark.slow
def test_partial_fc_centres_move_as_under_float32(policy, initial_scale):
    """The Partial FC update happens outside the optimizer, so under
    `mixed_float16` it must undo the loss scale itself. One step from the
    same weights: the centres move as under float32, to the precision of the
    half-precision network (5 % of the update)."""
    (start, _), (end, _) = partial_fc_step("float32")
    (start_mixed, _), (end_mixed, _) = partial_fc_step(policy, initial_scale)
    np.testing.assert_array_equal(start_mixed, start)
    move = end - start
    assert np.abs(move).max() > 0
    np.testing.assert_allclose(end_mixed - start_mixed, move, atol=0.05 * np.abs(move).max())


@pytest.mark.slow
def test_partial_fc_centres_skip_the_steps_the_loss_scale_skips():
    """A loss scale of 2**30 overflows float16 gradients: the optimizer skips
    the step, and the centres stay where they are too."""
    (centres, kernel), (centres_after, kernel_after) = partial_fc_step("mixed_float16", 2.0**30)
    np.testing.assert_array_equal(kernel_after, kernel)
    np.testing.assert_array_equal(centres_after, centres)
