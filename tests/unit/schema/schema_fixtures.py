"""Schema tests: a small schema covering every column kind and missing policy."""

from __future__ import annotations

SMALL_TOML = '''
schema_version = 1
name = "small"
description = "every column kind"
missing = ["", "NA"]
ignore = ["id"]

[label]
column = "y"
kind = "binary"
positive = ["yes"]
negative = ["no"]

[[columns]]
name = "age"
kind = "numeric"
unit = "years"
min = 0
max = 120

[[columns]]
name = "smoker"
kind = "binary"
levels = ["no", "yes"]

[[columns]]
name = "cp"
kind = "categorical"
levels = ["a", "b", "c"]
on_missing = "indicator"

[[columns]]
name = "grade"
kind = "ordinal"
levels = ["low", "mid", "high"]
missing = ["?"]
on_missing = "impute_mean"
'''
