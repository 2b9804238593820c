"""Our own SPEC reader: one scan parsed at a time, from the bytes the index points at.

A SPEC file is text: header blocks (``#F``, ``#E``, ``#D``, ``#O``... lines) and scans
(a ``#S`` line, header lines, a ``#L`` line of labels, then one line of numbers per
point, ``@A`` MCA spectra between them, ``#C`` comments anywhere). Nothing here uses
silx at run time, but the rules are silx's (``silx.io.specfile``) so that scan keys,
labels, motors and MCA spectra are the ones a silx user knows; where silx is plainly
wrong we say why in a comment.

Where each scan starts is found by :mod:`vfs.formats.specindex`.

:func:`parse_scan` turns one scan's bytes into a :class:`ScanData`: header lines,
labels, a float64 table (malformed lines skipped and counted) and the byte ranges of
the MCA spectra, which :func:`parse_spectrum` decodes one at a time.
"""

from __future__ import annotations

import datetime as _dt
import re
import threading
from dataclasses import dataclass

import numpy as np

from vfs.limits import MAX_COLUMNS, MAX_LINE

_SPLIT2 = re.compile(r" {2,}")
_MOTOR_LINE = re.compile(rb"#([OP])(\d*)(?:[ \t]|$)")
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\Z", re.IGNORECASE
)
# An MCA spectrum: an "@" line and the lines it continues with a trailing backslash.
_SPECTRUM = re.compile(rb"^@(?:[^\n]*\\[ \t\r]*\n)*[^\n]*", re.M)


def to_float(token: str) -> float | None:
    """A strict number (no ``1_000``, no hex): what SPEC writers print, else None."""
    return float(token) if _NUMBER.match(token) else None


def decode(raw: bytes) -> str:
    """Text of a header line: UTF-8, undecodable bytes kept as surrogate escapes."""
    return raw.decode("utf-8", "surrogateescape")


def split_labels(text: str) -> list[str]:
    """SPEC label rule: names are separated by two or more spaces."""
    text = text.strip(" ")
    return [t for t in _SPLIT2.split(text)] if text else []


def header_value(lines: list[bytes], key: bytes) -> bytes | None:
    """Text after ``#key`` on the first line with that key (``key`` ends at a blank)."""
    n = len(key) + 1
    for line in lines:
        if line[1:n] == key and (len(line) == n or line[n : n + 1] in (b" ", b"\t")):
            return line[n:].strip()
    return None


def header_values(lines: list[bytes], key: bytes) -> list[bytes]:
    n = len(key) + 1
    return [ln[n:].strip() for ln in lines if ln[1:n] == key and (len(ln) == n or ln[n : n + 1] in (b" ", b"\t"))]


def numbers(text: bytes, count: int | None = None) -> list[float]:
    """The leading tokens of ``text`` that are numbers (stops at the first that is not)."""
    out: list[float] = []
    for token in decode(text).split():
        value = to_float(token)
        if value is None or (count is not None and len(out) >= count):
            break
        out.append(value)
    return out


@dataclass
class ScanData:
    """One scan, parsed: what the scan's folder shows."""

    number: int
    title: str
    header_lines: list[bytes]
    labels: list[str]
    table: Table
    bad_lines: list[int]
    spectra: list[tuple[int, int]]  # (start, end) byte offsets within the scan block
    motors: list[tuple[str, float | str]]
    declared_columns: int | None
    analysers: int

    @property
    def data(self) -> np.ndarray:
        """The whole table, (points, columns) float64."""
        return self.table.array()

    def mca_header(self, key: bytes) -> list[bytes]:
        return header_values(self.header_lines, b"@" + key)


def _split_lines(block: bytes) -> list[bytes]:
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def _row(line: bytes) -> np.ndarray:
    """One line's numbers; a token that is not a number (``None``, ``---``) gives NaN."""
    try:
        return np.fromstring(line, dtype=np.float64, sep=" ")  # noqa: NPY201 (text mode)
    except ValueError:
        values = [to_float(t) for t in decode(line).split()]
        return np.array([np.nan if v is None else v for v in values], np.float64)


class Table:
    """The numbers of a scan: the text of its good rows until a column is first read, then
    every value parsed in one pass and kept as float64 (8 bytes a value, where a token
    object each took 50). Values are parsed from the text as written (no precision
    lost). A token that is not a number reads as NaN; such a text is converted a piece
    of about a MiB at a time (:func:`all_numbers`), so it never becomes one Python object
    per token at once.
    """

    def __init__(self, text: bytes, npoints: int, ncols: int) -> None:
        self.text: bytes | None = text
        self.npoints = npoints
        self.ncols = ncols
        self.by_column: np.ndarray | None = None  # (ncols, npoints)
        self._lock = threading.Lock()

    def _convert(self) -> None:
        with self._lock:
            text = self.text
            if text is None:
                return
            count = self.npoints * self.ncols
            try:
                values = np.fromstring(text, dtype=np.float64, sep=" ")  # noqa: NPY201
            except ValueError:
                values = np.empty(0)
            if values.size != count:
                values = all_numbers(text)
            if values.size != count:  # good rows hold ncols tokens each: never, but never more either
                values = np.resize(np.append(values, np.full(max(count - values.size, 0), np.nan)), count)
            self.by_column = np.ascontiguousarray(values.reshape(self.npoints, self.ncols).T)
            self.text = None

    def column(self, j: int) -> np.ndarray:
        if self.text is not None:
            self._convert()
        if self.by_column is None or not self.ncols:
            return np.empty(0, np.float64)
        return self.by_column[j]

    def array(self) -> np.ndarray:
        if not self.ncols:
            return np.empty((0, 0), np.float64)
        if self.text is not None:
            self._convert()
        assert self.by_column is not None
        return np.ascontiguousarray(self.by_column.T)


_BLANK = re.compile(rb"\s")


def all_numbers(text: bytes, piece: int = 1 << 20) -> np.ndarray:
    """Every blank-separated token of ``text`` as float64, NaN where it is not a number;
    cut at blanks into pieces of about ``piece`` bytes."""
    out = [np.empty(0, np.float64)]
    start = 0
    while start < len(text):
        cut = _BLANK.search(text, start + piece)
        end = len(text) if cut is None else cut.end()
        out.append(_numbers(text[start:end].split()))
        start = end
    return np.concatenate(out)


def _numbers(tokens: list[bytes]) -> np.ndarray:
    if not tokens:
        return np.empty(0, np.float64)
    try:
        values = np.fromstring(b" ".join(tokens), dtype=np.float64, sep=" ")  # noqa: NPY201
        if values.size == len(tokens):
            return values
    except ValueError:
        pass
    parsed = [to_float(decode(t)) for t in tokens]
    return np.array([np.nan if v is None else v for v in parsed], np.float64)


def parse_table(lines: list[bytes]) -> tuple[Table, list[int]]:
    """Rows of numbers -> a :class:`Table`; returns the positions of the bad lines too.

    The first line holding a number fixes the column count (silx takes the first line
    too); a line with another count is skipped. A token that is not a number (Bluesky
    writes ``None``) is NaN: silx reads it as 0, which is a value nobody measured.
    """
    bad: list[int] = []
    ncols = 0
    first = 0
    for i, line in enumerate(lines):
        if len(line) > MAX_LINE or (len(line) > 2 * MAX_COLUMNS and _token_count(line) > MAX_COLUMNS):
            bad.append(i)  # bounded: a line of more than MAX_COLUMNS values is not a row
            continue
        row = _row(line)
        if row.size and not np.isnan(row).all() or b"nan" in line.lower():
            ncols, first = row.size, i
            break
        bad.append(i)
    if not ncols:
        return Table(b"", 0, 0), bad
    longest = 64 * ncols + 4096  # longer lines are counted before they are split
    good: list[bytes] = []
    for i, ln in enumerate(lines[first:], first):  # one line's tokens at a time, then dropped
        if (len(ln.split()) if len(ln) <= longest else _token_count(ln)) == ncols:
            good.append(ln)
        else:
            bad.append(i)
    bad.sort()
    return Table(b" ".join(good), len(good), ncols), bad


def _token_count(line: bytes) -> int:
    """Blank-separated tokens of a long line, counted without splitting it."""
    arr = np.frombuffer(line, np.uint8)
    blank = (arr == 32) | (arr == 9) | (arr == 13) | (arr == 11) | (arr == 12)
    return int(np.count_nonzero(~blank[:1])) + int(np.count_nonzero(blank[:-1] & ~blank[1:]))


def _motor_lines(lines: list[bytes], letter: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for line in lines:
        m = _MOTOR_LINE.match(line)
        if m and m.group(1) == letter:
            out.setdefault(m.group(2), line[m.end() :])
    return out


def parse_motors(scan_lines: list[bytes], file_lines: list[bytes]) -> list[tuple[str, float | str]]:
    """Motor names (``#O``, scan header first, else file header) with ``#P`` positions.

    Names are split on two or more spaces, positions on blanks (silx's rules). Where a
    line's counts disagree and the other split makes them agree (single-spaced ``#O``
    lines, two-space-separated ``#P`` lines holding text), that split is used: silx
    pairs such lines wrongly. Lines pair by their number (``#O2`` with ``#P2``).
    """
    names = _motor_lines(scan_lines, b"O") or _motor_lines(file_lines, b"O")
    values = _motor_lines(scan_lines, b"P") or _motor_lines(file_lines, b"P")
    pairs: list[tuple[list[str], list[str]]] = []
    for suffix, raw in names.items():
        text = decode(raw).strip()
        nm = split_labels(text)
        vtext = decode(values.get(suffix, b"")).strip()
        vals = vtext.split()
        if len(nm) != len(vals):
            if len(text.split()) == len(vals):
                nm = text.split()
            elif len(_SPLIT2.split(vtext)) == len(nm) and vtext:
                vals = _SPLIT2.split(vtext)
        pairs.append((nm, vals))
    all_names = [n for nm, _ in pairs for n in nm]
    all_vals = [v for _, vals in pairs for v in vals]
    if any(len(nm) != len(vals) for nm, vals in pairs) and len(all_names) == len(all_vals):
        zipped = list(zip(all_names, all_vals))
    else:
        zipped = [p for nm, vals in pairs for p in zip(nm, vals)]
    out: list[tuple[str, float | str]] = []
    for name, token in zipped:
        value = to_float(token)
        out.append((name, token if value is None else value))
    return out


def parse_scan(block: bytes, file_header: bytes = b"") -> ScanData:
    """Parse one scan's bytes (from its ``#S`` line to the next block)."""
    spectra: list[tuple[int, int]] = []
    points_before: list[int] = []
    header: list[bytes] = []
    data_lines: list[bytes] = []
    last = 0
    if block.startswith(b"@") or b"\n@" in block:
        for found in _SPECTRUM.finditer(block):
            _classify(block[last : found.start()], header, data_lines)
            spectra.append((found.start(), found.end()))
            points_before.append(len(data_lines))
            last = found.end()
    _classify(block[last:], header, data_lines)
    file_lines = [ln for ln in _split_lines(file_header) if ln.startswith(b"#")]
    s_line = decode(header[0][2:]).strip() if header else ""
    m = re.match(r"[+-]?\d+", s_line)
    number = int(m.group(0)) if m else 0
    title = s_line[m.end() :].strip() if m else s_line
    table, bad = parse_table(data_lines)
    declared = numbers(header_value(header, b"N") or b"", 1)
    declared_n = int(declared[0]) if declared else None
    l_text = header_value(header, b"L")
    labels = split_labels(decode(l_text)) if l_text is not None else []
    if l_text is not None and declared_n and len(labels) != declared_n:
        single = decode(l_text).split()
        if len(single) == declared_n:  # a single-spaced #L line that #N confirms
            labels = single
    motors = parse_motors(header, file_lines)
    return ScanData(number, title, header, labels, table, bad, spectra, motors, declared_n,
                    _analysers(points_before, table.npoints, len(header_values(header, b"@CHANN"))))


def _classify(piece: bytes, header: list[bytes], data_lines: list[bytes]) -> None:
    for line in _split_lines(piece):
        if line.startswith(b"#"):
            header.append(line)
        elif line.strip():
            data_lines.append(line)


def _analysers(points_before: list[int], npoints: int, chann_lines: int) -> int:
    """How many MCA spectra each point has (several analysers are interleaved).

    From the file's structure where it shows (the spectra written between two data
    lines), so a scan that is still growing keeps its answer; else silx's rule:
    spectra / points, or the number of ``#@CHANN`` lines for a scan without points.
    """
    n = len(points_before)
    if not n:
        return 0
    groups: dict[int, int] = {}
    for p in points_before:
        groups[p] = groups.get(p, 0) + 1
    if len(groups) >= 2:
        return groups[points_before[0]]
    if npoints and n % npoints == 0:
        return n // npoints
    if not npoints:
        return max(chann_lines, 1)
    return max(n // npoints, 1)


def parse_spectrum(text: bytes) -> np.ndarray:
    """Values of one MCA spectrum: an ``@A`` line and its continuation lines."""
    parts = text.split(None, 1)
    body = parts[1].replace(b"\\", b" ") if len(parts) > 1 else b""
    if not body.strip():
        return np.empty(0, np.float64)
    counts = _counts(body)
    if counts is not None:
        return counts
    try:
        return np.fromstring(body, dtype=np.float64, sep=" ")  # noqa: NPY201
    except ValueError:
        vals = [to_float(t) for t in decode(body).split()]
        return np.array([np.nan if v is None else v for v in vals], np.float64)


def _counts(body: bytes) -> np.ndarray | None:
    """Blank-separated unsigned integers (what MCA spectra hold) parsed by numpy alone,
    several times faster than a text-to-float conversion; None for anything else."""
    arr = np.frombuffer(body, np.uint8)
    digit = (arr >= 48) & (arr <= 57)
    if not (digit | (arr == 32) | (arr == 10) | (arr == 9) | (arr == 13)).all():
        return None
    edge = np.diff(np.concatenate(([False], digit, [False])).view(np.int8))
    starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    lengths = ends - starts
    if not lengths.size or lengths.max() > 15:  # 15 digits stay exact in float64
        return None
    pos = np.flatnonzero(digit)
    token = np.repeat(np.arange(len(starts)), lengths)
    values = (arr[pos] - 48).astype(np.int64) * (10 ** (ends[token] - 1 - pos))
    return np.bincount(token, weights=values, minlength=len(starts)).astype(np.float64)


# -- dates ---------------------------------------------------------------------------

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_DAYS = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_DATE1 = re.compile(
    rf"{_DAYS} (?P<month>{'|'.join(_MONTHS)}) (?P<day>[0-3 ]\d) (?P<hh>[0-2]\d):(?P<mm>[0-5]\d):(?P<ss>[0-5]\d)"
    r"(?P<tz>[+-]\d\d:\d\d)? (?P<year>\d{4})"
)
_DATE2 = re.compile(
    rf"{_DAYS} (?P<year>\d{{4}})/(?P<month_nb>[0-1]\d)/(?P<day>[0-3 ]\d) (?P<hh>[0-2]\d):(?P<mm>[0-5]\d):(?P<ss>[0-5]\d)"
    r"(?P<tz>[+-]\d\d:\d\d)?"
)
_EPOCH = re.compile(r"\d{9,10}(?:\.\d*)?\Z")


def iso_date(text: str) -> str:
    """SPEC ``#D`` text as ISO 8601 (silx's two formats; an epoch as UTC), else as is."""
    for rx in (_DATE1, _DATE2):
        m = rx.match(text)
        if m:
            g = m.groupdict()
            month = g.get("month_nb") or f"{_MONTHS.index(g['month']) + 1:02d}"
            return f"{g['year']}-{month}-{g['day']}T{g['hh']}:{g['mm']}:{g['ss']}{g['tz'] or ''}"
    if _EPOCH.match(text):  # Sardana/spock write the epoch; silx leaves it as it is
        return _dt.datetime.fromtimestamp(float(text), _dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return text
