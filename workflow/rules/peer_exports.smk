# Stage: peer_exports. The tile and feature stores in the layouts CLAM, STAMP and TRIDENT
# read (config export.formats; docs/interop.md): results/export/{format}/{encoder}/.

from emo.interop import EXPORT_ROOT, export_paths  # noqa: E402

EXPORT = config["export"]


# One job writes every slide: the export only copies arrays (seconds per slide), so one
# job per slide would cost more in start-up than in work.
_export_outputs = lambda: [str(path) for fmt in EXPORT["formats"] for sample in SAMPLE_NAMES  # noqa: E731
                           for path in export_paths(EXPORT_ROOT, fmt, ENCODER, sample).values()]
peer_exports_targets = lambda: _export_outputs() if EXPORT["formats"] else []  # noqa: E731


if EXPORT["formats"]:

    rule export_peer_formats:
        input:
            tiles=[PLAN.tile_store(ENCODER, s) for s in SAMPLE_NAMES],
            features=expand("results/features/{encoder}/{sample}.h5", encoder=ENCODER, sample=SAMPLE_NAMES),
        output:
            _export_outputs(),
        params:
            samples=SAMPLE_NAMES,
            formats=EXPORT["formats"],
            encoder=ENCODER,
            code_version=script_version("export_peer_formats.py"),
        log:
            log_path("export_peer_formats"),
        benchmark:
            benchmark_path("export_peer_formats")
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        script:
            script_path("export_peer_formats.py")
