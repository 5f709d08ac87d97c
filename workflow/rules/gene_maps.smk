# Stage: gene_maps. Per-slide maps of the tile-level predictions of config maps.genes over
# the H&E thumbnail (colour bar, scale bar), for maps.samples (or maps.n_samples slides
# spread over the sheet); registered in the report. Off while maps.genes is empty. The
# genes need tile predictions (predictions.tile_genes), checked here before any job.
#   results/maps/{encoder}/{sample}.png

from emo import gene_maps as _gene_maps

MAPS = config["maps"]
MAP_GENES = _gene_maps.check_map_genes(MAPS, config["predictions"]["tile_genes"],
                                       PLAN.input_genes if MAPS["genes"] else None)
MAP_SAMPLES = _gene_maps.map_samples(MAPS, SAMPLE_NAMES) if MAP_GENES else []


# (a lambda: `snakemake --lint` flags `def` beside rules)
gene_maps_targets = lambda: [f"results/maps/{ENCODER}/{s}.png" for s in MAP_SAMPLES]  # noqa: E731


rule gene_maps:
    input:
        slide=slide_path,
        tiles=encoder_tile_store,
        predictions="results/predictions/{encoder}/slides/{sample}.h5",
    output:
        png=report("results/maps/{encoder}/{sample}.png", caption="../report/gene_maps.rst", category="Gene maps",
                   labels={"slide": "{sample}", "encoder": "{encoder}"}),
    params:
        genes=MAP_GENES,
        maps={k: MAPS[k] for k in ("thumbnail_px",)},
        code_version=script_version("gene_maps.py"),
    log:
        log_path("gene_maps", "encoder", "sample"),
    benchmark:
        benchmark_path("gene_maps", "encoder", "sample")
    conda:
        "../../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    script:
        script_path("gene_maps.py")
