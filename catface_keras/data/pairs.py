"""The paired HQ/LQ `tf.data` pipeline that stage-1 training consumes.

Every element is `({"hq": images, "lq": images}, {"identity": ids,
"attributes": labels})` with images float32 RGB in [0, 255], shape
`(batch, H, W, 3)`. The order of epoch `e` and the degradation of each of
its batches depend only on `(seed, e, batch index)`, so a run resumed at
epoch `e` sees exactly the batches an uninterrupted run would have seen, and
`tf.data` parallelism changes nothing.

`paired_dataset` pairs in-memory arrays; `paired_stream` pairs a streaming
source (real datasets that do not fit in memory), given as a function that
returns one epoch's faces in that epoch's order. The resume property holds
for a stream exactly when that order is a function of the epoch seed:
random-access sources (image files, RecordIO with its `.idx`) permute
indices statelessly like the arrays; TFRecord shards draw their shard order
and shuffle-buffer seed from it (see `catface_keras.data.sources`).
"""

import tensorflow as tf


def _epoch_seed(seed, epoch):
    return tf.random.experimental.stateless_fold_in(
        tf.constant([seed, 0], tf.int64), tf.cast(epoch, tf.int64)
    )


def paired_dataset(
    images,
    identities,
    attributes,
    batch_size,
    degrade_fn,
    seed=0,
    start_epoch=0,
    num_epochs=1,
    shuffle=True,
    drop_remainder=True,
):
    """Batches of (HQ, degraded LQ) pairs from in-memory arrays.

    Args:
        images: `(N, H, W, 3)` uint8 RGB.
        identities: `(N,)` int class indices.
        attributes: `(N, A)` ints in {-1, 0, 1}, or None.
        batch_size: pairs per batch (global batch under a strategy).
        degrade_fn: `fn(images float32 (B, H, W, 3), seed int64 [2]) -> images`.
        seed: base seed of the order and the degradations.
        start_epoch, num_epochs: the stream covers epochs
            `[start_epoch, start_epoch + num_epochs)`, back to back.
        shuffle: reshuffle every epoch (a stateless permutation per epoch).
        drop_remainder: drop each epoch's last partial batch.

    Returns:
        A `tf.data.Dataset` of paired batches, sharded by data under
        multi-worker training.
    """
    count = len(images)
    if count == 0:
        raise ValueError("`images` is empty: there is nothing to train on.")
    if len(identities) != count or (attributes is not None and len(attributes) != count):
        raise ValueError(
            "`images`, `identities` and `attributes` must have one entry per image. "
            f"Received: {count} images, {len(identities)} identities, "
            f"{None if attributes is None else len(attributes)} attribute rows"
        )
    if batch_size > count and drop_remainder:
        raise ValueError(
            f"`batch_size` is larger than the dataset ({count} images). "
            f"Received: batch_size={batch_size}"
        )
    images = tf.constant(images)
    identities = tf.constant(identities, tf.int32)
    if attributes is not None:
        attributes = tf.constant(attributes, tf.int32)

    def epoch_batches(epoch):
        epoch_seed = _epoch_seed(seed, epoch)
        indices = tf.data.Dataset.range(count)
        if shuffle:
            permutation_seed = tf.random.experimental.stateless_fold_in(epoch_seed, -1)
            indices = indices.map(
                lambda i: tf.random.experimental.index_shuffle(i, permutation_seed, count - 1)
            )
        batches = indices.batch(batch_size, drop_remainder=drop_remainder).enumerate()
        return batches.map(
            lambda batch_index, batch: _make_pair(
                batch, batch_index, epoch_seed, images, identities, attributes, degrade_fn
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    return _epochs(start_epoch, num_epochs, epoch_batches)


def _make_pair(indices, batch_index, epoch_seed, images, identities, attributes, degrade_fn):
    hq = tf.cast(tf.gather(images, indices), tf.float32)
    lq = degrade_fn(hq, tf.random.experimental.stateless_fold_in(epoch_seed, batch_index))
    targets = {"identity": tf.gather(identities, indices)}
    if attributes is not None:
        targets["attributes"] = tf.gather(attributes, indices)
    return {"hq": hq, "lq": lq}, targets


def paired_stream(
    epoch_faces,
    num_examples,
    batch_size,
    degrade_fn,
    seed=0,
    start_epoch=0,
    num_epochs=1,
):
    """Batches of (HQ, degraded LQ) pairs from a streaming source.

    Every epoch has `num_examples // batch_size` batches, the same as the
    arrays with `drop_remainder`. A source that drops images (undecodable
    ones) would end an epoch early and shift every later epoch; instead the
    epoch is topped up from its own start, so the step count and the epoch
    boundaries never move.

    Args:
        epoch_faces: `fn(epoch_seed int64 [2]) -> tf.data.Dataset` of
            `(image uint8 (H, W, 3), identity int32, attributes int32 (A,))`,
            one epoch in that epoch's order, with static image shapes.
        num_examples: the images in an epoch (before any are dropped).
        batch_size: pairs per batch (global batch under a strategy).
        degrade_fn: `fn(images float32 (B, H, W, 3), seed int64 [2]) -> images`.
        seed: base seed of the order and the degradations.
        start_epoch, num_epochs: the stream covers epochs
            `[start_epoch, start_epoch + num_epochs)`, back to back.

    Returns:
        A `tf.data.Dataset` of paired batches, like `paired_dataset`'s.
    """
    if num_examples < batch_size:
        raise ValueError(
            f"`batch_size` is larger than the dataset ({num_examples} images). "
            f"Received: batch_size={batch_size}"
        )
    steps = num_examples // batch_size

    def epoch_batches(epoch):
        epoch_seed = _epoch_seed(seed, epoch)
        faces = epoch_faces(epoch_seed).repeat(2).take(steps * batch_size)
        batches = faces.batch(batch_size, drop_remainder=True).enumerate()
        return batches.map(
            lambda batch_index, batch: _pair_batch(*batch, batch_index, epoch_seed, degrade_fn),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    return _epochs(start_epoch, num_epochs, epoch_batches)


def _pair_batch(images, identities, attributes, batch_index, epoch_seed, degrade_fn):
    hq = tf.cast(images, tf.float32)
    lq = degrade_fn(hq, tf.random.experimental.stateless_fold_in(epoch_seed, batch_index))
    return {"hq": hq, "lq": lq}, {"identity": identities, "attributes": attributes}


def _epochs(start_epoch, num_epochs, epoch_batches):
    """The batches of epochs `[start_epoch, start_epoch + num_epochs)`, back to back.

    Sharded by data under multi-worker training; deterministic order.
    """
    dataset = tf.data.Dataset.range(start_epoch, start_epoch + num_epochs).flat_map(
        epoch_batches
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
