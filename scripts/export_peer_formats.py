"""Entry script of rule export_peer_formats: every slide's stores in each configured peer
layout (library: emo.interop)."""

import emo.smk
from emo.interop import EXPORT_ROOT, export_slide

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    sm = snakemake  # noqa: F821
    samples = sm.params.samples
    for n, (sample, tiles, features) in enumerate(zip(samples, sm.input.tiles, sm.input.features), 1):
        for fmt in sm.params.formats:
            export_slide(fmt, sample, tiles, features, EXPORT_ROOT, sm.params.encoder, sm.params.code_version)
        log.info("[%d/%d] exported %s (%s)", n, len(samples), sample, ", ".join(sm.params.formats))
