# Stage: tumour_regions. A tumour/normal tile classifier trained from region annotations
# (QuPath GeoJSON, one file per slide) on the annotated slides' frozen tile features and
# applied to every slide (docs/tumour_regions.md):
#   results/tumour_regions/{encoder}/classifier.h5, training.tsv   (rule tumour_classifier)
#   results/tumour_regions/{encoder}/tiles.h5, slides.tsv          (rule tumour_tiles)
#   results/tumour_regions/{encoder}/composition.tsv               (tumour_tiles, with composition)
#   results/tumour_regions/{encoder}/tumour_maps.png               (rule tumour_maps)
# gene_models.tile_selection: tumour and predictions.patient_slides: largest_tumour read
# these (gene_models.smk, predictions.smk).

TUMOUR = config["tumour_regions"]
TUMOUR_ANNOTATIONS = PLAN.tumour_annotations  # {sample: file}; {} when disabled
TUMOUR_ANNOTATED = sorted(TUMOUR_ANNOTATIONS)


# (a lambda: `snakemake --lint` flags `def` beside rules)
tumour_regions_targets = lambda: [  # noqa: E731
    f"results/tumour_regions/{ENCODER}/{name}" for name in ("training.tsv", "slides.tsv", "tumour_maps.png")
    + (("composition.tsv",) if TUMOUR["composition"] else ())
] if TUMOUR["enabled"] else []


rule tumour_classifier:
    input:
        annotations=[TUMOUR_ANNOTATIONS[s] for s in TUMOUR_ANNOTATED],
        features=expand("results/features/{{encoder}}/{sample}.h5", sample=TUMOUR_ANNOTATED),
        tiles=lambda wc: [PLAN.tile_store(wc.encoder, s) for s in TUMOUR_ANNOTATED],
    output:
        model="results/tumour_regions/{encoder}/classifier.h5",
        table="results/tumour_regions/{encoder}/training.tsv",
    params:
        samples=TUMOUR_ANNOTATED,
        # what the job reads (not the folder: the files are its inputs; nor the figure's setting)
        settings={k: v for k, v in TUMOUR.items() if k not in ("enabled", "annotations", "figure_slides")},
        code_version=script_version("tumour_classifier.py"),
    log:
        log_path("tumour_classifier", "encoder"),
    benchmark:
        benchmark_path("tumour_classifier", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: 2000 + 2 * len(input.features),
        runtime=30,
    script:
        script_path("tumour_classifier.py")


rule tumour_tiles:
    input:
        model="results/tumour_regions/{encoder}/classifier.h5",
        features=expand("results/features/{{encoder}}/{sample}.h5", sample=SAMPLE_NAMES),
    output:
        tiles="results/tumour_regions/{encoder}/tiles.h5",
        slides="results/tumour_regions/{encoder}/slides.tsv",
        # tumour_regions.composition: per-slide class fractions and composition entropy
        **({"composition": "results/tumour_regions/{encoder}/composition.tsv"} if TUMOUR["composition"] else {}),
    params:
        samples=SAMPLE_NAMES,
        sample_patient=PLAN.sample_patient,
        threshold=TUMOUR["threshold"],
        code_version=script_version("tumour_tiles.py"),
    log:
        log_path("tumour_tiles", "encoder"),
    benchmark:
        benchmark_path("tumour_tiles", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    script:
        script_path("tumour_tiles.py")


rule tumour_maps:
    input:
        tiles="results/tumour_regions/{encoder}/tiles.h5",
        slides_table="results/tumour_regions/{encoder}/slides.tsv",
        slides=[PLAN.slide(s) for s in SAMPLE_NAMES],
    output:
        figure=report("results/tumour_regions/{encoder}/tumour_maps.png", caption="../report/tumour_maps.rst",
                      category="Tumour regions", labels={"figure": "tumour maps", "encoder": "{encoder}"}),
    params:
        samples=SAMPLE_NAMES,
        annotated=TUMOUR_ANNOTATED,
        figure_slides=TUMOUR["figure_slides"],
        code_version=script_version("tumour_maps.py"),
    log:
        log_path("tumour_maps", "encoder"),
    benchmark:
        benchmark_path("tumour_maps", "encoder")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        script_path("tumour_maps.py")
