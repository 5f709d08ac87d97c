# Stage: spatial_validation. Placeholder until the stage lands; defines spatial_validation_targets().


def spatial_validation_targets():
    return []
