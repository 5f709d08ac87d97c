# Target function of heterogeneity.smk, kept in its own file because `snakemake --lint`
# wants functions and rules apart. Traits and their checks: emo.workflow.plan.


def _het_trait_out(name):
    return f"{HET_DIR}/traits/{{trait}}/{name}"


def heterogeneity_targets():
    entropy = ([f"{HET_DIR}/survival/composition_entropy/{name}" for name in ("cox.tsv", "logrank.tsv", "km.png")]
               if PLAN.survival_entropy else [])
    if not HET["enabled"]:
        return entropy
    targets = entropy + [f"{HET_DIR}/hti.tsv", f"{HET_DIR}/heterogeneity_maps.png"]
    targets += expand(f"{HET_DIR}/traits/{{trait}}/auc.tsv", trait=HET_TRAITS)
    if SURV["enabled"]:
        targets += [f"{HET_DIR}/survival/cox.tsv", f"{HET_DIR}/survival/logrank.tsv", f"{HET_DIR}/survival/km.png"]
    return targets
