"""Datasets from files and from memory: counts, attribute columns, the
array builder agreeing with the file loader, and bad input as exceptions."""
import csv
import os
import warnings

import numpy as np
import pytest

import cbrec


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def columns(path):
    head, rows = read_csv(path)
    return {h: [r[i] for r in rows] for i, h in enumerate(head)}


def test_load_counts(dataset):
    assert (dataset.n_users, dataset.n_items, dataset.n_ratings) == (150, 200, 4000)
    assert dataset.layout == "synthetic"
    d = dataset.describe()
    assert d["ratings"] == 4000 and d["timestamps"] is True
    assert {c["name"] for c in d["item_columns"]} >= {"genres", "year"}


def test_from_arrays_numpy_and_lists_agree():
    users = np.array([1, 1, 2, 2, 3])
    items = np.array([10, 11, 10, 12, 11])
    ratings = np.array([4.0, 3.5, 5.0, 1.0, 2.0])
    a = cbrec.Dataset.from_arrays(users, items, ratings)
    b = cbrec.Dataset.from_arrays([str(u) for u in users], [str(i) for i in items], list(ratings))
    c = cbrec.Dataset.from_arrays(users.tolist(), items.tolist(), ratings.astype(np.float32))
    for ds in (a, b, c):
        assert (ds.n_users, ds.n_items, ds.n_ratings) == (3, 3, 5)
        assert ds.layout == "arrays"
        d = ds.describe()
        assert (d["rating_min"], d["rating_max"]) == (1.0, 5.0)
        assert d["timestamps"] is False


def test_from_arrays_attributes_and_catalog():
    ds = cbrec.Dataset.from_arrays(
        ["u1", "u1", "u2"], ["a", "b", "a"], [5, 3, 4], timestamps=[100, 200, 300],
        item_ids=["a", "b", "c"], titles=["Heat (1995)", "Up (2009)", "No year"],
        genres=["Action|Crime", ["Animation"], ""],
        item_attributes={"budget": np.array([60.0, 175.0, np.nan]), "studio": ["WB", "Pixar", "A24"]},
        user_ids=["u1", "u2"], user_attributes={"age": [30, 40], "tags": ("multi", ["x|y", "y"])})
    assert ds.n_items == 3  # "c" was never rated and still exists
    d = ds.describe()
    kinds = {c["name"]: c["kind"] for c in d["item_columns"]}
    assert kinds == {"genres": "multi", "budget": "numeric", "studio": "categorical", "year": "numeric"}
    genres = next(c for c in d["item_columns"] if c["name"] == "genres")
    assert genres["levels"] == 3 and genres["missing"] == 1
    year = next(c for c in d["item_columns"] if c["name"] == "year")
    assert year["missing"] == 1  # "No year"
    ukinds = {c["name"]: c["kind"] for c in d["user_columns"]}
    assert ukinds == {"age": "numeric", "tags": "multi"}
    assert d["titles"] == 3 and d["timestamps"] is True


def test_catalog_alone_keeps_every_item():
    # item_ids / an items table of ids alone (no title, genres or attribute column) is the catalog,
    # as an items file of ids alone is for the loader: the unrated items "c" and "d" were dropped
    users, items, ratings = ["u1", "u1", "u2", "u3"], ["a", "b", "a", "b"], [5, 3, 4, 2]
    ds = cbrec.Dataset.from_arrays(users, items, ratings, item_ids=["a", "b", "c", "d"], user_ids=["u1", "u2", "u3", "u4"])
    assert (ds.n_items, ds.n_users) == (4, 4)
    frames = cbrec.Dataset.from_frames({"userId": users, "movieId": items, "rating": ratings},
                                       {"movieId": ["a", "b", "c", "d"]})
    assert frames.n_items == 4 and frames.describe()["titles"] == 0
    m = cbrec.Model.train(frames, epochs=1, seed=1, neighbours=0)
    assert m.n_items == 4 and list(m.item_ids) == ["a", "b", "c", "d"] and set(m.titles) == {""}
    assert set(m.recommend("u3", n=3).ids) == {"a", "c", "d"}  # the cold items are recommended too
    # an id twice: named by position, for a catalog alone and for one beside a column
    for attributes in (None, {"p": [1, 2, 3]}):
        with pytest.raises(cbrec.ParseError, match=r"item ids\[2\]: id 'a' given twice \(first at \[0\]\)"):
            cbrec.Dataset.from_arrays(users, items, ratings, item_ids=["a", "b", "a"], item_attributes=attributes)


def test_users_table_keeps_unrated_users(tmp_path):
    # a users table (a DataFrame, or a dict of columns of ids alone) keeps its users nobody saw rate:
    # the model knows them, with their attributes, and gives them cold-start recommendations
    ratings = {"userId": [1, 1, 2, 3], "movieId": ["a", "b", "a", "c"], "rating": [5, 3, 4, 2]}
    tables = [{"userId": [1, 2, 3, 4]},
              FakeFrame({"userId": [1, 2, 3, 4], "age": [20, 30, 40, 50], "gender": list("MFMF")})]
    for users in tables:
        ds = cbrec.Dataset.from_frames(ratings, users=users)
        assert (ds.n_users, ds.n_ratings) == (4, 4)
        m = cbrec.Model.train(ds, epochs=1, seed=1, neighbours=0)
        assert list(m.user_ids) == ["1", "2", "3", "4"] and m.user_vectors().shape[0] == 4
        recs = m.recommend(4, n=2)
        assert len(recs) == 2 and any("no training ratings" in note for note in recs.notes)
        m.save(str(tmp_path / "m.cbrec"))
        assert list(cbrec.Model.load(str(tmp_path / "m.cbrec")).user_ids) == ["1", "2", "3", "4"]


def test_from_arrays_rating_outside_the_catalog():
    # a rating of an item item_ids lacks is an error naming the row, as a ratings file's is;
    # from_arrays added it silently, without a title
    with pytest.raises(cbrec.ParseError, match=r"items\[2\]: unknown item id 'zz'"):
        cbrec.Dataset.from_arrays(["u1", "u1", "u2"], ["a", "b", "zz"], [4, 5, 3], item_ids=["a", "b", "c"],
                                  titles=["A", "B", "C"])
    ds = cbrec.Dataset.from_arrays(["u1", "u2"], np.array([1, 2]), [4, 5], item_ids=np.array([1, 2, 3]),
                                   titles=["A", "B", "C"])  # numpy ints on both sides: the same ids
    assert ds.n_items == 3


def test_catalog_check_by_distinct_values():
    # the check reads an array's distinct values (a row at a time it cost a second per 2 million
    # rows); an unknown one is still named by its first row; 1 and 1.0 are one id, '1', as the
    # builder makes them (a whole-number float is its integer), and 1.5 is '1.5'
    items = np.array([1, 2, 2, 7, 1, 7])
    with pytest.raises(cbrec.ParseError, match=r"items\[3\]: unknown item id '7'"):
        cbrec.Dataset.from_arrays(["u1", "u1", "u2", "u2", "u3", "u4"], items, [4, 5, 3, 2, 1, 1],
                                  item_ids=np.array([1, 2, 3]))
    assert cbrec.Dataset.from_arrays(["u1", "u2"], [1, 1.0], [4, 5], item_ids=["1", "2"]).n_items == 2
    with pytest.raises(cbrec.ParseError, match=r"items\[1\]: unknown item id '1.5'"):
        cbrec.Dataset.from_arrays(["u1", "u2"], [1, 1.5], [4, 5], item_ids=["1", "2"])
    pd = pytest.importorskip("pandas")
    with pytest.raises(cbrec.ParseError, match=r"items\[2\]: unknown item id 'zz'"):
        cbrec.Dataset.from_arrays(["u1", "u1", "u2"], pd.Series(["a", "b", "zz"]), [4, 5, 3], item_ids=["a", "b"])
    # pandas.NA is a missing id, the builder's to refuse (it was 'unknown item id '<NA>'')
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: empty item id"):
        cbrec.Dataset.from_arrays(["u1", "u2"], pd.Series(["a", pd.NA], dtype=object), [4, 5], item_ids=["a", "b"])


def test_implicit_events_merge():
    ds = cbrec.Dataset.from_arrays(["u", "u", "v"], ["a", "a", "b"], None)
    d = ds.describe()
    assert d["implicit"] is True and d["binary"] is True
    assert ds.n_ratings == 2 and d["merged_rows"] == 1


def test_from_frames_equals_load(synth_dir, dataset):
    """The builder fed the synthetic files' columns gives the dataset the
    file loader gives: same counts, same columns, same trained model."""
    r = columns(os.path.join(synth_dir, "ratings.csv"))
    m = columns(os.path.join(synth_dir, "movies.csv"))
    u = columns(os.path.join(synth_dir, "users.csv"))
    ratings = {"userId": r["userId"], "movieId": r["movieId"], "rating": np.array(r["rating"], dtype=float),
               "timestamp": np.array(r["timestamp"], dtype=np.int64)}
    users = {"userId": u["userId"], "age": np.array(u["age"], dtype=float), "gender": u["gender"],
             "occupation": u["occupation"], "region": u["region"]}
    ds = cbrec.Dataset.from_frames(ratings, m, users, range="0.5,5")
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (dataset.n_users, dataset.n_items, dataset.n_ratings)
    a, b = ds.describe(features=True), dataset.describe(features=True)
    for key in ("user_columns", "item_columns", "rating_min", "rating_max", "user_features", "item_features"):
        assert a[key] == b[key], key
    m1 = cbrec.Model.train(ds, epochs=1, seed=5)
    m2 = cbrec.Model.train(dataset, epochs=1, seed=5)
    assert np.array_equal(m1.item_vectors(), m2.item_vectors())
    assert m1.recommend("3").ids == m2.recommend("3").ids


def test_from_frames_pandas(synth_dir):
    pd = pytest.importorskip("pandas", reason="python3-pandas is not installed (optional)")
    ratings = pd.read_csv(os.path.join(synth_dir, "ratings.csv"))
    movies = pd.read_csv(os.path.join(synth_dir, "movies.csv"))
    ds = cbrec.Dataset.from_frames(ratings, movies)
    assert (ds.n_items, ds.n_ratings) == (200, 4000)


def test_errors_are_exceptions(tmp_path):
    with pytest.raises(cbrec.ParseError, match=r"ratings\[2\]: duplicate rating for user 'u' and item 'a' \(first at \[0\]\)") as e:
        cbrec.Dataset.from_arrays(["u", "v", "u"], ["a", "a", "a"], [1, 2, 3])
    assert e.value.code == -2 and isinstance(e.value, ValueError) and isinstance(e.value, cbrec.Error)
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: empty user id"):
        cbrec.Dataset.from_arrays(["u", ""], ["a", "b"], [1, 2])
    with pytest.raises(cbrec.ParseError, match="outside the declared range"):
        cbrec.Dataset.from_arrays(["u"], ["a"], [7], range="1,5")
    with pytest.raises(cbrec.ParseError, match="not a finite number"):
        cbrec.Dataset.from_arrays(["u"], ["a"], [float("nan")])
    ok = cbrec.Dataset.from_arrays(["u", "", "v"], ["a", "b", "c"], [1, 2, 3], skip_bad_rows=True)
    assert ok.n_ratings == 2 and ok.n_skipped == 1
    with pytest.raises(cbrec.ParseError, match=r"item ids\[1\]: id .a. given twice \(first at \[0\]\)"):
        cbrec.Dataset.from_arrays(["u"], ["a"], [1], item_ids=["a", "a"], titles=["x", "y"])
    with pytest.raises(ValueError, match="same length"):
        cbrec.Dataset.from_arrays(["u", "v"], ["a"], [1, 2])
    with pytest.raises(cbrec.NotFound, match=r"unknown train key .skip_bad_row. \(did you mean skip_bad_rows\?\)"):
        cbrec.Dataset.from_arrays(["u"], ["a"], [1], skip_bad_row=True)
    with pytest.raises(cbrec.FileError) as e:
        cbrec.Dataset.load(str(tmp_path / "missing"))
    assert e.value.code == -1 and isinstance(e.value, OSError)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,4,10\n1,3,oops,11\n")
    (bad / "movies.csv").write_text("movieId,title,genres\n2,Two,Drama\n3,Three,Comedy\n")
    with pytest.raises(cbrec.ParseError, match=r"ratings.csv:3: .*'oops'"):
        cbrec.Dataset.load(str(bad))
    with pytest.raises(TypeError):
        cbrec.Dataset.from_arrays(5, ["a"], [1])


class FakeFrame:
    """What from_frames uses of a pandas DataFrame (keys, columns with
    to_numpy, an ambiguous truth value), for machines without pandas."""

    def __init__(self, cols):
        self._cols = {k: np.asarray(v) for k, v in cols.items()}

    def keys(self):
        return list(self._cols)

    def items(self):
        return [(k, self[k]) for k in self._cols]

    def __getitem__(self, name):
        col = self._cols[name]
        return type("Series", (), {"to_numpy": lambda self: col, "__iter__": lambda self: iter(col),
                                   "__array__": lambda self, dtype=None: np.asarray(col, dtype)})()

    def __bool__(self):
        raise ValueError("The truth value of a DataFrame is ambiguous")


def test_from_frames_dataframe_like():
    ratings = FakeFrame({"userId": [1, 1, 2], "movieId": [10, 20, 10], "rating": [4.0, 3.0, 5.0]})
    movies = FakeFrame({"movieId": [10, 20, 30], "title": ["A (1990)", "B (2000)", "C"],
                        "genres": ["Drama", "Comedy|Drama", "Horror"], "runtime": [90.0, 120.0, 80.0]})
    ds = cbrec.Dataset.from_frames(ratings, movies)
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (2, 3, 3)
    kinds = {c["name"]: c["kind"] for c in ds.describe()["item_columns"]}
    assert kinds == {"genres": "multi", "runtime": "numeric", "year": "numeric"}
    attrs = FakeFrame({"runtime": [90.0, 120.0, 80.0]})
    ds2 = cbrec.Dataset.from_arrays([1], [10], [4.0], item_ids=[10, 20, 30], item_attributes=attrs)
    assert ds2.n_items == 3


def test_from_arrays_multi_column_of_lists():
    # tags given as lists of different lengths (a ragged array to numpy), and lists of numbers
    ds = cbrec.Dataset.from_arrays(
        ["u1", "u1", "u2"], ["a", "b", "a"], [5, 3, 4], item_ids=["a", "b", "c"],
        item_attributes={"tags": [["café – 東京", "x"], ["y"], []], "sizes": [[1, 2], [3, 4], [5, 6]]})
    cols = {c["name"]: c for c in ds.describe()["item_columns"]}
    assert cols["tags"]["kind"] == "multi" and cols["tags"]["levels"] == 3
    assert cols["sizes"]["kind"] == "multi" and cols["sizes"]["levels"] == 6


def test_nan_in_text_columns_is_missing():
    # pandas fills a text column's empty cells with NaN (or pd.NA): missing, not the value "nan"
    ds = cbrec.Dataset.from_arrays(
        ["u1", "u1", "u2"], ["a", "b", "a"], [5, 3, 4], item_ids=["a", "b", "c"],
        item_attributes={"studio": ["WB", float("nan"), np.float32("nan")], "genres": ("multi", ["x|y", np.nan, "y"])})
    cols = {c["name"]: c for c in ds.describe()["item_columns"]}
    assert cols["studio"]["missing"] == 2 and cols["studio"]["examples"] == ["WB"]
    assert cols["genres"]["missing"] == 1 and "nan" not in cols["genres"]["examples"]
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: empty user id"):
        cbrec.Dataset.from_arrays(["u1", float("nan")], ["a", "b"], [5, 3])


def test_numbers_with_gaps_are_numeric():
    # numbers with missing cells come as objects (a list with None, pandas' nullable Int64 /
    # Float64 / boolean): numeric with NaN gaps, as a float array is; they were categorical,
    # an "age" column with the levels "30" and "40"
    def kinds(**attrs):
        ds = cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], user_ids=["u1", "u2", "u3"],
                                       user_attributes=attrs)
        return {c["name"]: (c["kind"], c["missing"]) for c in ds.describe()["user_columns"]}
    assert kinds(age=[30, None, 40], score=np.array([1.5, np.nan, 2], dtype=object), zip=["1", None, "3"],
                 mixed=[1, "x", None], height=("numeric", [1.8, None, 1.6])) == {
        "age": ("numeric", 1), "score": ("numeric", 1), "zip": ("categorical", 1), "mixed": ("categorical", 1),
        "height": ("numeric", 1)}
    pd = pytest.importorskip("pandas")
    users = pd.DataFrame({"userId": ["u1", "u2", "u3"], "age": pd.Series([30, None, 40], dtype="Int64"),
                          "w": pd.Series([1.5, 2, None], dtype="Float64"), "vip": pd.Series([True, None, False],
                                                                                           dtype="boolean")})
    ds = cbrec.Dataset.from_frames({"userId": ["u1", "u2"], "movieId": ["a", "b"], "rating": [4, 5]}, users=users)
    assert {c["name"]: (c["kind"], c["missing"]) for c in ds.describe()["user_columns"]} == {
        "age": ("numeric", 1), "w": ("numeric", 1), "vip": ("numeric", 1)}


def test_multi_cells_as_numpy_arrays():
    # pandas.read_parquet gives a list column's cells as numpy arrays: each is a cell's values,
    # not the one level "['jazz' 'rock']"
    cells = np.empty(3, dtype=object)
    cells[:] = [np.array(["jazz", "rock"]), np.array(["pop"]), np.array([], dtype=str)]
    ds = cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], item_ids=["a", "b", "c"],
                                   genres=cells, item_attributes={"tags": cells})
    cols = {c["name"]: c for c in ds.describe()["item_columns"]}
    for name in ("genres", "tags"):
        assert cols[name]["kind"] == "multi" and sorted(cols[name]["examples"]) == ["jazz", "pop", "rock"], name


def test_missing_rating_names_its_row():
    # a missing rating (None, pandas.NA in a nullable Float64 column) is the builder's bad row,
    # named; pandas.NA was a TypeError ("float() argument must be ... not 'NAType'") naming none
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: rating nan is not a finite number"):
        cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, None])
    pd = pytest.importorskip("pandas")
    ratings = pd.DataFrame({"userId": ["u1", "u2", "u3"], "movieId": ["a", "b", "a"],
                            "rating": pd.Series([4, None, 5], dtype="Float64")})
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: rating nan is not a finite number"):
        cbrec.Dataset.from_frames(ratings)
    assert cbrec.Dataset.from_frames(ratings, skip_bad_rows=True).n_ratings == 2


def test_timestamps_as_datetimes_and_gaps():
    # datetime64 timestamps are seconds whatever their unit (pandas' are nanoseconds: refused as
    # out of range; numpy days were taken for seconds); a missing one (NaN, NaT) is named as such
    # (NaN was cast to -9223372036854775808, and a warning printed)
    days = np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[D]")
    for ts in (days, days.astype("datetime64[ns]")):
        ds = cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=ts)
        assert ds.describe()["timestamps"] is True
    for gap in (np.array([1.6e9, np.nan]), np.array(["2020-01-01", "NaT"], dtype="datetime64[ns]"), [1600000000, None]):
        with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: no timestamp"):
            cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=gap)
        ok = cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=gap, skip_bad_rows=True)
        assert ok.n_ratings == 1 and ok.n_skipped == 1
    for huge in (1e30, float("inf"), -1e300):  # the cast made them INT64_MIN, 'no timestamp', with a warning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: timestamp -?4611686018427387904 is not in"):
                cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=[1.6e9, huge])
    with pytest.raises(cbrec.ParseError, match=r"ratings\[0\]: timestamp -86400 is not in"):
        cbrec.Dataset.from_arrays(["u1"], ["a"], [4], timestamps=np.array(["1969-12-31"], dtype="datetime64[D]"))
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"userId": ["u1", "u2"], "movieId": ["a", "b"], "rating": [4, 5],
                          "timestamp": pd.to_datetime([1.6e9, 1.7e9], unit="s")})
    assert cbrec.Dataset.from_frames(frame).describe()["timestamps"] is True


def test_timezone_aware_timestamps():
    # a timezone-aware pandas column (datetime64[ns, UTC], [ns, Asia/Tokyo]) is its instants in
    # seconds since the epoch; its to_numpy() is Timestamp objects, which were a TypeError ('int()
    # argument must be ... not 'Timestamp''); aware datetime objects likewise, naive ones as UTC.
    # One instant, 2**32 s, in each form: the builder's range check quotes the seconds it got
    pd = pytest.importorskip("pandas")
    utc = pd.to_datetime([1.6e9, 2 ** 32], unit="s", utc=True)
    out_of_range = r"ratings\[%d\]: timestamp 4294967296 is not in"
    for ts in (utc, pd.Series(utc).dt.tz_convert("Asia/Tokyo"), utc.tz_convert("America/New_York").to_numpy(),
               [t.to_pydatetime() for t in utc.tz_convert("Asia/Kolkata")], [t.tz_localize(None) for t in utc]):
        with pytest.raises(cbrec.ParseError, match=out_of_range % 1):
            cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=ts)
    frame = pd.DataFrame({"userId": ["u1", "u2", "u3"], "movieId": ["a", "b", "a"], "rating": [4, 5, 3],
                          "timestamp": pd.Series(pd.to_datetime([1.6e9, 1.7e9, 2 ** 32], unit="s")).dt.tz_localize(
                              "UTC")})
    with pytest.raises(cbrec.ParseError, match=out_of_range % 2):
        cbrec.Dataset.from_frames(frame)
    frame["timestamp"] = frame["timestamp"].dt.tz_convert("Europe/Paris").where(frame["rating"] != 5)  # a NaT
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: no timestamp"):
        cbrec.Dataset.from_frames(frame)
    ok = cbrec.Dataset.from_frames(frame.iloc[:2], skip_bad_rows=True)
    assert ok.describe()["timestamps"] is True and (ok.n_ratings, ok.n_skipped) == (1, 1)
    with pytest.raises(TypeError, match=r"timestamps\[1\]: a float is not a date or a time, as the column's first"):
        cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=[utc[0], 1.6e9])


def test_ids_that_are_not_texts_are_refused():
    # str() made garbage ids of these: the rows of a 2-D array ("['a']"), bytes ("b'a'"), and a
    # str's characters (users="alice" was five users); each is a TypeError naming the row
    cases = [((np.array([["u1"], ["u2"]]), ["a", "b"]), r"users\[0\]: a numpy.ndarray is not an id"),
             (([b"u1", b"u2"], ["a", "b"]), r"users\[0\]: a bytes is not an id"),
             ((["u1", "u2"], np.array([b"a", b"b"])), r"items\[0\]: a numpy.bytes_ is not an id"),
             (("uv", "ab"), r"users must be a sequence, not a str")]
    for (users, items), message in cases:
        with pytest.raises(TypeError, match=message):
            cbrec.Dataset.from_arrays(users, items, [4, 5])
    with pytest.raises(TypeError, match=r"items column 'title'\[1\]: a bytes is not an id or a text"):
        cbrec.Dataset.from_arrays(["u1"], ["a"], [4], item_ids=["a", "b"], titles=["A", b"B"])


def test_rating_by_a_user_outside_the_users_table():
    # as a ratings file's user must be in its users file (a user the table lacks is named)
    with pytest.raises(cbrec.ParseError, match=r"users\[1\]: unknown user id '2.5' \(not in user_ids\)"):
        cbrec.Dataset.from_arrays([1, 2.5, 2], ["a", "b", "a"], [4, 5, 3], user_ids=["1", "2"],
                                  user_attributes={"age": [30, 40]})
    # pandas makes an int id column float when a cell is empty: 1.0 is the id '1', as Python's
    # 1 == 1.0 (it was '1.0': an error against a users table of ints, and recommend(1) found no one)
    ds = cbrec.Dataset.from_frames({"userId": np.array([1.0, 2.0]), "movieId": ["a", "b"], "rating": [4, 5]},
                                   users={"userId": np.array([1, 2]), "age": [30, 40]})
    assert ds.describe()["user_columns"][0]["missing"] == 0
    ds = cbrec.Dataset.from_frames({"userId": np.array([1, 2]), "movieId": ["a", "b"], "rating": [4, 5]},
                                   users={"userId": np.array([1, 2, 3]), "age": [30, 40, 50]})
    assert ds.describe()["user_columns"][0]["missing"] == 0


def test_nat_in_text_columns_is_missing():
    # a NaT (numpy's, or pandas' in an object column) is a missing cell, as NaN is: it was the
    # level "NaT"
    when = np.array(["2020-01-01", "NaT", "2021-01-01"], dtype="datetime64[D]")
    ds = cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], item_ids=["a", "b", "c"],
                                   item_attributes={"launch": ("categorical", when)})
    col = ds.describe()["item_columns"][0]
    assert col["missing"] == 1 and "NaT" not in col["examples"]
    pd = pytest.importorskip("pandas")
    ds = cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], item_ids=["a", "b", "c"],
                                   item_attributes={"launch": ("categorical", ["x", pd.NaT, "y"])})
    assert ds.describe()["item_columns"][0]["missing"] == 1


def test_columns_named_by_numbers():
    # a table read without a header names its columns 0, 1, ...: an attribute column 5 is "5"
    # (it was a TypeError 'column() argument 2 must be str, not int')
    ds = cbrec.Dataset.from_frames({0: ["u1", "u2"], 1: ["a", "b"], 2: [4, 5]}, {1: ["a", "b", "c"], 5: ["X", "Y", "X"]},
                                   user=0, item=1, rating=2)
    assert [(c["name"], c["kind"]) for c in ds.describe()["item_columns"]] == [("5", "categorical")]


def test_categorical_dtype_is_categorical():
    # a pandas categorical column is categorical whatever its values: occupation codes 3 and 7 as a
    # category were a numeric column (an occupation "7" read as more than "3")
    pd = pytest.importorskip("pandas")
    users = pd.DataFrame({"userId": ["u1", "u2", "u3"], "occupation": pd.Series([3, 7, 3], dtype="category"),
                          "zone": pd.Series([1.5, None, 2.5], dtype="category"), "age": [20, 30, 40]})
    ratings = pd.DataFrame({"userId": pd.Series(["u1", "u2", "u3"], dtype="category"), "movieId": ["a", "b", "a"],
                            "rating": [4, 5, 3]})
    expect = {"occupation": ("categorical", 0, ["3", "7"]), "zone": ("categorical", 1, ["1.5", "2.5"]),
              "age": ("numeric", 0, None)}
    for ds in (cbrec.Dataset.from_frames(ratings, users=users),
               cbrec.Dataset.from_arrays(ratings["userId"], ratings["movieId"], ratings["rating"],
                                         user_ids=users["userId"], user_attributes=users.drop(columns="userId"))):
        got = {c["name"]: (c["kind"], c["missing"], c.get("examples")) for c in ds.describe()["user_columns"]}
        assert got == expect


def test_timedeltas_and_periods_as_timestamps():
    # a timedelta64 column is its seconds (its nanoseconds were taken for seconds, so anything past
    # 4.3 s was out of range) and a pandas Period its start (a monthly Period was its ordinal, months
    # since 1970, taken for seconds); 2**32 s in each form: the range check quotes the seconds it got
    pd = pytest.importorskip("pandas")
    big = np.array([1600000000, 2 ** 32])
    for ts in (big.astype("timedelta64[s]").astype("timedelta64[ns]"), pd.to_timedelta(big, unit="s"),
               [pd.Timedelta(0), pd.Timedelta(seconds=2 ** 32)],
               pd.Series(pd.to_datetime(big, unit="s")).dt.to_period("s"),
               [np.timedelta64(0, "D"), np.timedelta64(2 ** 32 // 60 + 1, "m")]):
        with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: timestamp 42949(67296|67340) is not in"):
            cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=ts)
    months = pd.DataFrame({"userId": ["u1", "u2"], "movieId": ["a", "b"], "rating": [4, 5],
                           "timestamp": pd.period_range("2106-02", periods=2, freq="M")})
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: timestamp 4296844800 is not in"):  # 2106-03-01
        cbrec.Dataset.from_frames(months)
    assert cbrec.Dataset.from_frames(months.iloc[:1]).describe()["timestamps"] is True


def test_ids_in_the_index():
    # a table indexed by its ids (users.set_index("userId"), ratings grouped by user and item) names
    # them by the index's levels: 'the users table has no column 'userId''
    pd = pytest.importorskip("pandas")
    ratings = pd.DataFrame({"userId": [1, 1, 2, 3], "movieId": ["a", "b", "a", "c"], "rating": [5, 3, 4, 2],
                            "timestamp": pd.to_datetime([1, 2, 3, 4], unit="D", utc=True)})
    items = pd.DataFrame({"movieId": ["a", "b", "c", "d"], "title": ["A (1990)", "B", "C", "D"],
                          "studio": list("xyxy")})
    users = pd.DataFrame({"userId": [1, 2, 3, 4], "age": [20, 30, 40, 50]})
    want = cbrec.Dataset.from_frames(ratings, items, users).describe(features=True)
    for r, i, u in ((ratings.set_index(["userId", "movieId"]), items.set_index("movieId"), users.set_index("userId")),
                    (ratings.set_index("timestamp"), items.set_index(["movieId", "studio"]), users)):
        got = cbrec.Dataset.from_frames(r, i, u).describe(features=True)
        for key in ("users", "items", "ratings", "timestamps", "titles", "user_columns", "item_columns",
                    "user_features", "item_features"):
            assert got[key] == want[key], key
    with pytest.raises(ValueError, match=r"the users table has no column 'uid' \(has age, userId\)"):
        cbrec.Dataset.from_frames(ratings.rename(columns={"userId": "uid"}), users=users.set_index("userId"),
                                  user="uid")


def test_decimal_cells_are_numbers():
    # pandas.read_sql gives a NUMERIC column as decimal.Decimal objects, which are not numbers.Real:
    # a price column was categorical with a level per price
    from decimal import Decimal
    ds = cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [Decimal("4.5"), Decimal(5)], item_ids=["a", "b", "c"],
                                   item_attributes={"price": [Decimal("9.99"), None, Decimal("12")],
                                                    "code": ("categorical", [Decimal(1), Decimal(2), None])})
    assert [(c["name"], c["kind"], c["missing"]) for c in ds.describe()["item_columns"]] == [
        ("price", "numeric", 1), ("code", "categorical", 1)]
    assert ds.describe()["rating_max"] == 5.0


def test_dates_and_durations_as_attributes():
    # a date or duration column is numeric, in seconds: a timedelta column's levels were
    # '86400000000000 nanoseconds', a date column's one level per date; ("categorical", ...) keeps levels
    pd = pytest.importorskip("pandas")
    signup = pd.Series(pd.to_datetime(["2020-01-01", None, "2021-01-01"])).dt.tz_localize("Europe/Paris")
    ds = cbrec.Dataset.from_frames(
        {"userId": ["u1", "u2"], "movieId": ["a", "b"], "rating": [4, 5]},
        {"movieId": ["a", "b", "c"], "runtime": pd.to_timedelta([90, 120, None], unit="min"),
         "released": np.array(["1999-05-01", "2001-01-01", "NaT"], dtype="datetime64[D]"),
         "tags": [["x", "y"], ["y"], []], "launch": ("categorical", [pd.Timestamp("2020-01-01"), None, None])},
        {"userId": ["u1", "u2", "u3"], "signup": signup, "seen": [pd.Timestamp("2020-01-01"), None, "soon"]})
    d = ds.describe()
    assert [(c["name"], c["kind"], c["missing"]) for c in d["item_columns"]] == [
        ("runtime", "numeric", 1), ("released", "numeric", 1), ("tags", "multi", 1), ("launch", "categorical", 2)]
    assert [(c["name"], c["kind"], c["missing"]) for c in d["user_columns"]] == [
        ("signup", "numeric", 1), ("seen", "categorical", 1)]  # dates with a text among them: text


def test_timestamps_as_iso_texts():
    # a CSV read without parse_dates has its times as texts: they were "invalid literal for int() with
    # base 10: '2020-01-01'", naming no row; ISO 8601 texts are their instants (naive ones UTC), texts
    # of numbers are numbers as before; 2**32 s, the range check quotes the seconds it got
    out_of_range = r"ratings\[1\]: timestamp 4294967296 is not in"
    for ts in (["2020-01-01", "2106-02-07T06:28:16"], np.array(["2020-01-01 10:00", "2106-02-07 07:28:16+01:00"]),
               ["20200101", "4294967296"]):  # digits are seconds, though fromisoformat reads the first as a date
        with pytest.raises(cbrec.ParseError, match=out_of_range):
            cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=ts)
    # read by the library's reader, as a data file's: a lower-case z and a leap second (second 60, the next
    # minute's first) were "not a date or a time" to datetime.fromisoformat
    for text, seconds in (("2106-02-07T06:28:16z", 4294967296), ("2106-02-07T06:28:60Z", 4294967340),
                          ("9999-12-31T23:59:60Z", 253402300800)):  # past a datetime's years: was an OverflowError
        with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: timestamp %d is not in" % seconds):
            cbrec.Dataset.from_arrays(["u1", "u2"], ["a", "b"], [4, 5], timestamps=["2020-01-01", text])
    ok = cbrec.Dataset.from_arrays(["u1", "u2", "u3"], ["a", "b", "a"], [4, 5, 3],
                                   timestamps=np.array(["2020-01-01", None, "2021-03-04T05:06:07Z"], dtype=object),
                                   skip_bad_rows=True)
    assert (ok.n_ratings, ok.n_skipped) == (2, 1)
    with pytest.raises(TypeError, match=r"timestamps\[2\]: 'soon' is not a date or a time"):
        cbrec.Dataset.from_arrays(["u1", "u2", "u3"], ["a", "b", "a"], [4, 5, 3],
                                  timestamps=["2020-01-01", None, "soon"])
    # an attribute column of such texts stays text
    ds = cbrec.Dataset.from_arrays(["u1"], ["a"], [4], item_ids=["a", "b"], item_attributes={"d": ["2020-01-01", None]})
    assert ds.describe()["item_columns"][0]["kind"] == "categorical"


def test_infinite_attribute_values():
    # an infinity in a numeric column (a ratio divided by zero) made the features infinite and training
    # fail as 'training diverged ... (try a lower learning rate)'; it is a bad row naming the cell, as a
    # file's is, and missing under skip_bad_rows
    users, items, ratings = ["u1", "u1", "u2"], ["a", "b", "a"], [4, 5, 3]
    for bad, shown in ((np.inf, "inf"), (-1e300, r"-1e\+300")):
        price = np.array([1.0, 2.0, bad])
        catalog = {"item_ids": ["a", "b", "c"], "item_attributes": {"price": price}}
        with pytest.raises(cbrec.ParseError, match=r"items column 'price'\[2\]: %s is not a finite number" % shown):
            cbrec.Dataset.from_arrays(users, items, ratings, **catalog)
        ds = cbrec.Dataset.from_arrays(users, items, ratings, skip_bad_rows=True, **catalog)
        assert ds.n_skipped == 1 and ds.describe()["item_columns"][0]["missing"] == 1
        assert cbrec.Model.train(ds, epochs=1, seed=1).n_items == 3


def test_unlisted_users_kept_when_asked(tmp_path):
    """A rating by a user the users file does not list (a live user's
    exported events): a ParseError naming the line, or under
    unlisted_users="keep" a user of its own, every attribute missing."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "cbrec.schema").write_text("ratings = r.csv\nratings.columns = who:user, what:item, stars:rating\n"
                                    "items = i.csv\nitems.columns = id, name:title\n"
                                    "users = u.csv\nusers.columns = id, country:categorical\n")
    (d / "i.csv").write_text("id,name\na,A\nb,B\n")
    (d / "u.csv").write_text("id,country\nu1,FR\n")
    (d / "r.csv").write_text("who,what,stars\nu1,a,4\nlive-7,b,5\n")
    with pytest.raises(cbrec.ParseError, match=r"r.csv:3: unknown user id 'live-7'"):
        cbrec.Dataset.load(str(d))
    assert cbrec.Dataset.load(str(d), unlisted_users="keep").n_users == 2
    with pytest.raises(cbrec.ParseError, match="live-7"):
        cbrec.Dataset.from_arrays(["u1", "live-7"], ["a", "b"], [4, 5], user_ids=["u1"],
                                  user_attributes={"country": ["FR"]})
    ds = cbrec.Dataset.from_arrays(["u1", "live-7"], ["a", "b"], [4, 5], user_ids=["u1"],
                                   user_attributes={"country": ["FR"]}, unlisted_users="keep")
    assert ds.n_users == 2


def test_ratings_and_timestamps_one_value_per_rating():
    """A ratings or timestamps column that is not one value per rating (a
    one-column DataFrame, df[["rating"]]; a 2-D array; a generator; a
    scalar) is a ValueError naming it and its shape (it was numpy's 'object
    too deep for desired array', naming nothing)."""
    users, items = ["a", "b"], ["x", "y"]
    for bad, said in ((np.array([[4.0], [5.0]]), r"ratings .*not of shape \(2, 1\)"),
                      ([[4.0], [5.0]], r"ratings .*not of shape \(2, 1\)"),
                      ((r for r in [4.0, 5.0]), "ratings .*not a generator"), (4.0, "ratings .*not a float")):
        with pytest.raises(ValueError, match=said):
            cbrec.Dataset.from_arrays(users, items, bad)
    with pytest.raises(ValueError, match=r"timestamps .*not of shape \(2, 1\)"):
        cbrec.Dataset.from_arrays(users, items, [4, 5], timestamps=np.array([[1], [2]]))
    assert cbrec.Dataset.from_arrays(users, items, np.array([4.0, 3.0, 5.0])[::2], timestamps=[1, 2]).n_ratings == 2


def test_masked_and_complex_values():
    # a masked array's masked cells are missing values (its data under the mask was read as
    # present); complex numbers are refused (the imaginary part was dropped in silence)
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]"):
        cbrec.Dataset.from_arrays(["a", "b"], ["x", "y"], np.ma.array([4.0, 5.0], mask=[False, True]))
    with pytest.raises(cbrec.ParseError, match=r"ratings\[1\]: empty user id"):
        cbrec.Dataset.from_arrays(np.ma.array(["a", "b"], mask=[False, True]), ["x", "y"], [4, 5])
    assert cbrec.Dataset.from_arrays(["a", "b"], ["x", "y"], np.ma.array([4.0, 5.0])).n_ratings == 2
    ds = cbrec.Dataset.from_arrays(["a", "b"], ["x", "y"], [4, 5], item_ids=["x", "y"],
                                   item_attributes={"price": np.ma.array([1.0, 2.0], mask=[True, False])})
    assert ds.describe()["item_columns"][0]["missing"] == 1
    # titles too (a masked title was a TypeError naming a MaskedConstant): the masked one has no year
    ds = cbrec.Dataset.from_arrays(["a", "b"], ["x", "y"], [4, 5], item_ids=["x", "y"],
                                   titles=np.ma.array(["Heat (1995)", "Bad (2001)"], mask=[False, True]))
    assert [(c["name"], c["missing"]) for c in ds.describe()["item_columns"]] == [("year", 1)]
    for bad in (np.array([4 + 1j, 5]), [4, 5j]):
        with pytest.raises(TypeError, match="ratings: complex numbers"):
            cbrec.Dataset.from_arrays(["a", "b"], ["x", "y"], bad)
    with pytest.raises(TypeError, match="items column 'price': complex numbers"):
        cbrec.Dataset.from_arrays(["a", "b"], ["x", "y"], [4, 5], item_ids=["x", "y"],
                                  item_attributes={"price": np.array([1j, 2])})
