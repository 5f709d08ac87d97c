# Target function of fusion_classifiers.smk, kept in its own file because `snakemake --lint`
# wants functions and rules apart.


def fusion_classifiers_targets():
    if not PLAN.fusion_run:  # disabled, or no clinical table configured (the targets come from it)
        return []
    return [f"{FUSION_DIR}/{name}" for name in ("metrics.tsv", "summary.tsv", "targets.tsv", "attention.h5",
                                                "metrics.png", "confusion.png", "attention.png")]
