# Stage: demo_cohort. Placeholder until the stage lands; defines demo_cohort_targets().


def demo_cohort_targets():
    return []
