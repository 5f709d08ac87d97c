# Stage: feature_stores. Placeholder until the stage lands; defines feature_stores_targets().


def feature_stores_targets():
    return []
