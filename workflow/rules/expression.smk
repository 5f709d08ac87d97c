# Stage: expression. Placeholder until the stage lands; defines expression_targets().


def expression_targets():
    return []
