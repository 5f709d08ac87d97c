# Target function of clinical_classifiers.smk, kept in its own file because `snakemake --lint`
# wants functions and rules apart.


def clinical_classifiers_targets():
    if not PLAN.clinical_classifiers_run:  # disabled, or no clinical table configured (it is optional)
        return []
    return [f"{CLF_DIR}/metrics.tsv", f"{CLF_DIR}/labels.tsv", f"{CLF_DIR}/roc.png", f"{CLF_DIR}/confusion.png"]
