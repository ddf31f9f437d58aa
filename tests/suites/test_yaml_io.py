"""YAML 1.2 floats in manifests and hyper-parameter files (PyYAML alone reads 1e-3 as a string)."""

from suites.yaml_io import load_yaml


def test_scientific_literals_are_floats() -> None:
    data = load_yaml("a: 1e-3\nb: 1.0e-3\nc: -2E+4\nd: .5\ne: 0.01\nf: .inf")
    assert data == {"a": 0.001, "b": 0.001, "c": -20000.0, "d": 0.5, "e": 0.01, "f": float("inf")}
    assert all(isinstance(v, float) for v in data.values())


def test_other_scalars_unchanged() -> None:
    data = load_yaml("i: 5\nj: 1_000\nk: x1e3\nl: true\nm: null\nn: '1e-3'\no: [1, 2.5]")
    assert data == {
        "i": 5,
        "j": 1000,
        "k": "x1e3",
        "l": True,
        "m": None,
        "n": "1e-3",
        "o": [1, 2.5],
    }
