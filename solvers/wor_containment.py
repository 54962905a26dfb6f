"""PLACEHOLDER"""
def wor_containment(*a, **k):
    raise NotImplementedError
def wor_containment_prefixes(*a, **k):
    raise NotImplementedError
