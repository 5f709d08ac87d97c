# Stage: heterogeneity (Levy-Jurgenson et al. 2020). Per-trait binary tile classifiers on
# frozen tile features, tensor molecular cartographies, the heterogeneity index HTI and
# its link to survival. See docs/heterogeneity.md.

import re as _het_re

HET = config["heterogeneity"]
SURV = config["survival"]
HET_DIR = f"results/heterogeneity/{ENCODER}"
HET_TRAITS = PLAN.heterogeneity_traits
PLAN.check_survival_clinical()  # before any job: one row per patient, numeric survival columns


include: "heterogeneity_functions.smk"


wildcard_constraints:
    trait="|".join(_het_re.escape(t) for t in HET_TRAITS) or "NO_TRAIT",

rule heterogeneity_splits:
    output:
        "results/heterogeneity/splits.tsv",
    input:
        splits="results/splits/patients.tsv" if HET["test_set"] == "splits" else [],
    params:
        patients=sorted(set(SAMPLES["patient"])),
        config=HET,
        code_version=script_version("heterogeneity_splits.py"),
    log:
        log_path("heterogeneity_splits"),
    benchmark:
        benchmark_path("heterogeneity_splits")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        script_path("heterogeneity_splits.py")


rule heterogeneity_train:
    output:
        auc=_het_trait_out("auc.tsv"),
        slides=_het_trait_out("slides.tsv"),
        rounds=_het_trait_out("rounds.tsv"),
        tiles=_het_trait_out("tiles.h5"),
        models=_het_trait_out("models.pt"),
    input:
        features=expand("results/features/{encoder}/{sample}.h5", encoder=ENCODER, sample=SAMPLE_NAMES),
        expression="results/expression/prepared.h5",
        splits="results/heterogeneity/splits.tsv",
    params:
        samples=SAMPLE_NAMES,
        patients=[PLAN.sample_patient[s] for s in SAMPLE_NAMES],
        config=HET,
        device=HET["device"],
        code_version=script_version("heterogeneity_train.py"),
    log:
        log_path("heterogeneity_train", "trait"),
    benchmark:
        benchmark_path("heterogeneity_train", "trait")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, input: 4000 + 2 * len(input.features),
        runtime=120,
        **({"gpu": 1} if HET["gpu"] else {}),
    script:
        script_path("heterogeneity_train.py")


rule heterogeneity_hti:
    output:
        table=f"{HET_DIR}/hti.tsv",
        cartographies=f"{HET_DIR}/cartographies.h5",
        figure=report(f"{HET_DIR}/heterogeneity_maps.png", caption="../report/heterogeneity_maps.rst",
                      category="Heterogeneity"),
    input:
        tiles=expand(f"{HET_DIR}/traits/{{trait}}/tiles.h5", trait=HET_TRAITS),
        slides=expand(f"{HET_DIR}/traits/{{trait}}/slides.tsv", trait=HET_TRAITS),
        predictions=expand("results/predictions/{encoder}/slides/{sample}.h5", encoder=ENCODER,
                           sample=SAMPLE_NAMES)
        if HET["continuous"]["source"] == "predictions" else [],
    params:
        traits=HET_TRAITS,
        samples=SAMPLE_NAMES,
        config=HET,
        code_version=script_version("heterogeneity_hti.py"),
    log:
        log_path("heterogeneity_hti"),
    benchmark:
        benchmark_path("heterogeneity_hti")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        script_path("heterogeneity_hti.py")


rule heterogeneity_survival:
    output:
        patients=f"{HET_DIR}/survival/patients.tsv",
        km=f"{HET_DIR}/survival/km.tsv",
        logrank=f"{HET_DIR}/survival/logrank.tsv",
        cox=f"{HET_DIR}/survival/cox.tsv",
        figure=report(f"{HET_DIR}/survival/km.png", caption="../report/heterogeneity_km.rst",
                      category="Heterogeneity"),
    input:
        hti=f"{HET_DIR}/hti.tsv",
        clinical=config.get("clinical", "clinical.tsv"),
    params:
        config=SURV,
        code_version=script_version("heterogeneity_survival.py"),
        **PLAN.clinical_mapping_params,
    log:
        log_path("heterogeneity_survival"),
    benchmark:
        benchmark_path("heterogeneity_survival")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        script_path("heterogeneity_survival.py")




# Survival by the tumour-regions stage's tissue-composition entropy, beside the HTI
# (survival.composition_entropy; docs/heterogeneity.md).
rule composition_entropy_survival:
    output:
        patients=f"{HET_DIR}/survival/composition_entropy/patients.tsv",
        km=f"{HET_DIR}/survival/composition_entropy/km.tsv",
        logrank=f"{HET_DIR}/survival/composition_entropy/logrank.tsv",
        cox=f"{HET_DIR}/survival/composition_entropy/cox.tsv",
        figure=report(f"{HET_DIR}/survival/composition_entropy/km.png",
                      caption="../report/composition_entropy_km.rst", category="Heterogeneity"),
    input:
        composition=f"results/tumour_regions/{ENCODER}/composition.tsv",
        clinical=config.get("clinical", "clinical.tsv"),
    params:
        config=SURV,
        # slides whose annotations trained the composition classifier are not analysed
        training_samples=sorted(PLAN.tumour_annotations) if PLAN.survival_entropy else [],
        code_version=script_version("composition_entropy_survival.py"),
        **PLAN.clinical_mapping_params,
    log:
        log_path("composition_entropy_survival"),
    benchmark:
        benchmark_path("composition_entropy_survival")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        script_path("composition_entropy_survival.py")
