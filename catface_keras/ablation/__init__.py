"""`catface ablate`: the paper's ablation tables over seeds, with paired intervals."""
