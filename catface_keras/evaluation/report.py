"""Plain-text tables of evaluation metrics for the terminal."""

PAIR_KINDS = (("hq_hq", "HQ-HQ"), ("lq_lq", "LQ-LQ"), ("hq_lq", "HQ-LQ"))


def format_stage_table(metrics):
    """A table of `{"stage1": {...}, ...}` metrics, one column group per stage."""
    stages = sorted(metrics)
    header = "pairs".ljust(8) + "".join(
        f"{stage + ' acc':>14}{stage + ' TAR@1e-2':>18}" for stage in stages
    )
    lines = ["Verification on held-out identities", header, "-" * len(header)]
    for key, label in PAIR_KINDS:
        row = label.ljust(8)
        for stage in stages:
            result = metrics[stage]["verification"][key]
            row += f"{result['accuracy']:>14.3f}{result['tar_at_far_1e-2']:>18.3f}"
        lines.append(row)
    names = list(metrics[stages[0]]["attributes"])
    header = "attribute".ljust(14) + "".join(f"{stage + ' HQ':>12}{stage + ' LQ':>12}" for stage in stages)
    lines += ["", "Attribute accuracy (held-out)", header, "-" * len(header)]
    for name in names:
        row = name.ljust(14)
        for stage in stages:
            row += f"{metrics[stage]['attributes'][name]:>12.3f}"
            row += f"{metrics[stage]['attributes_lq'][name]:>12.3f}"
        lines.append(row)
    return "\n".join(lines)
