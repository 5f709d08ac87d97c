# Input and target functions of heterogeneity.smk, kept in their own file because
# `snakemake --lint` wants functions and rules apart.


def heterogeneity_traits():
    """Configured traits; null takes demo.heterogeneity_traits when the demo is enabled."""
    traits = HET.get("traits")
    if traits is None:
        demo = config.get("demo", {}) or {}
        traits = demo.get("heterogeneity_traits") if demo.get("enabled") else None
    if not traits:
        raise _HetConfigError(
            "config heterogeneity.traits: no traits given; list two or more genes of the expression matrix "
            "(e.g. [MKI67, FOXA1]) or set heterogeneity.enabled: false")
    traits = [str(t) for t in traits]
    if len(set(traits)) != len(traits) or len(traits) < 2:
        raise _HetConfigError(f"config heterogeneity.traits: {traits} must hold at least two distinct genes")
    if HET.get("ensemble_size", 3) > HET.get("rounds", 5):
        raise _HetConfigError("config heterogeneity.ensemble_size must not exceed heterogeneity.rounds")
    source = (HET.get("continuous", {}) or {}).get("source", "predictions")
    tile_genes = (config.get("predictions", {}) or {}).get("tile_genes", "all")
    if source == "predictions" and isinstance(tile_genes, list):
        missing = [t for t in traits if t not in tile_genes]
        if missing:
            raise _HetConfigError(
                f"config heterogeneity.continuous.source is 'predictions' but predictions.tile_genes lacks "
                f"{missing}; add them there or set heterogeneity.continuous.source: classifier")
    return traits

def _het_enabled():
    return bool(HET.get("enabled", True))

def _het_trait_out(name):
    return f"{HET_DIR}/traits/{{trait}}/{name}"

def heterogeneity_targets():
    if not _het_enabled():
        return []
    targets = [f"{HET_DIR}/hti.tsv", f"{HET_DIR}/heterogeneity_maps.png"]
    targets += expand(f"{HET_DIR}/traits/{{trait}}/auc.tsv", trait=HET_TRAITS)
    if SURV.get("enabled", True):
        targets += [f"{HET_DIR}/survival/cox.tsv", f"{HET_DIR}/survival/logrank.tsv", f"{HET_DIR}/survival/km.png"]
    return targets
