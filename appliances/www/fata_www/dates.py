"""HTTP dates (RFC 9110 section 5.6.7): formatting and the three formats a recipient parses.

Our own few lines instead of ``email.utils``: its answers go through ``datetime`` and the
locale-free names are all HTTP needs; what the appliance imports is what goes into its image.
"""

from __future__ import annotations

import re
import time

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = {m.lower().encode(): i + 1 for i, m in enumerate(MONTHS)}
_FIXDATE = re.compile(rb"[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT")
_RFC850 = re.compile(rb"[A-Za-z]+, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT")
_ASCTIME = re.compile(rb"[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})")


def http_date(seconds: float) -> bytes:
    """The IMF-fixdate of ``seconds`` since the epoch (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    t = time.gmtime(int(seconds))
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        DAYS[t.tm_wday].encode(), t.tm_mday, MONTHS[t.tm_mon - 1].encode(), t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _seconds(year: int, month: bytes, day: int, hh: int, mm: int, ss: int) -> int | None:
    number = _MONTH.get(month.lower())
    if number is None or not 1 <= day <= 31 or hh > 23 or mm > 59 or ss > 60:
        return None
    return _days_from_civil(year, number, day) * 86400 + hh * 3600 + mm * 60 + ss


def parse_http_date(value: bytes) -> int | None:
    """Seconds since the epoch of an HTTP date in any of the three formats, or None when it
    is not one (RFC 9110: a precondition with an invalid date is ignored)."""
    value = value.strip()
    m = _FIXDATE.fullmatch(value)
    if m:
        d, mon, y, hh, mm, ss = m.groups()
        return _seconds(int(y), mon, int(d), int(hh), int(mm), int(ss))
    m = _RFC850.fullmatch(value)
    if m:
        d, mon, yy, hh, mm, ss = m.groups()
        year = int(yy)
        # RFC 9110: a two-digit year more than 50 years in the future is in the past century
        this_year = time.gmtime().tm_year
        year += (this_year // 100) * 100
        if year > this_year + 50:
            year -= 100
        return _seconds(year, mon, int(d), int(hh), int(mm), int(ss))
    m = _ASCTIME.fullmatch(value)
    if m:
        mon, d, hh, mm, ss, y = m.groups()
        return _seconds(int(y), mon, int(d), int(hh), int(mm), int(ss))
    return None
