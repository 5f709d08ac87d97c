# Stage: gene_statistics. Placeholder until the stage lands; defines gene_statistics_targets().


def gene_statistics_targets():
    return []
