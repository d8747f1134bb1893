"""The margin head alone at many identities: dense AdaFace vs Partial FC.

One training step of the head (logits, cross-entropy, gradient of the
embeddings and of the centres, the SGD update of the centres) on a batch of
random embeddings, for each `--classes`: the dense `AdaFace` head with Keras'
SGD, and `PartialFC` (one shard: this process) at `--sample-rate` with its
own update. Prints one JSON line per size with steps/s and the bytes of
logits a step materialises. The memory of the centres themselves is in the
README's table.

    python benchmarks/partial_fc_head.py --classes 100000,1000000 --batch 256
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", default="100000,1000000")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--sample-rate", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip-dense-above", type=int, default=2_000_000,
                        help="no dense head above this many classes")
    return parser.parse_args(argv)


def head_step(head, embeddings, labels, optimizer=None):
    """A compiled step: loss, gradients, update of the centres."""
    import keras
    import tensorflow as tf

    from catface_keras.layers.partial_fc import PartialFC

    sharded = isinstance(head, PartialFC)

    @tf.function
    def step():
        centres = head.centres.value if sharded else head.kernel.value
        with tf.GradientTape() as tape:
            tape.watch([embeddings, centres])
            if sharded:
                loss = head.loss(embeddings, labels, training=True)
            else:
                logits = head(embeddings, labels, training=True)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                    labels, logits, from_logits=True))
        embedding_gradient, centre_gradient = tape.gradient(loss, [embeddings, centres])
        if sharded:
            head.apply_gradient(centre_gradient, 0.1, momentum=0.9, weight_decay=5e-4)
        else:
            optimizer.apply([centre_gradient], [head.kernel])
        return loss + tf.reduce_sum(embedding_gradient) * 0.0

    return step


def time_step(step, steps):
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step().numpy()
    return (time.perf_counter() - started) / steps


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from catface_keras.layers.adaface import AdaFace
    from catface_keras.layers.partial_fc import PartialFC, sampled_columns

    keras.utils.set_random_seed(0)
    for classes in (int(c) for c in args.classes.split(",")):
        embeddings = tf.random.normal((args.batch, args.dim)) * 20
        labels = tf.random.uniform((args.batch,), 0, classes, tf.int32)
        result = {"classes": classes, "batch": args.batch, "dim": args.dim}
        heads = {"partial_fc": PartialFC(classes, sample_rate=args.sample_rate)}
        if classes <= args.skip_dense_above:
            heads["dense"] = AdaFace(classes)
        for name, head in heads.items():
            head.build((None, args.dim))
            optimizer = None
            if name == "dense":
                optimizer = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4)
                optimizer.build([head.kernel])
            seconds = time_step(head_step(head, embeddings, labels, optimizer), args.steps)
            columns = classes if name == "dense" else sampled_columns(classes, args.sample_rate)
            result[name] = {
                "step_s": round(seconds, 4),
                "embeddings_per_s": round(args.batch / seconds, 1),
                "logits_mb": round(args.batch * columns * 4 / 1e6, 1),
            }
            if name == "partial_fc":
                result[name]["sample_rate"] = args.sample_rate
        if "dense" in result:
            result["speedup"] = round(result["dense"]["step_s"] / result["partial_fc"]["step_s"], 2)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
