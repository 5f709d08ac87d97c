# Param, resource and target functions of slide_models.smk, kept in their own file
# because `snakemake --lint` wants functions and rules apart.


def slide_model_train_settings(wildcards):
    """The settings slide_model_train reads: folds, seed, device and the model's section."""
    return {**{k: SLIDE_MODELS[k] for k in ("folds", "seed", "device")}, wildcards.model: SLIDE_MODELS[wildcards.model]}


def slide_model_predict_settings(wildcards):
    """The settings slide_model_predict reads: seed (super-tiles), device, tile_genes and the
    model's section (architecture, bag)."""
    return {**{k: SLIDE_MODELS[k] for k in ("seed", "device", "tile_genes")},
            wildcards.model: SLIDE_MODELS[wildcards.model]}


def slide_model_mem_mb(wildcards, input):
    """Training bags of the train + tune slides stay in memory: super-tiles are small,
    tile bags are up to max_tiles x 2,048 float32 per slide (65 GB at 1,000 slides x
    8,000 tiles: use bag: supertiles there, as the paper did for the transcriptome)."""
    m = SLIDE_MODELS[wildcards.model]
    rows = m["n_supertiles"] if wildcards.model == "he2rna" and m["bag"] == "supertiles" else m["max_tiles"]
    return int(4000 + len(PLAN.model_samples) * rows * 2048 * 4 / 2**20)


def slide_models_targets(encoder=None):
    encoder = encoder or ENCODER
    targets = [f"results/slide_models/{encoder}/{model}/{name}" for model in SLIDE_MODEL_NAMES
               for name in ("patients.tsv", "pearson.tsv", "tiles.h5", "spatialisation.png", "training.tsv")]
    if SLIDE_MODELS["transfer"]["enabled"] and "he2rna" in SLIDE_MODEL_NAMES:
        targets.append(f"results/slide_models/{encoder}/he2rna/transfer.tsv")
    return targets
