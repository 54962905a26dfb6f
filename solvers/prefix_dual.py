"""PLACEHOLDER"""
def prefix_dual(*a, **k):
    raise NotImplementedError
def prefix_dual_numpy(*a, **k):
    raise NotImplementedError
