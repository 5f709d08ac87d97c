# Stage: heterogeneity. Placeholder until the stage lands; defines heterogeneity_targets().


def heterogeneity_targets():
    return []
