"""PLACEHOLDER"""
def optimal_acceptance(p, q, n, sampling="iid", method="auto"):
    raise NotImplementedError
