"""cbrec -- a content-based recommender (two-tower model) in C, from Python.

Three lines from data to recommendations::

    import cbrec
    model = cbrec.Model.train(cbrec.Dataset.load("ml-latest-small"), epochs=10)
    print(model.recommend("1", n=10))

The classes:
    Dataset          ratings + item/user attributes (Dataset.load(folder),
                     Dataset.from_arrays(...), Dataset.from_frames(...))
    Model            a trained two-tower model: train, save/load, recommend,
                     recommend_batch, similar, new users, vectors as numpy;
                     picklable (multiprocessing, joblib)
    Recommendations  one ranked list: ids, titles, scores, reasons
    evaluate(...)    the library's evaluation (baselines, NDCG, ...) as a dict
    synth(folder)    a synthetic dataset with planted structure, for trying
    Error            base of every error the library reports; subclasses per
                     status: FileError, ParseError, OutOfMemory,
                     InvalidArgument, NotFound, FormatError, NumericError

Settings are the library's keys (the same as the CLI's ``--key``), written
with ``_`` for ``-``: ``Model.train(ds, epochs=5, user_layers=[256, 128],
split="temporal")``. ``cbrec.settings("train")`` lists them. Long calls
(load, train, evaluate, recommend, recommend_batch) release the GIL;
Ctrl-C stops training within a batch and raises KeyboardInterrupt.
"""
import datetime as _dt
import decimal as _decimal
import json as _json
import numbers as _nums
import os as _os
import tempfile as _tempfile
from typing import NamedTuple

import numpy as _np

from . import _cbrec
from ._cbrec import (Error, FileError, FormatError, InvalidArgument, NotFound, NumericError, OutOfMemory,
                     ParseError, library_version)

__version__ = library_version
__all__ = ["Dataset", "Model", "Recommendations", "Recommendation", "evaluate", "settings", "synth", "Error", "FileError",
           "ParseError", "OutOfMemory", "InvalidArgument", "NotFound", "FormatError", "NumericError"]

_KINDS = {"train": 1, "recommend": 2, "synth": 3, "eval": 4}
_CODES = {FileError: -1, ParseError: -2, OutOfMemory: -3, InvalidArgument: -4, NotFound: -5, FormatError: -6,
          NumericError: -7}


def _error(cls, message):
    """An error this package finds before the library would, with the .code the library's carries."""
    e = cls(message)
    e.code = _CODES[cls]
    return e


def settings(kind="train"):
    """The library's settings of one kind ("train", "recommend", "eval",
    "synth") as a list of dicts: name (Python spelling, '_' for '-'), value
    hint, default (text), help and section. The same table generates
    ``cbrec train --help``."""
    if kind not in _KINDS:
        raise ValueError("kind must be one of %s" % ", ".join(_KINDS))
    return [{"name": n.replace("-", "_"), "value": hint, "default": default, "help": text, "section": section,
             "flag": flag} for n, hint, default, text, section, flag in _cbrec._settings(_KINDS[kind])]


def _settings_doc(kind):
    lines = []
    for s in settings(kind):
        lines.append("        %-22s %s (default %s)" % (s["name"], s["help"], s["default"] or "none"))
    return "\n".join(lines)


def synth(folder, **settings):
    """Write a synthetic dataset with planted structure to `folder`
    (ratings.csv, movies.csv, users.csv and a cbrec.schema; each replaced
    atomically), for trying things without data; load it with
    Dataset.load(folder). settings: SYNTH keys (users, items, ratings,
    genres, noise, seed)."""
    _cbrec._synth(folder, settings)


class Recommendation(NamedTuple):
    """One entry of a ranked list."""
    id: str          #: the item's id in the data
    title: str       #: its title ('' when the data has none)
    score: float     #: the ranking score (higher is better; see Recommendations.criterion)
    rating: float    #: the predicted rating, NaN when there is none
    reasons: list    #: why it was recommended, in words
    sources: list    #: which retrieval sources brought it ("similar", "genre", ...)
    index: int       #: the item's number in the model (a row of item_vectors())


class Recommendations:
    """A ranked list from Model.recommend, Model.new_user or Model.similar.

    Attributes (aligned, best first): ``ids`` (list of str), ``titles``,
    ``scores`` (numpy float32), ``ratings`` (numpy float32, NaN when none),
    ``items`` (numpy int64 item numbers), ``reasons`` and ``sources`` (a list
    of str per entry); ``criterion`` names the score ("predicted rating",
    "cosine similarity", ...); ``notes`` are remarks (n clamped, cold
    start). Iterating or indexing yields Recommendation tuples (a slice, a
    list of them); ``to_list()`` gives
    dicts shaped like the CLI's ``--json`` items."""
    __slots__ = ("criterion", "ids", "items", "titles", "scores", "ratings", "reasons", "sources", "notes")

    def __init__(self, parts):
        (self.criterion, self.ids, self.items, self.titles, self.scores, self.ratings, self.reasons, self.sources,
         self.notes) = parts

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):  # recs[:3]: float() of a slice of scores was a TypeError
            return [self[k] for k in range(*i.indices(len(self)))]
        return Recommendation(self.ids[i], self.titles[i], float(self.scores[i]), float(self.ratings[i]),
                              self.reasons[i], self.sources[i], int(self.items[i]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def to_list(self):
        """The entries as dicts: rank, item, title, score, rating (None when
        there is none), sources, reasons."""
        return [{"rank": i + 1, "item": r.id, "title": r.title, "score": r.score,
                 "rating": None if r.rating != r.rating else r.rating, "sources": r.sources, "reasons": r.reasons}
                for i, r in enumerate(self)]

    def __repr__(self):
        rows = ["Recommendations by %s (%d):" % (self.criterion, len(self))]
        for i, r in enumerate(self):
            why = ("  -- " + r.reasons[0]) if r.reasons else ""
            rows.append("%3d. %-8s %8.4f  %s%s" % (i + 1, r.id, r.score, r.title, why))
        rows += ["note: " + n for n in self.notes]
        return "\n".join(rows)


# numbers as cells of an object column: decimal.Decimal too, what pandas.read_sql gives a NUMERIC
# column (not a numbers.Real: a price column was categorical, a level per price)
_REAL = (_nums.Real, _decimal.Decimal)


def _numbers(values):
    """values as a numeric array, or None when they are not numbers. Numbers
    with gaps (None, NaN, pandas.NA: NaN) are numbers too: numpy holds them,
    and pandas' nullable Int64 / Float64 / boolean columns, as objects, which
    made an "age" column categorical with the levels "20", "30"."""
    arr = _np.asarray(values) if not isinstance(values, _np.ndarray) else values
    if arr.dtype.kind in "fiub":
        return arr
    if arr.dtype.kind != "O" or arr.ndim != 1:
        return None
    cells = arr.tolist()
    if not all(isinstance(v, _REAL) or _missing_id(v) for v in cells):  # stops at the first text
        return None
    out = _np.array([float(v) if isinstance(v, _REAL) else _np.nan for v in cells])
    return None if _np.isnan(out).all() else out


# the cells of a multi-valued column: a numpy array too, as pandas.read_parquet gives a list column's
# cells (str() of one made the single level "['jazz' 'rock']")
_LISTS = (list, tuple, set, frozenset, _np.ndarray)


def _plain(values, what):
    """values without numpy's masks and never complex: a masked array's masked
    cells are missing values (None), as a DataFrame's gaps are (its data
    under the mask was read as if present); complex numbers are a TypeError
    (the imaginary part was dropped in silence)."""
    if isinstance(values, _np.ma.MaskedArray):
        mask, values = _np.ma.getmaskarray(values), values.data
        if mask.any():
            values = values.astype(object)
            values[mask] = None
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    scan = kind == "O" or isinstance(values, (list, tuple))  # not a generator: the builder's to read once
    if kind == "c" or (scan and any(issubclass(t, (complex, _np.complexfloating)) for t in set(map(type, values)))):
        raise TypeError("%s: complex numbers are not accepted (give real ones)" % what)
    return values


def _column(users, name, values, ids, sep):
    """One attribute column for the builder: (kind, values) given explicitly,
    a pandas categorical column -> categorical (also of numbers: codes such
    as an occupation 3 or 7 were numeric), numbers (decimal.Decimal too) ->
    numeric, dates and times -> numeric (seconds since the epoch; timedeltas
    their seconds), lists/tuples/sets -> multi, anything else ->
    categorical."""
    kind = None
    if isinstance(values, tuple) and len(values) == 2 and isinstance(values[0], str):
        kind, values = values
    values = _plain(values, "%s column '%s'" % ("users" if users else "items", name))
    if kind is None and getattr(getattr(values, "dtype", None), "name", None) == "category":
        kind = "categorical"
    times = _times(values) if kind in (None, "numeric") else None
    if times is not None:  # seconds: levels such as '86400000000000 nanoseconds' or one per date were no use
        kind, values = "numeric", _np.where(times == _NO_TIME, _np.nan, times.astype(float))
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    if kind is None and any(isinstance(v, _LISTS) for v in values):
        # before numpy sees them: tags of different lengths are a ragged array (a ValueError),
        # lists of numbers of one length a 2-D numeric one
        kind = "multi"
    numbers = _numbers(values) if kind in (None, "numeric") else None
    if numbers is not None:
        kind, values = "numeric", numbers
    kind = kind or "categorical"
    if kind == "multi":
        values = [sep.join(str(x) for x in v) if isinstance(v, _LISTS) else v for v in values]
    return (users, str(name), kind, ids, values, sep)  # a DataFrame's column 5 is "5" (an int was a TypeError)


_NO_TIME = _np.iinfo(_np.int64).min  # the builder's 'no timestamp' (numpy's NaT)
_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_UTC = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _datetime_seconds(x):
    """Seconds since the epoch of one datetime-like cell (a datetime or
    pandas.Timestamp, a date, a numpy datetime64, a pandas.Period: its
    start; a timedelta: the seconds it spans), or None when it is not one.
    An aware one is its instant (so UTC); a naive one is read as UTC, as
    numpy's datetime64 values are."""
    if type(x).__name__ == "Period":  # a month's Period was taken as its ordinal number of months
        x = x.to_timestamp()
    if isinstance(x, _dt.timedelta):  # pandas.Timedelta too
        return x // _dt.timedelta(seconds=1)
    if isinstance(x, _dt.datetime):  # pandas.Timestamp too
        aware = x.tzinfo is not None and x.utcoffset() is not None
        return (x - (_EPOCH_UTC if aware else _EPOCH)) // _dt.timedelta(seconds=1)
    if isinstance(x, _dt.date):
        return (x - _EPOCH.date()).days * 86400
    if isinstance(x, (_np.datetime64, _np.timedelta64)):
        return int(x.astype(x.dtype.str[1:2] + "8[s]").astype(_np.int64))
    return None


def _text_time(x):
    """An ISO 8601 text ('2020-01-01', '2020-01-01 10:00:00+02:00') as a
    datetime (UTC), else x: a timestamp column of a CSV read without
    parse_dates. Read by the library's own reader (cb_time_parse), so a text
    means what it means in a data file (datetime.fromisoformat differed on
    edge forms: week dates, a comma fraction, a leap second, a lower-case z).
    A text of digits is a number of seconds, left to the numbers' path."""
    if not isinstance(x, str) or x.strip().lstrip("+-").replace(".", "", 1).isdigit():
        return x
    seconds = _cbrec._time_parse(x)  # a datetime64: year 0 or 9999's leap second overflowed a datetime
    return x if seconds is None else _np.datetime64(seconds, "s")


def _times(values, what=None, texts=False):
    """Datetime-like values as int64 seconds (INT64_MIN: missing), or None
    when they are not datetime-like: datetime64 values from their unit
    (pandas' nanoseconds were refused as out of range, days taken for
    seconds); a timezone-aware pandas column (datetime64[ns, UTC], [ns,
    Europe/Paris]) as its instants, whose to_numpy() is Timestamp objects;
    timedelta64 values (seconds since whatever origin they count from) and
    pandas Periods (their start) likewise: nanoseconds and a count of months
    were taken for seconds; datetime objects, aware ones by their instant,
    naive ones as UTC like datetime64; with texts, ISO 8601 texts as the
    datetimes they write (an attribute column of them stays text). A column
    that starts with datetime objects and then holds something else is a
    TypeError naming the row (what[k]) when `what` is given, else not
    datetime-like."""
    dtype = getattr(values, "dtype", None)
    if getattr(dtype, "tz", None) is not None:
        values = values.to_numpy(dtype="datetime64[ns]")  # UTC
        dtype = values.dtype
    kind = getattr(dtype, "kind", None)
    if kind in ("M", "m"):
        return _np.asarray(values).astype(kind + "8[s]").astype(_np.int64)  # NaT is INT64_MIN
    if kind not in (None, "O", "U" if texts else "O") or getattr(values, "ndim", 1) != 1:
        return None
    cells = values.tolist() if hasattr(values, "tolist") else list(values)  # a list of tags may be ragged
    cell = _text_time if texts else (lambda x: x)
    if _datetime_seconds(cell(next((x for x in cells if not _missing_id(x)), None))) is None:
        return None
    out = _np.empty(len(cells), dtype=_np.int64)
    for k, x in enumerate(cells):
        t = _NO_TIME if _missing_id(x) else _datetime_seconds(cell(x))
        if t is None:
            if what is None:
                return None
            bad = repr(x)[:80] if isinstance(x, str) else "a %.80s" % type(x).__name__
            raise TypeError("%s[%d]: %s is not a date or a time, as the column's first value is" % (what, k, bad))
        out[k] = t
    return out


def _seconds(timestamps):
    """Timestamps as the builder takes them, int64 seconds since the epoch:
    datetime-like values and ISO 8601 texts as _times reads them (texts were
    "invalid literal for int() with base 10: '2020-01-01'", naming no row);
    numbers (and texts of numbers) as they are, a missing one (NaN, NaT,
    None, pandas.NA) as INT64_MIN, the builder's 'no timestamp' (NaN was
    cast with a warning to that number, and the number reported; None and
    pandas.NA were a TypeError naming no row); a float beyond int64 (1e30,
    inf) as +-2**62, out of the builder's range as it is (the cast made it
    INT64_MIN, with a warning: 'no timestamp')."""
    times = _times(timestamps, "timestamps", texts=True)
    if times is not None:
        return times
    arr = _np.asarray(timestamps)
    numbers = _numbers(arr) if arr.dtype.kind == "O" else arr  # a nullable Int64 column: objects
    if numbers is None or numbers.dtype.kind != "f":
        return timestamps
    gaps = _np.isnan(numbers)
    return _np.where(gaps, _NO_TIME, _np.clip(_np.where(gaps, 0, numbers), -2.0 ** 62, 2.0 ** 62).astype(_np.int64))


def _one_per_rating(values, what):
    """A ValueError naming `what` and its shape unless values is one value per
    rating: a column of a DataFrame, df[["rating"]], or a generator was numpy's
    'object too deep (of too small depth) for desired array', naming nothing."""
    if values is None:
        return
    try:
        shape = values.shape if hasattr(values, "shape") else _np.shape(values)
    except ValueError:  # ragged: the builder names the row
        return
    if len(shape) != 1:
        raise ValueError("%s must be one value per rating (a sequence or a 1-D array), not %s" %
                         (what, "of shape %s" % (tuple(shape),) if shape else "a %s" % type(values).__name__))


def _id_text(x):
    """An id as the builder reads it: a str; a whole-number float as the
    integer (1.0 as "1"); str() of anything else (_cbrec._id_text)."""
    return x if isinstance(x, str) else _cbrec._id_text(x)


def _missing_id(x):
    """None, a NaN, pandas.NA or a NaT: a missing id, as the builder reads one."""
    return (x is None or (isinstance(x, (float, _np.floating)) and x != x) or type(x).__name__ in ("NAType", "NaTType")
            or (isinstance(x, (_np.datetime64, _np.timedelta64)) and _np.isnat(x)))


def _distinct(rows):
    """The distinct values of rows, each with the text its rows have, or None
    when that cannot be told without looking at every row (equal values with
    other texts, as 1, 1.0 and True in one list)."""
    arr = rows.to_numpy() if hasattr(rows, "to_numpy") else rows
    if isinstance(arr, _np.ndarray) and arr.ndim == 1 and arr.dtype.kind in "iubfU":
        return _np.unique(arr)  # numpy scalars: str() of each as of its rows
    try:
        distinct = set(arr.tolist() if isinstance(arr, _np.ndarray) else rows)
    except TypeError:  # an unhashable value
        return None
    return distinct if all(isinstance(v, str) for v in distinct) else None


def _check_catalog(rows, ids, what):
    """Every rating's item (what "item") or user ("user") is in ids, the
    item_ids or user_ids of the attribute tables (a missing id, None or NaN,
    is the builder's to refuse): the file loaders refuse a rating of an item
    or by a user their items or users file lacks, where from_arrays added it
    without attributes (a users table with int ids and ratings with float
    ones, 1 and '1.0', left every user's attributes missing). The distinct
    values are checked first (a row at a time in Python, 2 million rows took
    a second); the rows only to name the first unknown one."""
    known = set(map(_id_text, ids))
    distinct = _distinct(rows)
    if distinct is not None and all(_missing_id(v) or _id_text(v) in known for v in distinct):
        return
    for k, x in enumerate(rows):
        if _missing_id(x):
            continue
        t = _id_text(x)
        if t not in known:
            raise _error(ParseError, "%ss[%d]: unknown %s id '%.80s' (not in %s_ids)" % (what, k, what, t, what))


class Dataset(_cbrec._Dataset):
    """Ratings (or implicit events) with item and user attributes.

    Make one with ``Dataset.load(folder)`` (MovieLens latest-small / 100K /
    1M, the course lab's files, or any folder with a cbrec.schema),
    ``Dataset.from_arrays(users, items, ratings, ...)`` (numpy arrays or
    plain sequences) or ``Dataset.from_frames(ratings, items, users)``
    (pandas DataFrames, or dicts of columns). Read-only once made; it may be
    shared between threads.

    Properties: n_users, n_items, n_ratings, n_skipped, layout."""

    @classmethod
    def load(cls, path, **settings):
        """Load a dataset folder; the layout is detected. Settings (TRAIN
        keys): schema="file" (a schema elsewhere), skip_bad_rows=True (count
        and skip malformed rows instead of raising ParseError), range="1,5",
        duplicates="last" (a user's later rating of an item replaces the
        earlier; "first" keeps the earlier; default "error"),
        unlisted_users="keep" (a rating by a user the users file does not
        list keeps that user, every attribute missing, as exported live
        events' users; default "error").
        Raises FileError / ParseError naming the file and line."""
        return cls._load(path, **settings)

    @classmethod
    def from_arrays(cls, users, items, ratings=None, *, timestamps=None, item_ids=None, titles=None, genres=None,
                    item_attributes=None, user_ids=None, user_attributes=None, sep="|", name=None, **settings):
        """A dataset from columns in memory.

        users, items: the id of each rating's user and item (str; ints and
            numpy integers are converted with str(); a whole-number float,
            as pandas makes an int column with a gap, is its integer:
            1.0 is the id "1").
        ratings: one number per row; None means implicit events (each row
            is one interaction, y = 1; repeats are merged).
        timestamps: seconds since the epoch per row, datetime64 values, a
            timezone-aware pandas column (datetime64[ns, UTC], ...: its
            instants) or datetime objects (aware: their instant; naive: read
            as UTC, as datetime64 is), ISO 8601 texts ('2020-01-01 10:00'),
            pandas Periods (their start) or timedeltas (their seconds)
            (optional; the temporal split uses them).
        item_ids: the catalog, one id per row of titles / genres /
            item_attributes: every item in it is in the dataset, also one
            nobody rated and nothing describes (a cold item); every rating's
            item must be in it, as a ratings file's must be in its items
            file (ParseError naming the row). Default: items.
        titles: a title per item ("Heat (1995)" gives a year column too).
        genres: per item, "A|B" (split on sep) or a list of names: the
            "genres" column the genre retrieval and reasons use.
        user_ids: the users, one per row of user_attributes: every one is
            in the dataset, also one with no ratings; every rating's user
            must be in it, as a ratings file's must be in its users file
            (unlisted_users="keep": one that is not has every attribute
            missing).
        item_attributes, user_attributes: {name: values aligned with item_ids
            / user_ids} (or a DataFrame); numbers become numeric columns,
            dates and durations too (in seconds), lists multi-valued ones,
            strings and pandas' category dtype (of numbers too)
            categorical; or give (kind, values) with kind "numeric",
            "categorical" or "multi".
        settings: TRAIN keys for loading: range="1,5", skip_bad_rows=True.

        Raises ParseError (duplicate (user, item) ratings, no ratings),
        InvalidArgument (bad values), ValueError (lengths differ)."""
        catalogs, columns = [], []
        users, items, ratings, timestamps = (_plain(v, what) for v, what in ((users, "users"), (items, "items"),
                                             (ratings, "ratings"), (timestamps, "timestamps")))
        item_ids, user_ids, titles = (_plain(v, what) for v, what in ((item_ids, "item_ids"), (user_ids, "user_ids"),
                                                                    (titles, "titles")))
        # attributes may be dicts or DataFrames (whose truth value is an error): test for None
        if item_ids is None and (titles is not None or genres is not None or item_attributes is not None):
            raise ValueError("give item_ids: the item each row of titles / genres / item_attributes describes")
        if item_ids is not None:
            _check_catalog(items, item_ids, "item")
            catalogs.append((False, item_ids))
            if titles is not None:
                columns.append((False, "title", "title", item_ids, titles, None))
            if genres is not None:
                columns.append(_column(False, "genres", ("multi", genres), item_ids, sep))
            for col, values in (item_attributes.items() if item_attributes is not None else ()):
                columns.append(_column(False, col, values, item_ids, sep))
        if user_attributes is not None and user_ids is None:
            raise ValueError("give user_ids: the user each row of user_attributes describes")
        if user_ids is not None and str(settings.get("unlisted_users", "error")) != "keep":
            _check_catalog(users, user_ids, "user")
            catalogs.append((True, user_ids))
        if user_attributes is not None:
            for col, values in user_attributes.items():
                columns.append(_column(True, col, values, user_ids, sep))
        for what, values in (("ratings", ratings), ("timestamps", timestamps)):
            _one_per_rating(values, what)
        numbers = _numbers(ratings) if ratings is not None else None  # pandas.NA was a TypeError naming no row
        return cls._from_columns(users, items, ratings if numbers is None else numbers,
                                 _seconds(timestamps) if timestamps is not None else None, catalogs, columns, name,
                                 **settings)

    @classmethod
    def from_frames(cls, ratings, items=None, users=None, *, user="userId", item="movieId", rating="rating",
                    timestamp="timestamp", title="title", genres="genres", sep="|", **settings):
        """A dataset from tables: pandas DataFrames (pandas is not needed
        otherwise) or plain dicts of columns {name: sequence}.

        The keywords name the columns; their defaults are MovieLens' names
        (user="userId", item="movieId", rating="rating", timestamp=
        "timestamp", title="title", genres="genres"): a table with columns
        "user" and "item" needs user="user", item="item".
        A column may also be a named level of the table's index (a users
        table after set_index("userId"), ratings grouped by user and item).
        ratings: the columns `user`, `item`, and `rating` (absent: implicit
            events) and `timestamp` (optional).
        items: the column `item` (the ids, named as in ratings) and any
            others: `title`, `genres` ("A|B" on sep), numbers, dates and
            durations -> numeric (seconds), lists -> multi, text and the
            category dtype -> categorical. users: the column `user` and
            attributes likewise."""
        def cols(frame):  # the columns, then the index's named levels (users.set_index("userId"))
            keys = list(frame.keys())
            levels = getattr(getattr(frame, "index", None), "names", ())
            return keys + [n for n in levels if n is not None and n not in keys]

        def column(frame, name):
            return frame[name] if name in frame.keys() else frame.index.get_level_values(name)

        def col(frame, name):
            c = column(frame, name)
            return c.to_numpy() if hasattr(c, "to_numpy") else c

        rcols = cols(ratings)
        for need in (user, item):
            if need not in rcols:
                raise ValueError("the ratings table has no column %r (has %s)" % (need, ", ".join(map(str, rcols))))
        kw = {}
        if items is not None:
            icols = cols(items)
            if item not in icols:
                raise ValueError("the items table has no column %r (has %s)" % (item, ", ".join(map(str, icols))))
            kw["item_ids"] = col(items, item)
            kw["titles"] = col(items, title) if title in icols else None
            kw["genres"] = col(items, genres) if genres in icols else None
            # the columns themselves: their dtype tells a categorical column of numbers
            kw["item_attributes"] = {c: column(items, c) for c in icols if c not in (item, title, genres)}
        if users is not None:
            ucols = cols(users)
            if user not in ucols:
                raise ValueError("the users table has no column %r (has %s)" % (user, ", ".join(map(str, ucols))))
            kw["user_ids"] = col(users, user)
            kw["user_attributes"] = {c: column(users, c) for c in ucols if c != user}
        return cls.from_arrays(col(ratings, user), col(ratings, item),
                               col(ratings, rating) if rating in rcols else None,
                               # the column itself: to_numpy() of a timezone-aware one is Timestamp objects
                               timestamps=column(ratings, timestamp) if timestamp in rcols else None, sep=sep,
                               **kw, **settings)

    def describe(self, features=False, **settings):
        """What was loaded, as a dict (layout, counts, rating range, the
        attribute columns with their kinds and examples, bytes); with
        features=True also the feature names the TRAIN settings would build.
        The same document as ``cbrec inspect --json``."""
        return _json.loads(self._describe(features, **settings))

    def __repr__(self):
        try:
            return "<cbrec.Dataset %s: %d users, %d items, %d ratings>" % (self.layout, self.n_users, self.n_items,
                                                                           self.n_ratings)
        except ValueError:
            return "<cbrec.Dataset (empty)>"


def _id_record(ids):
    """Item ids (one id, or a sequence of str / int) as the one CSV record
    the exclude and allow settings read: an id holding a comma, a quote, a
    line break or outer blanks is quoted (joined plainly, "sku,5" was two ids); a
    whole-number float is its integer, as a dataset's id (_id_text); anything
    else is a TypeError (None was looked up as 'None')."""
    if isinstance(ids, (str, int, float, _np.integer, _np.floating)) and not isinstance(ids, bool):
        ids = [ids]
    out = []
    for x in ids:
        if isinstance(x, bool):
            raise TypeError("an id must be a str, an int or a whole-number float, not bool")
        t = _cbrec._id_arg(x)  # an id argument's rule (TypeError for anything else)
        if any(c in t for c in ',"\r\n') or t != t.strip():
            t = '"' + t.replace('"', '""') + '"'
        out.append(t)
    return ",".join(out)


class Model(_cbrec._Model):
    """A trained two-tower model: a user tower and an item tower map
    features to vectors, and v_u . v_m scores (user, item) pairs.

    Make one with ``Model.train(dataset, ...)`` or ``Model.load(path)``.
    Then: ``recommend(user)``, ``new_user(profile)``,
    ``recommend_batch(users)``, ``similar(item)``, ``predict(user, item)``,
    ``item_vectors()`` / ``user_vectors()`` (zero-copy numpy views),
    ``save(path, history=None)``. Properties: n_users, n_items, dim, item_ids, user_ids,
    titles, table_k, train_report. A Model pickles (see __reduce__).

    Threads: recommend, new_user, recommend_batch, similar, predict and the
    vectors may run in many threads at once (the GIL is released); add_item,
    build_table and load_table wait for them and run alone."""

    @classmethod
    def train(cls, dataset, *, progress=False, **settings):
        """Split the dataset, fit the features and train the towers.

        progress: False (silent), True (a line per epoch on stderr), or a
            callable given a dict per progress tick (~50 per epoch) and epoch
            end: epoch, epochs, batch, n_batches, end_of_epoch, train_loss,
            valid_loss, valid_rmse, examples_per_sec, seconds, best, stage
            ("train": the model's epochs; before them, when the neighbour
            component is tuned, ticks of "tune-towers", towers trained on a
            carve, their epochs, and one "tune-grid" as its grid starts),
            elapsed (seconds since the call began). A callable that returns
            True (or numpy's True) stops training there and keeps the model so far (an early
            stop: train_report's epochs_run says how far it got); an
            exception raised by the callable stops training and propagates.
        Ctrl-C stops training within a batch and raises KeyboardInterrupt.
        settings: any TRAIN key, '_' for '-' (lists for layer sizes):
%s
        Returns the Model; ``model.train_report`` holds the losses,
        test RMSE, epochs run, parameter count and seconds, the neighbour
        component (neighbours: "ease", "cosine" or None; neighbours_k,
        neighbours_param, neighbours_weight) and its tuning (tune_ndcg,
        tune_ndcg_towers, tune_users, tune_seconds; NaN and 0 untuned) and
        where the steps went (threads; step_towers, step_loss, step_update,
        step_waits: the first worker's CPU seconds, sampled). Raises
        NumericError if training diverged, InvalidArgument / NotFound for a
        bad or unknown setting."""
        return cls._train(dataset, progress, settings)

    @classmethod
    def load(cls, path, table=None, history=None):
        """Load a model file (from save() or ``cbrec train``), and optionally
        a similar-items table (``cbrec precompute``, save_table()) and the
        history file of its users' ratings (default: path + ".history" when
        it exists; without one, known users' rated items are not filtered and
        no reason says "which you rated"). Raises FileError, FormatError
        (corrupt, foreign, other version, a history of another model)."""
        return cls._load(path, table, history)

    def describe(self):
        """The model as a dict: dataset, fingerprint, counts (users, items,
        added_items), dim, rating scale, whether it predicts ratings, table,
        history (its file's path; "memory" when it is at no path: trained
        and not yet saved, or unpickled)."""
        info = _json.loads(self._describe())
        if self.__dict__.get("_unpickled") and info.get("history") not in (None, "absent"):
            info["history"] = "memory"  # not the temporary file it came through, removed
        return info

    def __reduce__(self):
        """Pickling (pickle, copy.deepcopy, multiprocessing, joblib,
        concurrent.futures' process pools): the model travels as the bytes of
        the files save() and save_table() write (made in a private temporary
        folder, removed at once): the model and its users' history, the
        similar-items table and the added items. The unpickled model
        recommends, predicts and finds similar items as this one does. The
        training report comes along, and the block file's path (made
        absolute), read again where the model is unpickled (FileError there
        if it is gone: never a blocked item shown). An approximate index is
        not carried (the binding attaches none)."""
        info = self.describe()
        with _tempfile.TemporaryDirectory(prefix="cbrec-pickle-") as folder:
            path = _os.path.join(folder, "m.cbrec")
            self.save(path)
            if info["table"] or info["added_items"]:
                self.save_table(path + ".table")
            files = {}
            for part in ("", ".history", ".table"):
                if _os.path.exists(path + part):
                    with open(path + part, "rb") as f:
                        files[part] = f.read()
        state = {"files": files, "train_report": self.train_report, "block_file": self.__dict__.get("_block_file")}
        return _model_from_state, (type(self), state)

    def set_block_file(self, path=None):
        super().set_block_file(path)
        path = None if path is None else _os.fspath(path)
        self.__dict__["_block_file"] = _os.path.abspath(path) if path else None  # what pickling carries

    set_block_file.__doc__ = _cbrec._Model.set_block_file.__doc__ + (
        " A pickled model\ncarries the path and reads the file again where it is unpickled.")

    def _cached(self, key, make):
        cache = self.__dict__.setdefault("_cache", {})
        stamp = (self.n_items, self.n_users)
        hit = cache.get(key)
        if hit is None or hit[0] != stamp:
            hit = cache[key] = (stamp, make())
        return hit[1]

    @property
    def item_ids(self):
        """The item ids as a numpy object array, indexed by item number
        (model items, then added ones). recommend_batch(..., ids=True) gives
        ids directly; its numbers are padded with -1, which indexing here
        would take for the last item."""
        return self._cached("items", lambda: _np.array(self._ids(False), dtype=object))

    @property
    def user_ids(self):
        """The user ids as a numpy object array, indexed by user number (the
        rows of user_vectors() and of recommend_batch() with users=None)."""
        return self._cached("users", lambda: _np.array(self._ids(True), dtype=object))

    @property
    def titles(self):
        """The item titles as a numpy object array ('' when none)."""
        return self._cached("titles", lambda: _np.array(self._titles(), dtype=object))

    def item_vectors(self):
        """The item vectors v_m of the model's items, (n_model_items, dim)
        float32: a read-only view of the model's memory (no copy; it keeps
        the model alive). Items added with add_item are not included."""
        return self._vectors(False, self.describe()["items"])

    def user_vectors(self):
        """The user vectors v_u of the known users, (n_users, dim) float32,
        a read-only view of the model's memory (no copy)."""
        return self._vectors(True, self.n_users)

    @staticmethod
    def _opts(n, exclude, include_seen, settings):
        if n == 10 and exclude is None and not include_seen and not settings:
            return None  # the cached defaults
        opts = dict(settings)
        opts["n"] = n
        if exclude is not None:
            opts["exclude"] = exclude
        for key in ("exclude", "allow"):  # id lists: one CSV record, as --exclude reads it
            if opts.get(key) is not None:  # None: the default, as for every setting (allow=None was a TypeError)
                opts[key] = _id_record(opts[key])
        if opts.get("allow") == "":  # the library's unset: allow=[] returned every item
            raise _error(InvalidArgument, "allow: the list names no item (leave it out, or None, to allow every item)")
        if include_seen:
            opts["include_seen"] = True
        return opts

    def recommend(self, user, n=10, *, exclude=None, include_seen=False, **settings):
        """Top-n items for a known user (id, str or int) or a new user (a
        profile dict, as new_user takes).

        exclude: item ids never to return. include_seen: keep items the user
        already rated. allow: only these item ids (an empty list is
        InvalidArgument; None allows every item). settings: any RECOMMEND
        key ('_' for '-'):
%s
        Returns Recommendations (ids, titles, scores, reasons, ...), the same
        list as ``cbrec recommend --json``. Raises NotFound for an unknown user."""
        return Recommendations(self._recommend(user, self._opts(n, exclude, include_seen, settings)))

    def new_user(self, profile, n=10, *, exclude=None, **settings):
        """Recommendations for a user the model has never seen, described by
        a dict: {"genre_ratings": {"Adventure": 5}, "ratings": {"260": 5},
        "<user column>": value} (every part optional; numpy values, pandas
        Series (ratings by item id) and sets are welcome, a NaN is JSON's
        null: a missing attribute, a refused rating). Returns
        Recommendations; ParseError for a malformed profile."""
        if not isinstance(profile, dict):
            raise TypeError("profile must be a dict")
        return Recommendations(self._recommend(profile, self._opts(n, exclude, False, settings)))

    def recommend_batch(self, users=None, n=10, *, ids=False, exclude=None, include_seen=False, **settings):
        """Top-n for many known users at once, ranked by the same score over
        the whole catalog (one matrix product per block; the retrieval
        sources and diversity are not used, and their settings are
        InvalidArgument). users: a sequence of ids, or
        None for every user in user_ids order.

        Returns (items, scores), a row per user:
          ids=False (default): int64 item numbers and float32 scores, both
            (len(users), min(n, n_items)), padded with -1 / -inf when a row
            has fewer items (filters, exclude, allow). The numbers are rows
            of item_vectors() and indexes of item_ids; mind the padding:
            ``model.item_ids[items]`` maps -1 to the last item's id, so keep
            ``items >= 0`` (or ask for ids=True).
          ids=True: a list of lists of item ids (str) and a list of float32
            score arrays of the same lengths, without padding."""
        items, scores = self._recommend_batch(users, n, self._opts(n, exclude, include_seen, settings))
        if not ids:
            return items, scores
        names, kept = self.item_ids, items >= 0
        return [names[row[k]].tolist() for row, k in zip(items, kept)], [row[k] for row, k in zip(scores, kept)]

    def similar(self, item, k=10):
        """The k items nearest to `item` (an id, or a title such as "Toy
        Story"; NotFound lists candidates when a title is ambiguous), by the
        cosine similarity of the item vectors. Returns Recommendations."""
        return Recommendations(self._similar(item, k))

    def find_item(self, query):
        """The id of the item an id or title names (NotFound otherwise)."""
        return self.item_ids[self._find_item(query)]

    def add_item(self, item):
        """Embed a new item with the item tower and add it to the catalog, in
        memory: a dict (or JSON text, or a pandas Series: a DataFrame's row)
        such as {"id": "x1", "title": "...", "genres": ["Comedy"]} (only
        "id" is required). Returns its item number; persist added items
        with save_table(). None or NaN (a DataFrame row's gap) is a missing
        value. Values the model does not know (a new brand, a tag it did not
        keep) are left out with a UserWarning saying which ("strict": True
        makes them errors)."""
        return self._add_item(item)

    def __repr__(self):
        try:
            return "<cbrec.Model: %d users, %d items, dim %d>" % (self.n_users, self.n_items, self.dim)
        except ValueError:
            return "<cbrec.Model (empty)>"


def _model_from_state(cls, state):
    """The Model Model.__reduce__ describes: its files written to a private
    temporary folder, loaded (the model maps them) and removed."""
    with _tempfile.TemporaryDirectory(prefix="cbrec-pickle-") as folder:
        path = _os.path.join(folder, "m.cbrec")
        for part, data in state["files"].items():
            with open(path + part, "wb") as f:
                f.write(data)
        model = cls.load(path, *(path + part if part in state["files"] else None for part in (".table", ".history")))
    model.__dict__["_unpickled"] = True
    model._set_report(state["train_report"])
    if state["block_file"]:
        model.set_block_file(state["block_file"])
    return model


Model.train.__func__.__doc__ %= _settings_doc("train")
Model.recommend.__doc__ %= _settings_doc("recommend")


def evaluate(dataset, models=None, *, progress=False, train=None, **settings):
    """Evaluate models on the same splits of `dataset` (``cbrec eval``):
    baselines (global-mean, bias, popularity, svd, ease, item-knn,
    content-knn, random), the two-tower rows, "cbrec" (train + recommend)
    and "cbrec-towers" (the same model ranking by its towers alone).

    models: a list of names (or "a,b"); None: all. settings: EVAL keys
    (k, folds, threshold, protocol, ...), and TRAIN keys for the two-tower
    rows (also accepted in `train` as a dict):
%s
    Returns the report as a dict: {"models": [{"name", "mean_rmse",
    "mean_ndcg<K>", "mean_recall<K>", "hit_rate", ...}], "k", "splits", ...}.
    progress: as in Model.train (a callable returning True stops the
    training it reports on and every later one, keeping what they trained).
    Ctrl-C stops the two-tower trainings and raises KeyboardInterrupt once
    the evaluation returns."""
    eval_keys = {s["name"] for s in _settings_of("eval")}
    train_keys = {s["name"] for s in _settings_of("train")}
    ev, tr = {}, dict(train or {})
    for key, value in settings.items():
        name = key.replace("-", "_")
        if name not in eval_keys and name not in train_keys:  # the eval table alone suggested 'implicit_epochs' for 'epoch'
            near = _cbrec._near_names(name, sorted(eval_keys | train_keys))  # the library's "did you mean"
            raise _error(NotFound, "unknown eval or train key '%s'%s" % (key, " (did you mean %s?)" % near
                                                                         if near else ""))
        (tr if name not in eval_keys else ev)[key] = value
    if models is not None:
        ev["models"] = models if isinstance(models, str) else list(models)
    return _json.loads(_cbrec._evaluate(dataset, ev, tr, progress))


_settings_cache = {}


def _settings_of(kind):
    if kind not in _settings_cache:
        _settings_cache[kind] = settings(kind)
    return _settings_cache[kind]


evaluate.__doc__ %= _settings_doc("eval")
