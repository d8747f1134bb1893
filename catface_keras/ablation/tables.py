"""The rows of each ablation table (docs/PAPER.md sections 3, 5 and 9; the paper's Tables II, VIII).

A row is a variant of the user's config: `stage1` holds the config changes of
its stage-1 run (`{section: {key: value}}`), `stage2` those of its stage-2 run
on top of that stage-1 model, or None when the row reports stage 1 itself.
Rows with equal stage-1 changes share one stage-1 model per seed. A row with
`teacher` first trains an A-SKD teacher (stage 1 on HQ images, CBAM-iResNet)
with those stage-1 changes and distils the row's model towards it.
"""

import dataclasses
from typing import Optional

from catface_keras.soft_biometrics import PAPER_ATTRIBUTES

ASKD_MODEL = {"model": {"block_attention": "cbam"}}


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    stage1: dict = dataclasses.field(default_factory=dict)
    stage2: Optional[dict] = None
    teacher: Optional[dict] = None

    @property
    def slug(self):
        return "".join(c if c.isalnum() else "_" for c in self.name.lower()).strip("_")


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    rows: tuple
    reference: str  # the row every other row is compared with, seed by seed
    caption: str


def _distillation(kind, weight=1.0):
    return {"loss": {"distillation": kind, "distillation_weight": weight}}


def _fusion(kind, **options):
    return {"stage2": {"fusion": kind, **options}}


TABLES = {
    "distillation": Table(
        "distillation",
        (
            Row("none", _distillation("cosine", 0.0)),
            Row("feature L2", _distillation("feature_l2")),
            Row("feature cosine", _distillation("feature_cosine")),
            Row(
                "A-SKD",
                {
                    **ASKD_MODEL,
                    "loss": {
                        "distillation": "askd",
                        "distillation_weight": 5.0,
                        "lq_images": "askd_low_resolution",
                    },
                },
                teacher={**ASKD_MODEL, "loss": {"distillation": "askd", "train_on": "hq"}},
            ),
            Row("SA L2", _distillation("l2")),
            Row("SA cosine", _distillation("cosine")),
        ),
        reference="none",
        caption="Stage 1 with each distillation (feature maps at loss.distillation_stage; "
        "A-SKD: CBAM-iResNet student on its low-resolution copies, frozen HQ teacher, "
        "weight 5; SA: the paper's self-attention distillation).",
    ),
    "fusion": Table(
        "fusion",
        (
            Row("stage 1"),
            Row("concat", stage2=_fusion("concat")),
            Row("add", stage2=_fusion("add")),
            Row("SE", stage2=_fusion("se")),
            Row("cross-attention", stage2=_fusion("cross_attention")),
            Row("FFM", stage2=_fusion("ffm")),
            Row("CATF", stage2=_fusion("catf")),
            Row("CATF random init", stage2=_fusion("catf", identity_init=False)),
        ),
        reference="stage 1",
        caption="Stage 2 with each fusion module on the same seed's stage-1 model.",
    ),
    "attributes": Table(
        "attributes",
        tuple(
            Row(
                f"{count} SB",
                {
                    "model": {"attribute_names": list(PAPER_ATTRIBUTES[: max(count, 1)])},
                    **({"loss": {"sb_weight": 0.0}} if count == 0 else {}),
                },
                stage2=_fusion("catf"),
            )
            for count in range(len(PAPER_ATTRIBUTES) + 1)
        ),
        reference="0 SB",
        caption="CATFace (stage 2, CATF) with the first k soft-biometric attributes "
        f"of {', '.join(PAPER_ATTRIBUTES)}; 0: SB loss weight 0.",
    ),
    "catf-parts": Table(
        "catf-parts",
        (
            Row("CATF", stage2=_fusion("catf")),
            Row("w/o MFFNL", stage2=_fusion("catf", use_mffnl=False)),
            Row("w/o CAF", stage2=_fusion("catf", use_caf=False)),
        ),
        reference="CATF",
        caption="CATF without its MFFNL or CAF part (Table VIII).",
    ),
    "distillation-weight": Table(
        "distillation-weight",
        tuple(Row(f"lambda_KD={w:g}", _distillation("cosine", w)) for w in (0.0, 1.0, 3.0, 10.0)),
        reference="lambda_KD=0",
        caption="Stage 1 with the self-attention distillation weight loss.distillation_weight.",
    ),
}


def select_rows(table, names):
    """`table` with only the rows `names` (row names or their slugs), in table order.

    Raises:
        ValueError: a name that is no row of the table, naming the rows.
    """
    if names is None:
        return table
    known = {key: row for row in table.rows for key in (row.name, row.slug)}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(
            f"`rows` must name rows of the {table.name} table: "
            f"{', '.join(repr(row.name) for row in table.rows)}. Received: rows={list(names)}"
        )
    chosen = {known[name].name for name in names}
    return dataclasses.replace(table, rows=tuple(r for r in table.rows if r.name in chosen))
