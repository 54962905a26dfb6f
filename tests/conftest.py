import os

from hypothesis import HealthCheck, settings

# "ci" keeps the whole suite within a few minutes on 2 cores; "thorough" is for hunting
# counterexamples locally: HYPOTHESIS_PROFILE=thorough pytest tests/test_optimal_acceptance.py
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
