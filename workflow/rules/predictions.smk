# Stage: predictions. Placeholder until the stage lands; defines predictions_targets().


def predictions_targets():
    return []
