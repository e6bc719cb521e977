"A toy fifth study, outside the package: `tests/test_fifth_study.py` shows a study plugs in with no edit to shared code."
