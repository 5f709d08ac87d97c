"""Snakemake entry script of rule ``extract_features``: the feature store of one slide, or
of a batch of slides with one encoder load (config ``slide_batches``)."""

import emo.smk

with emo.smk.rule_logging(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    from emo.features import extract_slides

    sm = snakemake  # noqa: F821
    params = sm.params
    batch = emo.smk.job_slides(sm, inputs=("slide", "tiles"), outputs=("features",))
    for slide in batch:
        slide["mpp"] = params.mpp[slide["sample"]]
    with emo.smk.isolated_batch(sm, batch, inputs=("slide", "tiles"), outputs=("features",)) as slides:
        if slides:
            extract_slides(
                slides,
                encoder=sm.wildcards.encoder,
                weights=params.weights or None,
                batch_size=params.batch_size,
                num_workers=params.num_workers,
                device=params.device,
                precision=params.precision,
                threads=max(1, sm.threads - params.num_workers),
                stain_method=params.stain_method,
                geometry=params.geometry,
                scale_tolerance=params.scale_tolerance,
                code_version=params.code_version,
            )
