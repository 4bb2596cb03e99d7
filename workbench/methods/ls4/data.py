"""Time-series sources for LS4, offline first: seeded synthetic series with sharp transitions, real series that
ship inside installed packages (``statsmodels``), and a reader for Monash ``.tsf`` files given a local path.

Every source returns a :class:`TimeSeries`: ``x`` (n, L, C) float32, ``mask`` (n, L, C) bool (False = missing),
``t`` (L,) observation times, channel names and the normalisation applied. ``load(name, ...)`` is the one entry
point; a source whose package is missing raises an error that says what to install.

Sources (``SOURCES``):
- ``square``: square waves ±1 (random period and phase per series): a jump every half period.
- ``telegraph``: the random telegraph process (±1, switching with a per-series probability per step).
- ``sawtooth``: rising ramps with a jump down at the end of every period.
- ``sharp_mix``: an even mix of the three.
- ``co2``: Mauna Loa weekly CO₂ (``statsmodels``; its 59 missing weeks stay missing, through the mask).
- ``macrodata``: US quarterly macro series 1959-2009 (``statsmodels``), log-growth of real GDP, consumption
  and investment, plus inflation and unemployment (5 channels).
- ``sunspots``: yearly sunspot numbers 1700-2008 (``statsmodels``).
- ``tsf``: a Monash Forecasting Repository ``.tsf`` file at a local path (``tsf_path``).
Real series are cut into windows of ``length`` steps (deterministic given the seed) and standardised per channel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

SYNTHETIC = ("square", "telegraph", "sawtooth", "sharp_mix")
PACKAGED = ("co2", "macrodata", "sunspots")
SOURCES = SYNTHETIC + PACKAGED + ("tsf",)


class MissingSource(RuntimeError):
    """A data source needs a package or a file that is not here; the message says what to install or where."""


@dataclass
class TimeSeries:
    """A batch of equally long series on one time grid; missing values are False in ``mask`` (x holds 0 there)."""

    x: Tensor
    mask: Tensor
    t: Tensor
    name: str
    channels: list[str] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def length(self) -> int:
        return self.x.shape[1]

    @property
    def dim(self) -> int:
        return self.x.shape[2]

    def subset(self, index: Tensor) -> "TimeSeries":
        return TimeSeries(self.x[index], self.mask[index], self.t, self.name, self.channels, self.mean, self.std)


# -- synthetic series with sharp transitions -----------------------------------------------------------------
def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def square_wave(n: int, length: int, generator: torch.Generator, period: tuple[float, float] = (0.15, 0.5)) -> Tensor:
    """sign(sin(2π(l/P + φ))) with the period P uniform in ``period``·length and the phase φ uniform: (n, L)."""
    P = _uniform(n, period[0] * length, period[1] * length, generator)[:, None]
    phase = _uniform(n, 0.0, 1.0, generator)[:, None]
    frac = torch.remainder(torch.arange(length, dtype=torch.float64)[None] / P + phase, 1.0)
    return torch.where(frac < 0.5, 1.0, -1.0)


def telegraph(n: int, length: int, generator: torch.Generator, rate: tuple[float, float] = (0.03, 0.12)) -> Tensor:
    """The random telegraph process: s_0 = ±1, s_l flips with probability p (uniform in ``rate`` per series)."""
    p = _uniform(n, rate[0], rate[1], generator)[:, None]
    start = torch.where(torch.rand(n, 1, generator=generator, dtype=torch.float64) < 0.5, 1.0, -1.0)
    flips = (torch.rand(n, length, generator=generator, dtype=torch.float64) < p).to(torch.float64)
    flips[:, 0] = 0
    parity = torch.remainder(torch.cumsum(flips, 1), 2)
    return start * (1 - 2 * parity)


def sawtooth(n: int, length: int, generator: torch.Generator, period: tuple[float, float] = (0.15, 0.5)) -> Tensor:
    """2·frac(l/P + φ) − 1: linear rises from −1 to 1, then a jump back down, (n, L)."""
    P = _uniform(n, period[0] * length, period[1] * length, generator)[:, None]
    phase = _uniform(n, 0.0, 1.0, generator)[:, None]
    return 2 * torch.remainder(torch.arange(length, dtype=torch.float64)[None] / P + phase, 1.0) - 1


def synthetic(kind: str, n: int, length: int, generator: torch.Generator, noise: float = 0.0) -> Tensor:
    """(n, L, 1) float32 series of one synthetic ``kind`` (see the module docstring), plus N(0, noise²) noise."""
    makers = {"square": square_wave, "telegraph": telegraph, "sawtooth": sawtooth}
    if kind == "sharp_mix":
        parts = [makers[k](n, length, generator) for k in ("square", "telegraph", "sawtooth")]
        which = torch.randint(0, 3, (n,), generator=generator)
        x = torch.stack(parts, 0)[which, torch.arange(n)]
    elif kind in makers:
        x = makers[kind](n, length, generator)
    else:
        raise ValueError(f"unknown synthetic series {kind!r}; known: {', '.join(SYNTHETIC)}")
    if noise:
        x = x + noise * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return x[..., None].float()


# -- series that ship in installed packages -------------------------------------------------------------------
def _statsmodels_dataset(name: str) -> Any:
    """``statsmodels.datasets.<name>`` (only that module: ``statsmodels.api`` takes seconds to import)."""
    import importlib

    try:
        return importlib.import_module(f"statsmodels.datasets.{name}")
    except ImportError:
        raise MissingSource("this series ships with statsmodels, which is not installed: pip install statsmodels "
                            "(or pick a synthetic source: " + ", ".join(SYNTHETIC) + ")") from None


def packaged_series(name: str) -> tuple[np.ndarray, list[str]]:
    """One long multichannel series (T, C) with NaN for missing values, and its channel names."""
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged series {name!r}; known: {', '.join(PACKAGED)}")
    df = _statsmodels_dataset(name).load_pandas().data
    if name == "co2":
        return df["co2"].to_numpy(dtype=float)[:, None], ["co2"]
    if name == "macrodata":
        growth = {c: np.diff(np.log(df[c].to_numpy(dtype=float))) * 100 for c in ("realgdp", "realcons", "realinv")}
        cols = [growth["realgdp"], growth["realcons"], growth["realinv"], df["infl"].to_numpy(dtype=float)[1:],
                df["unemp"].to_numpy(dtype=float)[1:]]
        return np.stack(cols, 1), ["gdp growth", "consumption growth", "investment growth", "inflation",
                                   "unemployment"]
    return df["SUNACTIVITY"].to_numpy(dtype=float)[:, None], ["sunspots"]


# -- Monash .tsf ---------------------------------------------------------------------------------------------
def read_tsf(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read a Monash Forecasting Repository ``.tsf`` file: ``(series, meta)``.

    Each series is a dict of its attributes (``@attribute name type``) plus ``values`` (float array, NaN for
    ``?``) and ``line`` (its line in the file); ``meta`` holds the header (frequency, horizon, missing,
    equallength, attributes). A malformed file raises :class:`~workbench.core.errors.DataCorrupt` naming the file,
    the line and what is wrong there.
    """
    from workbench.core.errors import DataCorrupt

    path = Path(path)
    if not path.is_file():
        raise MissingSource(f"no .tsf file at {str(path)!r}: download one from https://forecastingdata.org "
                            "(Monash Time Series Forecasting Repository), unzip it and pass its path as tsf_path")
    attributes: list[tuple[str, str]] = []
    meta: dict[str, Any] = {}
    series: list[dict[str, Any]] = []
    in_data = False

    def bad(number: int, what: str) -> DataCorrupt:
        return DataCorrupt(f"{path} line {number}: {what}")

    with open(path, encoding="latin-1") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@attribute"):
                    parts = line.split()
                    if len(parts) != 3 or parts[2].lower() not in ("numeric", "string", "date"):
                        raise bad(number, f"bad attribute line {line[:80]!r} (expected @attribute NAME "
                                          "numeric|string|date)")
                    attributes.append((parts[1], parts[2].lower()))
                elif low.startswith("@data"):
                    in_data = True
                elif line.startswith("@"):
                    key, _, value = line[1:].partition(" ")
                    meta[key.lower()] = value.strip()
                else:
                    raise bad(number, f"{line[:40]!r} before the @data section (header lines start with @)")
                continue
            fields = line.split(":")
            if len(fields) != len(attributes) + 1:
                raise bad(number, f"a data line has {len(fields) - 1} attribute fields, the header declares "
                                  f"{len(attributes)} (@attribute lines)")
            row: dict[str, Any] = {"line": number}
            for (name, kind), value in zip(attributes, fields[:-1]):
                if kind == "numeric":
                    try:
                        row[name] = float(value)
                    except ValueError:
                        raise bad(number, f"attribute {name!r} = {value[:40]!r} is not a number") from None
                else:
                    row[name] = value
            values = []
            for position, v in enumerate(fields[-1].split(","), 1):
                v = v.strip()
                try:
                    values.append(np.nan if v == "?" else float(v))
                except ValueError:
                    raise bad(number, f"value {position} = {v[:40]!r} is not a number (nor ? for missing)") from None
            row["values"] = np.array(values)
            series.append(row)
    if not in_data:
        raise DataCorrupt(f"{path}: no @data section (a .tsf file has @attribute lines, then @data and one "
                          "series per line)")
    if not series:
        raise DataCorrupt(f"{path}: the @data section has no series")
    meta["attributes"] = attributes
    return series, meta


def check_tsf(path: str | Path, length: int) -> None:
    """Preflight of a ``.tsf`` source: the whole file parses (:func:`read_tsf`) and one series has ``length`` steps."""
    from workbench.core.errors import DataCorrupt

    rows, _ = read_tsf(path)
    longest = max(len(r["values"]) for r in rows)
    if longest < length:
        raise DataCorrupt(f"{path}: its longest series has {longest} steps, shorter than parameter 'length' = "
                          f"{length}; lower length to at most {longest}")


# -- windows, normalisation, splits ------------------------------------------------------------------------------
def windows(series: np.ndarray, length: int, n: int, generator: torch.Generator) -> np.ndarray:
    """``n`` windows of ``length`` steps from a (T, C) series: evenly spaced starts when n ≥ the number of
    distinct starts would allow, random (seeded) starts otherwise. (n, length, C)."""
    T = series.shape[0]
    if T < length:
        raise ValueError(f"parameter 'length' = {length} is longer than the series ({T} steps)")
    starts_all = T - length + 1
    if n >= starts_all:
        starts = torch.arange(starts_all)
    else:
        starts = torch.randperm(starts_all, generator=generator)[:n].sort().values
    return np.stack([series[s: s + length] for s in starts.tolist()])


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = np.nanmean(x.reshape(-1, x.shape[-1]), 0)
    std = np.nanstd(x.reshape(-1, x.shape[-1]), 0)
    std = np.where(std > 0, std, 1.0)
    return (x - mean) / std, mean, std


def _from_array(x: np.ndarray, name: str, channels: list[str], standardise: bool = True) -> TimeSeries:
    mean = std = None
    if standardise:
        x, mean, std = _standardise(x)
    mask = ~np.isnan(x)
    x = np.where(mask, x, 0.0)
    L = x.shape[1]
    return TimeSeries(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(mask), torch.arange(L) / L,
                      name, channels, mean, std)


def load(name: str, n: int = 512, length: int = 64, generator: torch.Generator | None = None, noise: float = 0.0,
         missing_rate: float = 0.0, tsf_path: str = "") -> TimeSeries:
    """``n`` series of ``length`` steps from source ``name`` (see ``SOURCES``), drawn from ``generator`` (a run
    passes ``ctx.rng("data/<name>")``; None: a fresh ``torch.Generator()``, torch's fixed default seed);
    ``missing_rate`` hides a random share of the observations (irregular sampling through the mask)."""
    g = torch.Generator() if generator is None else generator
    if name in SYNTHETIC:
        x = synthetic(name, n, length, g, noise)
        L = x.shape[1]
        ts = TimeSeries(x, torch.ones_like(x, dtype=torch.bool), torch.arange(L) / L, name, ["value"])
    elif name in PACKAGED:
        series, channels = packaged_series(name)
        ts = _from_array(windows(series, length, n, g), name, channels)
    elif name == "tsf":
        rows, _ = read_tsf(tsf_path)
        long = [r["values"] for r in rows if len(r["values"]) >= length]
        if not long:
            check_tsf(tsf_path, length)  # says which file and how long its longest series is
        per = max(1, math.ceil(n / len(long)))
        parts = [windows(v[:, None], length, per, g) for v in long]
        x = np.concatenate(parts)[:n]
        ts = _from_array(x, Path(tsf_path).stem, ["value"])
    else:
        raise ValueError(f"unknown time-series source {name!r}; known: {', '.join(SOURCES)}")
    if noise and name not in SYNTHETIC:
        ts.x = ts.x + noise * torch.randn(ts.x.shape, generator=g)
    if missing_rate > 0:
        keep = torch.rand(ts.mask.shape, generator=g) >= missing_rate
        ts.mask = ts.mask & keep
        ts.x = torch.where(ts.mask, ts.x, torch.zeros(()))
    return ts


def split(ts: TimeSeries, test_fraction: float = 0.2,
          generator: torch.Generator | None = None) -> tuple[TimeSeries, TimeSeries]:
    """A train/test split of the series drawn from ``generator`` (None: a fresh ``torch.Generator()``); windows of
    one real series may overlap across the split: fine for the distribution scores, optimistic for forecasting on
    the packaged sources."""
    g = torch.Generator() if generator is None else generator
    perm = torch.randperm(len(ts), generator=g)
    n_test = max(1, int(round(test_fraction * len(ts))))
    return ts.subset(perm[n_test:]), ts.subset(perm[:n_test])
