"""Snakemake entry script of rule ``extract_features``: one slide's feature store."""

import emo.smk

with emo.smk.rule_logging(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    from emo.features import extract_slide

    params = snakemake.params  # noqa: F821
    extract_slide(
        sample=snakemake.wildcards.sample,  # noqa: F821
        slide_path=snakemake.input.slide,  # noqa: F821
        tile_store_path=snakemake.input.tiles,  # noqa: F821
        out_path=snakemake.output.features,  # noqa: F821
        encoder=snakemake.wildcards.encoder,  # noqa: F821
        weights=params.weights or None,
        batch_size=params.batch_size,
        num_workers=params.num_workers,
        device=params.device,
        precision=params.precision,
        threads=max(1, snakemake.threads - params.num_workers),  # noqa: F821
        stain_method=params.stain_method,
        mpp=params.mpp,
        code_version=params.code_version,
    )
