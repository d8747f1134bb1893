"""Training budgets of `catface ablate`: config changes applied to every row.

`full` keeps the user's config; `small` and `tiny` shrink data and schedule so
that a whole table fits a CPU (`tiny`: minutes on 2 cores, a smoke run;
`small`: roughly an hour per table). The changes apply to the synthetic
source's sizes only; other sources keep their data and get the schedule.
"""

from catface_keras.config import config_from_dict, config_to_dict

# Seeds per row that `catface ablate` accepts: the paper's tables use 8; each seed trains
# every row again, so a typo like 1000 would queue weeks of training.
MAX_SEEDS = 100

BUDGETS = {
    "full": {},
    "small": {
        "data": {"num_train_identities": 120, "num_test_identities": 40,
                 "images_per_identity": 6, "test_images_per_identity": 6},
        "train": {"epochs": 6, "batch_size": 32},
        "optimizer": {"lr_milestones": [5]},
        "stage2": {"epochs": 3, "lr_milestones": [2]},
        "evaluation": {"num_pairs": 1000},
    },
    "tiny": {
        "data": {"num_train_identities": 32, "num_test_identities": 20,
                 "images_per_identity": 4, "test_images_per_identity": 6, "image_size": 32},
        "train": {"epochs": 2, "batch_size": 16},
        "optimizer": {"lr_milestones": [2]},
        "stage2": {"epochs": 1, "lr_milestones": [1]},
        "evaluation": {"num_pairs": 400},
    },
}
SYNTHETIC_ONLY = {"num_train_identities", "num_test_identities", "images_per_identity",
                  "test_images_per_identity", "image_size"}


def apply_changes(config, changes):
    """`config` with `{section: {key: value}}` applied, validated once as a whole file
    (so that checks across sections see every change together)."""
    if not changes:
        return config
    raw = config_to_dict(config)
    for section, values in changes.items():
        raw[section] = {**raw[section], **values}
    _follow_attribute_names(raw, config, changes)
    return config_from_dict(raw)


def _follow_attribute_names(raw, config, changes):
    """A change of `model.attribute_names` (the attributes table) keeps the per-attribute
    loss weights of the attributes that stay, unless the changes set the weights too."""
    names = raw["model"]["attribute_names"]
    old = list(config.model.attribute_names)
    for key in ("attribute_weights", "attribute_positive_weights"):
        weights = getattr(config.loss, key)
        if (weights is None or isinstance(weights, str) or key in changes.get("loss", {})
                or names == old):
            continue
        if all(name in old for name in names):
            raw["loss"][key] = [weights[old.index(name)] for name in names]


def budget_changes(config, budget):
    """The `{section: {key: value}}` overrides that `budget` (a name of `BUDGETS` or a
    changes dict) makes to `config`: what `catface ablate` prints and writes."""
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"`budget` must be one of {sorted(BUDGETS)}. Received: budget={budget!r}")
        budget = BUDGETS[budget]
    changes = {section: dict(values) for section, values in budget.items()}
    if config.data.source != "synthetic" and "data" in changes:
        changes["data"] = {k: v for k, v in changes["data"].items() if k not in SYNTHETIC_ONLY}
    return {k: v for k, v in changes.items() if v}


def apply_budget(config, budget):
    """`config` shrunk to `budget` (a name of `BUDGETS` or a changes dict)."""
    return apply_changes(config, budget_changes(config, budget))
