"""The real city data sets the simulators replay, when they are present.

Looked for in ``$TOSPLUS_DATASETS_DIR`` (the ``datasets`` directory or its ``city`` subdirectory), else in the
first ``shared/datasets`` found walking up from the current directory. Each file is optional: a simulator
whose file is missing falls back to synthetic values.

* ``metro-interstate-traffic-volume.csv``: hourly vehicle counts on I-94 (Minneapolis-St Paul), 2012-2018;
* ``air-quality-uci.csv``: hourly gas sensor averages in an Italian city, 2004-2005, ``-200`` meaning missing
  (the original UCI file is ``;``-separated with decimal commas; a ``,``-separated copy with decimal points
  is read as well);
* ``birmingham-parking-occupancy.csv``: car park occupancy in Birmingham (code, capacity, occupancy, time),
  used for how full parking is by hour of day;
* ``melbourne-on-street-parking-bays.csv``: on-street bays in Melbourne with their coordinates and status.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger("tosplus.sim")

ENV_VAR = "TOSPLUS_DATASETS_DIR"
TRAFFIC = "metro-interstate-traffic-volume.csv"
AIR_QUALITY = "air-quality-uci.csv"
BIRMINGHAM_PARKING = "birmingham-parking-occupancy.csv"
MELBOURNE_BAYS = "melbourne-on-street-parking-bays.csv"


def find_datasets_dir(start: Path | None = None) -> Path | None:
    """``$TOSPLUS_DATASETS_DIR``, else the nearest ``shared/datasets`` above ``start`` (default: cwd)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            return path
        log.warning("%s=%s is not a directory; using synthetic data", ENV_VAR, configured)
        return None
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return None


def dataset_file(name: str, base: Path | None = None) -> Path | None:
    """The path of one data set file, or ``None`` when it is not available."""
    root = base if base is not None else find_datasets_dir()
    if root is None:
        return None
    for candidate in (root / "city" / name, root / name):
        if candidate.is_file():
            return candidate
    return None


# -- traffic -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrafficHour:
    at: datetime
    volume: int  # vehicles in the hour


@functools.cache
def load_traffic(path: Path) -> tuple[TrafficHour, ...]:
    rows: list[TrafficHour] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            stamp = row.get("date_time", "")
            if stamp in seen:  # several weather lines for one hour
                continue
            seen.add(stamp)
            try:
                rows.append(
                    TrafficHour(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S"), int(float(row["traffic_volume"])))
                )
            except (KeyError, ValueError):
                continue
    return tuple(rows)


# -- air quality ---------------------------------------------------------------------------------------------

# Normalised column name (upper case, letters and digits only) → thing-model property of air-quality-station.
AIR_COLUMNS = {
    "COGT": "co_mg_m3",
    "NO2GT": "no2_ug_m3",
    "NOXGT": "nox_ppb",
    "C6H6GT": "c6h6_ug_m3",
    "T": "temperature_c",
    "RH": "rh_pct",
    "AH": "ah",
}
MISSING = -200.0


@dataclass(frozen=True, slots=True)
class AirQualityHour:
    at: datetime | None
    values: dict[str, float]  # only the columns present in that hour


def _norm(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", name.upper())


def _parse_day_time(day: str, clock: str) -> datetime | None:
    clock = clock.replace(".", ":")
    for fmt in ("%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(f"{day} {clock}", fmt)
        except ValueError:
            continue
    return None


@functools.cache
def load_air_quality(path: Path) -> tuple[AirQualityHour, ...]:
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not lines:
        return ()
    semicolons = lines[0].count(";") > lines[0].count(",")
    reader = csv.reader(lines, delimiter=";" if semicolons else ",")
    header = [_norm(h) for h in next(reader)]
    index = {name: i for i, name in enumerate(header)}
    date_i, time_i = index.get("DATE"), index.get("TIME")
    wanted = [(index[col], prop) for col, prop in AIR_COLUMNS.items() if col in index]
    out: list[AirQualityHour] = []
    for row in reader:
        values: dict[str, float] = {}
        for i, prop in wanted:
            if i >= len(row) or not row[i].strip():
                continue
            raw = row[i].strip().replace(",", ".") if semicolons else row[i].strip()
            try:
                value = float(raw)
            except ValueError:
                continue
            if value == MISSING or (value < 0 and prop != "temperature_c"):
                continue
            values[prop] = value
        if not values:
            continue
        at = None
        if date_i is not None and time_i is not None and max(date_i, time_i) < len(row):
            at = _parse_day_time(row[date_i].strip(), row[time_i].strip())
        out.append(AirQualityHour(at, values))
    return tuple(out)


# -- parking -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParkingBay:
    bay_id: str
    marker: str
    occupied: bool
    lat: float
    lon: float


@functools.cache
def load_melbourne_bays(path: Path) -> tuple[ParkingBay, ...]:
    bays: list[ParkingBay] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                bays.append(
                    ParkingBay(
                        bay_id=row["bay_id"].strip(),
                        marker=(row.get("st_marker_id") or "").strip(),
                        occupied=(row.get("status") or "").strip().lower() in ("present", "occupied"),
                        lat=float(row["lat"]),
                        lon=float(row["lon"]),
                    )
                )
            except (KeyError, ValueError):
                continue
    return tuple(bays)


# How full city-centre parking is by hour of day, where no data says better.
SYNTHETIC_OCCUPANCY = (
    0.15,
    0.12,
    0.10,
    0.10,
    0.10,
    0.12,
    0.20,
    0.35,
    0.55,
    0.70,
    0.78,
    0.82,
    0.85,
    0.84,
    0.80,
    0.78,
    0.75,
    0.70,
    0.60,
    0.50,
    0.40,
    0.30,
    0.22,
    0.18,
)


@functools.cache
def load_hourly_occupancy(path: Path) -> tuple[float, ...] | None:
    """Mean occupancy (0..1) of the Birmingham car parks for each hour of the day (24 values), or ``None``
    when the file says nothing usable. The car parks report only in the daytime: other hours take the
    synthetic curve."""
    sums = [0.0] * 24
    counts = [0] * 24
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) < 4:
                continue
            try:
                capacity, occupancy = float(row[1]), float(row[2])
                at = datetime.strptime(row[3].strip()[:19], "%Y-%m-%d %H:%M:%S")
            except ValueError:
                continue  # header line or broken line
            if capacity <= 0:
                continue
            sums[at.hour] += min(max(occupancy / capacity, 0.0), 1.0)
            counts[at.hour] += 1
    if not any(counts):
        return None
    return tuple(sums[h] / counts[h] if counts[h] else SYNTHETIC_OCCUPANCY[h] for h in range(24))
