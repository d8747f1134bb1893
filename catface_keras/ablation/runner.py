"""Training every row of an ablation table for every seed, resumably.

Layout of the output directory:

    stage1/<variant>/seed<k>/    stage-1 runs (shared by rows with equal stage-1 changes)
    teacher/<variant>/seed<k>/   A-SKD teachers
    stage2/<row>/seed<k>/        stage-2 runs
    results/<row>/seed<k>.json   one finished row and seed (written atomically)
    table.md, table.csv, results.json, plot.png

A row and seed whose result file exists is not trained again; a run killed
half-way resumes from its last epoch (the trainer's backups).
"""

import hashlib
import json
import pathlib
import time

import keras

from catface_keras import trainer
from catface_keras.ablation.budgets import MAX_SEEDS, apply_changes, budget_changes
from catface_keras.ablation.metrics import row_metrics
from catface_keras.ablation.report import budget_lines, write_report
from catface_keras.ablation.tables import TABLES, select_rows
from catface_keras.atomic_files import write_text_atomically
from catface_keras.evaluation.protocol_data import pairs_file_data
from catface_keras.run_directory import STAGE1, STAGE2


class EpochProgress(keras.callbacks.Callback):
    """One line per epoch, prefixed with the row and seed."""

    def __init__(self, prefix, epochs, progress):
        super().__init__()
        self.prefix, self.epochs, self.progress = prefix, epochs, progress
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss", float("nan"))
        elapsed = time.monotonic() - self.started
        self.progress(
            f"{self.prefix}   epoch {epoch + 1}/{self.epochs}  loss {loss:.3f}  {elapsed:.0f} s"
        )


def _variant_name(changes):
    if not changes:
        return "default"
    digest = hashlib.sha1(json.dumps(changes, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def _finished_metrics(run_dir, stage_key, model_file, backup_dir):
    """The saved metrics of a finished stage in `run_dir`, else None."""
    metrics = run_dir / "metrics.json"
    if (run_dir / model_file).exists() and not (run_dir / backup_dir).exists() and metrics.exists():
        saved = json.loads(metrics.read_text())
        return saved.get(stage_key)
    return None


class TableRunner:
    """Runs one table; see `run_table`."""

    def __init__(self, table, config, seeds, out_dir, budget, progress, seed_offset=0,
                 rows=None, pairs=None):
        if table not in TABLES:
            raise ValueError(f"`table` must be one of {sorted(TABLES)}. Received: table={table!r}")
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
            raise ValueError(
                f"`seeds` must be an int in [1, {MAX_SEEDS}]. Received: seeds={seeds!r}"
            )
        self.trainer = trainer
        self.table = TABLES[table]
        # Rows outside `rows` are not trained; their results from earlier runs still show.
        self.selected = select_rows(self.table, rows).rows
        self.budget = budget_changes(config, budget)
        self.base = apply_changes(config, self.budget)
        self.pairs = pairs
        self._pairs_data = {}
        self.seeds = seeds
        self.seed_offset = seed_offset
        self.out = pathlib.Path(out_dir).resolve()
        self.progress = progress

    def _seeded(self, config, seed):
        return config.replace("train", seed=self.base.train.seed + self.seed_offset + seed)

    def _stage1(self, changes, seed, prefix, kind="stage1", teacher_changes=None):
        """`(stage-1 metrics, model path, seconds trained here)` of a stage-1 variant."""
        config = self._seeded(apply_changes(self.base, changes), seed)
        spent = 0.0
        if teacher_changes is not None:
            _, teacher_path, spent = self._stage1(
                teacher_changes, seed, prefix + " [teacher]", kind="teacher"
            )
            config = config.replace("loss", teacher=str(teacher_path))
        key = {"changes": changes, "teacher": teacher_changes}
        run_dir = self.out / kind / _variant_name(key if teacher_changes else changes) / f"seed{seed}"
        layout = STAGE1
        metrics, seconds = self._trained(
            run_dir, "stage1", kind, prefix, config.train.epochs,
            lambda callbacks: self.trainer.run_stage1(
                config, run_dir, verbose=0, callbacks=callbacks
            ),
        )
        return metrics, run_dir / layout.model_file, spent + seconds

    def _pair_metrics(self, model_path, config):
        """Verification of the model file on `--pairs-file` (clean, degraded, mixed)."""
        from catface_keras.evaluation.protocols import evaluate
        from catface_keras.models.loading import load_model

        model = load_model(model_path)
        size = int(model.image_size)
        if size not in self._pairs_data:
            self._pairs_data[size] = pairs_file_data(*self.pairs, size)
        results, _ = evaluate(model, self._pairs_data[size], ("verification",),
                              degradation=config.degrade, seed=config.evaluation.seed,
                              batch_size=config.evaluation.batch_size,
                              flip=config.evaluation.flip)
        return results

    def _stage2(self, row, seed, prefix):
        stage1_metrics, stage1_path, spent = self._stage1(row.stage1, seed, prefix)
        config = self._seeded(apply_changes(apply_changes(self.base, row.stage1), row.stage2), seed)
        run_dir = self.out / "stage2" / row.slug / f"seed{seed}"
        metrics, seconds = self._trained(
            run_dir, "stage2", "stage 2", prefix, config.stage2.epochs,
            lambda callbacks: self.trainer.run_stage2(
                config, run_dir, init=stage1_path, verbose=0, callbacks=callbacks
            ),
        )
        return metrics, run_dir / STAGE2.model_file, spent + seconds

    def _trained(self, run_dir, stage, label, prefix, epochs, train):
        """`(metrics, seconds trained here)` of the `stage` run in `run_dir`.

        A run that finished before is read back, not trained again; otherwise
        `train(callbacks)` runs it (returning the trainer's `(model, metrics)`).
        """
        layout = STAGE1 if stage == "stage1" else STAGE2
        metrics = _finished_metrics(run_dir, stage, layout.model_file, layout.backup_dir)
        if metrics is not None:
            return metrics, 0.0
        self.progress(f"{prefix} training {label} ({run_dir.relative_to(self.out)})")
        started = time.monotonic()
        _, saved = train([EpochProgress(prefix, epochs, self.progress)])
        return saved[stage], time.monotonic() - started

    def result_path(self, row, seed):
        return self.out / "results" / row.slug / f"seed{seed}.json"

    def run_row(self, row, seed, row_index):
        prefix = (
            f"[{self.table.name}] row {row_index + 1}/{len(self.table.rows)} {row.name!r} "
            f"seed {seed + 1}/{self.seeds}:"
        )
        path = self.result_path(row, seed)
        if path.exists():
            self.progress(f"{prefix} done before, kept ({path.relative_to(self.out)})")
            return json.loads(path.read_text())
        started = time.monotonic()
        if row.stage2 is None:
            stage_metrics, model_path, spent = self._stage1(
                row.stage1, seed, prefix, teacher_changes=row.teacher
            )
        else:
            stage_metrics, model_path, spent = self._stage2(row, seed, prefix)
        pair_metrics = None
        if self.pairs is not None:
            pair_metrics = self._pair_metrics(model_path, self._seeded(self.base, seed))
        record = {
            "table": self.table.name,
            "row": row.name,
            "seed": seed,
            "train_seed": self.base.train.seed + self.seed_offset + seed,
            "metrics": row_metrics(stage_metrics, pairs_metrics=pair_metrics),
            "heldout": stage_metrics,
            "pairs_file": None if pair_metrics is None else {
                "path": str(self.pairs[0]), "verification": pair_metrics["verification"]},
            "train_seconds": spent,
            "wall_seconds": time.monotonic() - started,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(json.dumps(record, indent=2, sort_keys=True) + "\n", path)
        self.progress(
            f"{prefix} finished in {record['wall_seconds']:.0f} s; degraded TAR@FAR=1e-2 "
            f"{record['metrics']['degraded/tar_at_far_1e-2']:.3f}"
        )
        return record

    def run(self, train=True):
        records = []
        for seed in range(self.seeds):
            for index, row in enumerate(self.table.rows):
                if not train or row not in self.selected:
                    path = self.result_path(row, seed)
                    if path.exists():
                        records.append(json.loads(path.read_text()))
                    continue
                try:
                    records.append(self.run_row(row, seed, index))
                except Exception as error:  # one failed variant must not lose the others
                    self.progress(
                        f"[{self.table.name}] {row.name!r} seed {seed + 1}: FAILED "
                        f"({type(error).__name__}: {error}); the table shows it as missing"
                    )
        return records


def run_table(
    table, config, seeds, out_dir, budget="small", progress=print, seed_offset=0, train=True,
    rows=None, pairs=None,
):
    """Trains and evaluates every row of `table` for `seeds` seeds, then writes the report.

    Args:
        table: a key of `TABLES`.
        config: the user's `ExperimentConfig` (data, model, schedule).
        seeds: number of seeds; seed k trains with `train.seed + seed_offset + k`
            on the same data and held-out pairs.
        out_dir: output directory (see the module docstring).
        budget: `"tiny"`, `"small"`, `"full"` or a `{section: {key: value}}` dict.
        progress: called with one line of text per event.
        train: False writes the report from the rows and seeds finished so
            far, training nothing.
        rows: names (or slugs) of the rows to train, None for all; the other rows'
            results finished before still appear in the table.
        pairs: optional `(pairs_file, root)` (see `pairs_file_data`): each row's model is
            also scored on those pairs.

    Returns:
        The summary written to `results.json`.
    """

    runner = TableRunner(table, config, seeds, out_dir, budget, progress, seed_offset, rows, pairs)
    for line in budget_lines(runner.budget):
        progress(f"[{table}] budget {budget if isinstance(budget, str) else 'custom'}: {line}")
    records = runner.run(train)
    if not train and not records:
        raise ValueError(
            f"{runner.out} holds no finished row of the {table} table (results/ROW/seedK.json); "
            "nothing to report. Run without --report-only to train the rows."
        )
    summary = write_report(runner.table, records, runner.out, runner.budget)
    progress(f"[{table}] wrote {runner.out / 'table.md'}")
    return summary
