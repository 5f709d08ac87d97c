# Stage: gene_models. Placeholder until the stage lands; defines gene_models_targets().


def gene_models_targets():
    return []
