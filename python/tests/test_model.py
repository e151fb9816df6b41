"""Models from Python: training, recommendations and their options, numpy
round trips, the CLI's answers for the same model file, errors, threads,
progress and Ctrl-C, and reference counts over 10,000 calls."""
import gc
import json
import multiprocessing
import os
import pickle
import pydoc
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

import numpy as np
import pytest

import cbrec


def test_recommend_shape_and_options(model, dataset):
    r = model.recommend("5")
    assert len(r) == 10 and len(r.ids) == len(set(r.ids))
    assert r.scores.dtype == np.float32 and r.items.dtype == np.int64
    assert all(np.diff(r.scores) <= 0), "best first"
    assert all(r.reasons) and all(isinstance(x, str) for x in r.reasons[0])
    assert list(model.item_ids[r.items]) == r.ids
    assert r[0].id == r.ids[0] and r.to_list()[0]["rank"] == 1
    assert r[:3] == list(r)[:3] and r[-2:] == list(r)[-2:] and r[::4] == list(r)[::4]
    three = model.recommend(5, n=3, exclude=r.ids[:2])  # an int id is str()'d
    assert len(three) == 3 and not set(three.ids) & set(r.ids[:2])
    assert three.ids[0] == r.ids[2]
    assert "Recommendations by" in repr(r)


def test_include_seen_and_settings(model):
    seen = set(model.recommend("5", n=200, include_seen=True).ids)
    unseen = set(model.recommend("5", n=200).ids)
    assert seen - unseen, "include_seen brings back rated items"
    assert len(model.recommend("5", n=4, diversity="mmr", mmr_lambda=0.5)) == 4


def test_new_user_and_similar(model):
    genre = "Comedy"
    r = model.new_user({"genre_ratings": {genre: 5}}, n=5)
    assert len(r) == 5 and r.notes
    v = model.user_vector({"genre_ratings": {genre: 5}})
    assert v.shape == (model.dim,) and v.dtype == np.float32
    s = model.similar(model.item_ids[0], k=4)
    assert len(s) == 4 and s.criterion == "cosine similarity" and model.item_ids[0] not in s.ids
    assert model.similar(0 + int(model.item_ids[0]), 4).ids == s.ids
    assert np.all(s.scores <= 1.0001) and np.all(np.diff(s.scores) <= 1e-6)
    with pytest.raises(cbrec.NotFound, match="unknown item id 'no-such-item'"):
        model.new_user({"ratings": {"no-such-item": 5}})
    with pytest.raises(cbrec.Error, match="genre_ratings"):
        model.new_user({"genre_ratings": "Comedy"})


def test_vectors_are_zero_copy_views(dataset):
    m = cbrec.Model.train(dataset, epochs=1, seed=11)
    items, users = m.item_vectors(), m.user_vectors()
    assert items.shape == (m.n_items, m.dim) and users.shape == (m.n_users, m.dim)
    assert items.dtype == np.float32 and not items.flags.writeable and items.base is m
    with pytest.raises(ValueError):
        items[0, 0] = 1.0
    assert np.array_equal(users[3], m.user_vector(m.user_ids[3]))
    again = m.item_vectors()
    assert np.shares_memory(items, again)  # the model's own memory, not a copy
    copy = items.copy()
    del m, again
    gc.collect()
    assert np.array_equal(items, copy), "the view keeps its model alive"


def test_numpy_round_trips(model, tmp_path):
    path = str(tmp_path / "m.cbrec")
    model.save(path)
    loaded = cbrec.Model.load(path)
    assert np.array_equal(loaded.item_vectors(), model.item_vectors())
    assert np.array_equal(loaded.user_vectors(), model.user_vectors())
    np.save(tmp_path / "v.npy", model.item_vectors())
    assert np.array_equal(np.load(tmp_path / "v.npy"), model.item_vectors())
    a, b = model.recommend("9"), loaded.recommend("9")
    assert a.ids == b.ids and np.array_equal(a.scores, b.scores)
    assert loaded.train_report is None and model.train_report["epochs_run"] == 2
    r = model.train_report  # where the steps went: worker 0's CPU, never negative
    assert r["threads"] >= 1 and min(r["step_towers"], r["step_loss"], r["step_update"], r["step_waits"]) >= 0


def test_batch_agrees_with_recommend(model):
    items, scores = model.recommend_batch(n=5)
    assert items.shape == (model.n_users, 5) and items.dtype == np.int64 and scores.dtype == np.float32
    some = ["1", "7", "42"]
    it2, sc2 = model.recommend_batch(some, n=5)
    rows = [list(model.user_ids).index(u) for u in some]
    assert np.array_equal(it2, items[rows]) and np.allclose(sc2, scores[rows], atol=1e-5)
    # the batch ranks the whole catalog by the same score: recommend with the
    # embedding source over the whole catalog gives the same top
    for u in some:
        r = model.recommend(u, n=5, embedding=model.n_items)
        assert r.ids == list(model.item_ids[it2[some.index(u)]])
        assert np.allclose(r.scores, sc2[some.index(u)], atol=1e-5)
    with pytest.raises(cbrec.NotFound):
        model.recommend_batch(["1", "nobody"])
    # n past the catalog gives the catalog: n = 10**9 columns of padding ran out of memory
    items, scores = model.recommend_batch(some, n=10**6, include_seen=True)
    assert items.shape == scores.shape == (3, model.n_items) and (items >= 0).all()


def test_batch_ids_without_padding(model):
    # the documented idiom model.item_ids[items] took the -1 padding for the last item's id, a wrong
    # recommendation rather than an error; ids=True gives each row's ids, no padding
    allowed = list(model.item_ids[:3])
    some = ["1", "7", "42"]
    items, scores = model.recommend_batch(some, n=5, allow=allowed, include_seen=True)
    assert (items[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()  # the numbers: as before
    ids, id_scores = model.recommend_batch(some, n=5, ids=True, allow=allowed, include_seen=True)
    assert len(ids) == len(id_scores) == 3
    for row, sc, numbers, number_scores in zip(ids, id_scores, items, scores):
        assert sorted(row) == sorted(allowed) and model.item_ids[-1] not in row
        assert row == [model.item_ids[i] for i in numbers[:3]]
        assert sc.dtype == np.float32 and np.array_equal(sc, number_scores[:3])
    full, _ = model.recommend_batch(some, n=5, ids=True)
    assert full == [list(model.item_ids[row]) for row in model.recommend_batch(some, n=5)[0]]
    assert model.recommend_batch([], ids=True) == ([], [])


def _answers(model, users):
    """What a model answers, comparably: lists, batch rows, predictions, similar items."""
    lists = [(r.ids, r.scores.tolist(), r.ratings.tolist()) for r in (model.recommend(u, n=20) for u in users)]
    items, scores = model.recommend_batch(users, n=20)
    preds = [model.predict(u, i) for u in users for i in model.item_ids[:5]]
    similar = [model.similar(i, k=10).ids for i in model.item_ids[:3]]
    return lists, items.tolist(), scores.tolist(), preds, similar, model.n_items, model.table_k


def test_pickle_round_trip(model, dataset, tmp_path):
    # cbrec.Model could not be pickled ("cannot pickle 'cbrec.Model' object"), which blocked
    # multiprocessing, joblib and process pools: it travels as the bytes its save calls write
    users = ["1", "7", "42"]
    back = pickle.loads(pickle.dumps(model))
    assert type(back) is cbrec.Model
    assert json.dumps(back.train_report, sort_keys=True) == json.dumps(model.train_report, sort_keys=True)  # NaNs
    assert _answers(back, users) == _answers(model, users)
    assert np.array_equal(back.item_vectors(), model.item_vectors())
    assert back.describe()["history"] == "memory"  # known users' rated items filtered, as before
    # a table, added items and a block file come along; no temporary is left behind
    m = cbrec.Model.train(dataset, epochs=1, seed=5)
    m.build_table(k=5, threads=1)
    m.add_item({"id": "new-1", "title": "A new item", "genres": ["Comedy"]})
    (tmp_path / "block.txt").write_text(m.item_ids[0] + "\n")
    m.set_block_file(tmp_path / "block.txt")
    before = set(os.listdir(tempfile.gettempdir()))
    back = pickle.loads(pickle.dumps(m))
    assert not {p for p in set(os.listdir(tempfile.gettempdir())) - before if p.startswith("cbrec-pickle-")}
    assert back.n_items == m.n_items and back.table_k == 5 and back.item_ids[-1] == "new-1"
    assert _answers(back, users) == _answers(m, users)
    assert back.similar("new-1", k=3).ids == m.similar("new-1", k=3).ids
    assert m.item_ids[0] not in back.similar(m.item_ids[1], k=m.n_items - 1).ids  # still blocked
    (tmp_path / "block.txt").unlink()  # gone where it is unpickled: an error, not a blocked item shown
    with pytest.raises(cbrec.FileError, match="block.txt"):
        pickle.loads(pickle.dumps(m))
    with pytest.raises(ValueError, match="holds no model"):
        pickle.dumps(cbrec.Model())


def test_pickle_to_a_spawned_process(model):
    # a model handed to a process pool (spawn: nothing inherited) recommends there as here
    users = ["1", "7", "42"]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        there = pool.apply(_answers, (model, users))
    assert there == _answers(model, users)


def test_same_as_cli(model, cli, tmp_path):
    path = str(tmp_path / "m.cbrec")
    model.save(path)
    for user in ("1", "17", "99"):
        out = subprocess.run([cli, "recommend", "--model", path, "--user", user, "--json"], check=True,
                             capture_output=True, text=True).stdout
        doc = json.loads(out)
        r = model.recommend(user)
        assert [e["item"] for e in doc["items"]] == r.ids
        assert np.allclose([e["score"] for e in doc["items"]], r.scores, atol=1e-4)
        assert [e["reasons"] for e in doc["items"]] == r.reasons
        assert doc["criterion"] == r.criterion
    out = subprocess.run([cli, "similar", "--model", path, "--item", model.item_ids[3], "-k", "5", "--json"],
                         check=True, capture_output=True, text=True).stdout
    assert [e["item"] for e in json.loads(out)["items"]] == model.similar(model.item_ids[3], 5).ids


def test_history_file_named(model, tmp_path):
    path, hist = str(tmp_path / "m.cbrec"), str(tmp_path / "elsewhere.hist")
    model.save(path, history=hist)
    assert not os.path.exists(path + ".history") and os.path.exists(hist)
    seen = set(model.recommend("9", n=50).ids)
    # Without its history the model cannot filter out user 9's rated items,
    # so the two lists differ; with it named, they are the same.
    alone = cbrec.Model.load(path)
    assert alone.describe()["history"] == "absent"
    named = cbrec.Model.load(path, history=hist)
    assert set(named.recommend("9", n=50).ids) == seen
    assert named.recommend("9", include_seen=True).ids != named.recommend("9").ids
    other = tmp_path / "other.hist"
    other.write_bytes(b"not a history" * 10)
    with pytest.raises(cbrec.FormatError, match="other.hist"):
        cbrec.Model.load(path, history=str(other))
    with pytest.raises(cbrec.InvalidArgument):
        model.save(path, history=path)


def test_save_table_round_trip(dataset, tmp_path):
    m = cbrec.Model.train(dataset, epochs=1, seed=5)
    path, table = str(tmp_path / "m.cbrec"), str(tmp_path / "sim.cbrec")
    m.save(path)
    with pytest.raises(cbrec.InvalidArgument):  # no table built yet
        m.save_table(table)
    m.build_table(k=5)
    m.save_table(table)
    m.save_table(path=table)
    loaded = cbrec.Model.load(path, table=table)
    assert loaded.similar("1", 5).ids == m.similar("1", 5).ids


def test_epochs_zero_refused(dataset, model):
    # an untrained model is no model: refused before the work, by every way to train
    with pytest.raises(cbrec.InvalidArgument, match="epochs 0"):
        cbrec.Model.train(dataset, epochs=0)
    with pytest.raises(cbrec.InvalidArgument, match="epochs 0"):
        cbrec.evaluate(dataset, models=["popularity"], epochs=0)


def test_model_errors(model, tmp_path):
    with pytest.raises(cbrec.NotFound, match="unknown user 'nobody'") as e:
        model.recommend("nobody")
    assert e.value.code == -5 and isinstance(e.value, LookupError)
    with pytest.raises(cbrec.NotFound, match="did you mean"):
        model.recommend("1", diversty="mmr")
    with pytest.raises(cbrec.InvalidArgument):
        model.recommend("1", diversity="sideways")
    with pytest.raises(cbrec.FileError):
        cbrec.Model.load(str(tmp_path / "missing.cbrec"))
    junk = tmp_path / "junk.cbrec"
    junk.write_bytes(b"not a model at all" * 10)
    with pytest.raises(cbrec.FormatError) as e:
        cbrec.Model.load(str(junk))
    assert e.value.code == -6
    with pytest.raises(cbrec.NotFound):
        model.similar("no such title at all")
    with pytest.raises(TypeError):
        model.recommend(["1"])
    with pytest.raises(ValueError, match="holds no model"):
        cbrec.Model().recommend("1")


def test_nul_in_a_text_is_refused(model):
    """C reads a text up to its first NUL: "1\\0x" was user "1"'s list."""
    uid, iid = model.user_ids[0], model.item_ids[0]
    for call in (lambda: model.recommend(uid + "\0x"), lambda: model.similar(iid + "\0x"),
                 lambda: model.recommend(uid, exclude=[iid + "\0x"]), lambda: model.recommend_batch([uid + "\0x"]),
                 lambda: model.recommend(uid, rank_by="dot\0x")):
        with pytest.raises(ValueError, match="embedded null"):
            call()


def test_add_item(dataset):
    m = cbrec.Model.train(dataset, epochs=1, seed=2)
    n = m.n_items
    genre = m.describe()  # the catalog's first item's genres are unknown here: use a title only
    assert genre["items"] == n
    i = m.add_item({"id": "brand-new", "title": "Brand New (2030)", "genres": ["Comedy"]})
    assert i == n and m.n_items == n + 1 and m.item_ids[-1] == "brand-new"
    assert m.item_vectors().shape[0] == n  # model items only
    assert "brand-new" in m.similar(m.item_ids[0], k=m.n_items).ids
    with pytest.raises(cbrec.InvalidArgument):
        m.add_item({"id": "brand-new"})
    # the added item is predicted for, as its place in a list shows its rating
    user = m.user_ids[0]
    shown = [r for r in m.recommend(user, n=1, allow=["brand-new"])]
    assert shown[0].id == "brand-new"
    assert m.predict(user, "brand-new") == pytest.approx(shown[0].rating, abs=1e-5)


def test_numpy_values_in_profiles_and_items(dataset):
    # a profile or an item made from a DataFrame holds numpy ids and numbers (keys too): json
    # could not write them (TypeError 'Object of type float32 is not JSON serializable')
    m = cbrec.Model.train(dataset, epochs=1, seed=2)
    plain = m.new_user({"ratings": {"1": 4.5, "2": 2}, "genre_ratings": {"Comedy": 5}})
    made = m.new_user({"ratings": {np.int64(1): np.float32(4.5), np.str_("2"): np.int8(2)},
                       "genre_ratings": {"Comedy": np.float64(5)}})
    assert made.ids == plain.ids
    assert np.array_equal(m.user_vector({"ratings": {np.int64(1): np.float32(4.5)}}),
                          m.user_vector({"ratings": {"1": 4.5}}))
    i = m.add_item({"id": np.int64(9001), "title": "Nine (2001)", "genres": np.array(["Comedy", "Drama"])})
    assert m.item_ids[i] == "9001" and m.item_content("9001")["genres"] == ["Comedy", "Drama"]
    with pytest.raises(TypeError, match="not JSON serializable"):
        m.new_user({"ratings": {"1": object()}})
    looped = {}
    looped["ratings"] = looped
    with pytest.raises(RecursionError):  # the copy of numpy values crashed (a stack overflow)
        m.new_user(looped)


def test_nan_in_profiles(model):
    # pandas' gap is NaN, which JSON has not: json.dumps wrote NaN and the library refused the text,
    # naming nothing the caller wrote ('new-user JSON:1:21: invalid token near 'NaN''); as null a
    # rating is refused naming its item, and an attribute is missing, as a NaN cell of a users table is
    for nan in (float("nan"), np.float32("nan"), np.array([np.nan])[0]):
        with pytest.raises(cbrec.InvalidArgument, match=r'"ratings": the rating of .2. must be a number'):
            model.new_user({"ratings": {"1": 4, "2": nan}})
        assert np.array_equal(model.user_vector({"ratings": {"1": 5}, "age": nan, "gender": nan}),
                              model.user_vector({"ratings": {"1": 5}}))
    with pytest.raises(cbrec.InvalidArgument, match=r'"genre_ratings": the rating of .Comedy. must be a number'):
        model.recommend({"genre_ratings": {"Comedy": np.array([4.0, np.nan])[1]}})


def test_add_item_with_gaps(dataset):
    # a new item taken from a DataFrame row has NaN where a value is missing (null in JSON): a missing
    # title, year or genres was refused ('"year" must be a number') where null is missing for the
    # other columns and NaN for a table's cells
    m = cbrec.Model.train(dataset, epochs=1, seed=2)
    i = m.add_item({"id": "n1", "title": np.nan, "year": float("nan"), "genres": None})
    assert m.item_ids[i] == "n1" and m.titles[i] == ""
    pd = pytest.importorskip("pandas")
    row = pd.DataFrame({"id": ["n2"], "title": ["Two (1999)"], "year": [np.nan], "genres": [np.nan]}).iloc[0]
    i = m.add_item(row.to_dict())
    assert m.item_ids[i] == "n2" and m.titles[i] == "Two (1999)"


def test_series_and_sets_in_profiles_and_items(dataset):
    # a user's ratings as a pandas Series by item id, an item as a DataFrame row, genres as a set:
    # json could not write them ('Object of type Series is not JSON serializable', '... set ...')
    m = cbrec.Model.train(dataset, epochs=1, seed=2)
    want = m.new_user({"ratings": {"1": 4.5, "2": 2.0}}, n=5).ids
    assert m.new_user({"ratings": FakeSeries({"1": 4.5, "2": 2.0})}, n=5).ids == want
    i = m.add_item({"id": "s1", "title": "Set (2001)", "genres": {"Comedy"}})
    assert m.item_content("s1")["genres"] == ["Comedy"] and m.titles[i] == "Set (2001)"
    looped = FakeSeries({})
    looped.cells["self"] = looped
    with pytest.raises(RecursionError):
        m.add_item(looped)
    pd = pytest.importorskip("pandas")
    ratings = pd.DataFrame({"movieId": [1, 2], "rating": [4.5, 2.0]}).set_index("movieId")["rating"]
    assert m.new_user({"ratings": ratings}, n=5).ids == want
    row = pd.DataFrame({"id": ["s2"], "title": ["Row (1999)"], "genres": [["Drama"]]}).iloc[0]
    i = m.add_item(row)
    assert m.item_ids[i] == "s2" and m.item_content("s2")["genres"] == ["Drama"]


class FakeSeries:
    """What a pandas Series is to a profile: keys() and items(), not a dict."""

    def __init__(self, cells):
        self.cells = cells

    def keys(self):
        return self.cells.keys()

    def items(self):
        return self.cells.items()


def test_settings_given_as_numpy_arrays(dataset):
    # a numpy array is a list setting as a list is (str() gave '[32 16]', refused)
    a = cbrec.Model.train(dataset, epochs=1, seed=2, user_layers=np.array([32, 16]))
    b = cbrec.Model.train(dataset, epochs=1, seed=2, user_layers=[32, 16])
    assert a.train_report["n_params"] == b.train_report["n_params"]
    assert np.array_equal(a.user_vectors(), b.user_vectors())
    looped = []
    looped.append(looped)
    with pytest.raises(TypeError, match="flat list"):  # it crashed the interpreter (a stack overflow)
        cbrec.Model.train(dataset, epochs=1, user_layers=looped)
    for nested in ([[32], [16]], [32, (16,)], [np.array([32, 16])]):  # flattened to 32,16 in silence
        with pytest.raises(TypeError, match="setting 'user_layers': a setting's list holds"):
            cbrec.Model.train(dataset, epochs=1, user_layers=nested)


def test_save_to_an_empty_path(model, tmp_path, monkeypatch):
    # refused before anything is written: the history went to '.history' in the working folder, then
    # the model's rename failed with ': cannot rename into place'
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cbrec.InvalidArgument, match="no file path given"):
        model.save("")
    assert os.listdir(tmp_path) == []


def test_save_replaces_a_model_in_place(model, dataset, tmp_path):
    # saving over a model replaces it whole (another model's file, its history), leaves no temporary
    # behind and keeps the files' permissions: a private (0600) model and history were 0644 after
    path = tmp_path / "m.cbrec"
    other = cbrec.Model.train(dataset, epochs=1, seed=9)
    other.save(path)
    os.chmod(path, 0o600)
    os.chmod(str(path) + ".history", 0o640)
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == ["m.cbrec", "m.cbrec.history"]
    assert (os.stat(path).st_mode & 0o777, os.stat(str(path) + ".history").st_mode & 0o777) == (0o600, 0o640)
    back = cbrec.Model.load(path)
    assert np.array_equal(back.item_vectors(), model.item_vectors())
    assert back.recommend("9").ids == model.recommend("9").ids


def test_save_writes_through_a_symlink(model, tmp_path):
    # a save to a symbolic link (a "current model" link) replaced the link by a regular file, and the
    # file it named kept the old model; now it writes through, as editors do, and the link stays
    (tmp_path / "models").mkdir()
    target, link = tmp_path / "models" / "v1.cbrec", tmp_path / "current.cbrec"
    target.write_bytes(b"an old model")
    link.symlink_to("models/v1.cbrec")
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == "models/v1.cbrec"
    # the history's default path stays the path given + ".history" (here beside the link)
    assert sorted(os.listdir(tmp_path)) == ["current.cbrec", "current.cbrec.history", "models"]
    assert cbrec.Model.load(target, history=str(link) + ".history").recommend("9").ids == model.recommend("9").ids
    # a dangling link creates the file it names; one into a missing folder is an error naming both
    dangling = tmp_path / "next.cbrec"
    dangling.symlink_to("models/v2.cbrec")
    model.save(dangling, history=str(tmp_path / "h"))
    assert dangling.is_symlink() and (tmp_path / "models" / "v2.cbrec").is_file()
    nowhere = tmp_path / "nowhere.cbrec"
    nowhere.symlink_to("no-such-folder/m.cbrec")
    with pytest.raises(cbrec.FileError, match="a symbolic link to .*no-such-folder/m.cbrec"):
        model.save(nowhere, history=str(tmp_path / "h"))
    assert sorted(p.name for p in tmp_path.rglob("*") if ".tmp." in p.name) == []


def test_threads_save_one_path(model, dataset, tmp_path):
    # threads saving to one path at once: the library stages "<path>.tmp.<pid>", which they shared, and
    # most saves failed ("m.cbrec.history.tmp.N: cannot rename into place"); now they take turns
    other = cbrec.Model.train(dataset, epochs=1, seed=9)
    path, errors = str(tmp_path / "m.cbrec"), []

    def save(m):
        try:
            for _ in range(8):
                m.save(path)
        except Exception as e:  # any failure is the test's
            errors.append(e)
    threads = [threading.Thread(target=save, args=(m,)) for m in (model, other, model, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(os.listdir(tmp_path)) == ["m.cbrec", "m.cbrec.history"]
    back = cbrec.Model.load(path).item_vectors()
    assert np.array_equal(back, model.item_vectors()) or np.array_equal(back, other.item_vectors())


def test_long_unknown_names_in_a_profile(model):
    # a note quoting an unknown genre cut at 80 bytes inside a character: the list came back with
    # invalid UTF-8 and new_user raised UnicodeDecodeError instead of returning it
    r = model.new_user({"genre_ratings": {"x" + "é" * 60: 5}}, n=2)
    assert len(r) == 2 and any("ignored: not a genre" in note for note in r.notes)


def test_threads_share_a_model(model):
    users = [str(u) for u in model.user_ids[:40]]
    expected = {u: model.recommend(u).ids for u in users}
    errors = []

    def work():
        for u in users:
            if model.recommend(u).ids != expected[u]:
                errors.append(u)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_progress_callback(dataset):
    seen = []
    cbrec.Model.train(dataset, epochs=2, batch=32, progress=seen.append)
    ends = [p for p in seen if p["end_of_epoch"]]
    assert [p["epoch"] for p in ends] == [1, 2] and len(seen) > len(ends), "ticks inside epochs too"
    assert all(np.isfinite(p["train_loss"]) for p in ends)
    stages = [p["stage"] for p in seen]
    first_train = stages.index("train")
    assert set(stages[:first_train]) == {"tune-towers", "tune-grid"}, "the neighbour tuning comes first"
    assert stages[first_train - 1] == "tune-grid" and stages.count("tune-grid") == 1
    assert all(p["stage"] == "train" for p in ends)
    elapsed = [p["elapsed"] for p in seen]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0, "seconds since the call began"


def test_progress_true_prints_the_tuning(dataset, capsys):
    cbrec.Model.train(dataset, epochs=1, batch=32, progress=True)
    err = capsys.readouterr().err
    assert err.index("tuning the neighbour component") < err.index("epoch 1/1")


def test_train_report_tells_the_neighbours(model):
    r = model.train_report
    nb = model.describe()["neighbours"]
    assert r["neighbours"] == (nb["kind"] if nb else None)
    if nb:
        assert r["neighbours_k"] == nb["k"] and r["neighbours_weight"] == pytest.approx(nb["weight"])
    assert r["tune_users"] > 0 and 0 <= r["tune_ndcg"] <= 1 and r["tune_ndcg"] >= r["tune_ndcg_towers"]


def test_callback_exception_stops_training(dataset):
    ticks = []

    def stop(p):
        ticks.append(p)
        if len(ticks) == 3:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        cbrec.Model.train(dataset, epochs=50, batch=32, progress=stop)
    assert len(ticks) == 3, "a tick's non-zero return stops training at once"
    assert not any(p["end_of_epoch"] for p in ticks), "stopped before any epoch of the model ended"


def test_callback_true_stops_and_keeps_the_model(dataset):
    ticks = []

    def enough(p):
        ticks.append(p)
        return p["stage"] == "train" and p["epoch"] == 2

    m = cbrec.Model.train(dataset, epochs=50, batch=32, progress=enough)
    assert ticks[-1]["stage"] == "train" and ticks[-1]["epoch"] == 2, "no tick after the one that said stop"
    assert m.train_report["epochs_run"] == 2, "stopped within epoch 2, not after 50"
    assert len(m.recommend(m.user_ids[0], n=3)) == 3, "the model so far is kept and recommends"
    returns_1 = []
    cbrec.Model.train(dataset, epochs=1, batch=32, progress=lambda p: returns_1.append(p) or 1)
    assert any(p["end_of_epoch"] for p in returns_1), "only True stops; other values are ignored"
    numpy_true = []
    m = cbrec.Model.train(dataset, epochs=50, batch=32, progress=lambda p: numpy_true.append(p) or (
        (p["stage"] == "train") & (np.float64(p["epoch"]) >= 2)))
    assert m.train_report["epochs_run"] == 2, "numpy's True stops as True does"


def test_ctrl_c_interrupts_training(dataset):
    """A real SIGINT while the library trains (GIL released) raises
    KeyboardInterrupt within a batch, long before the 3,000 epochs end.
    Python's own SIGINT handler is installed for the test: a process started
    in the background by a non-interactive shell (`cmd &`) inherits SIGINT
    ignored, and Python then installs no handler (a CI run started that way
    saw no KeyboardInterrupt). The signal is repeated every 0.3 s until
    training stops, so a lost interrupt fails the test instead of hanging."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    done = threading.Event()
    last_raise = [0.0]

    def handler(signum, frame):
        # Raise once; raise again only if that one was lost (2 s without the
        # library stopping). A SIGINT landing after training already raised,
        # before `done` is set, must not escape from the finally block (a
        # sanitizer build, slower, once saw exactly that).
        now = time.monotonic()
        if not done.is_set() and now - last_raise[0] > 2.0:
            last_raise[0] = now
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)

    def interrupt():
        while not done.wait(0.3):
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt, daemon=True)
    t0 = time.monotonic()
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cbrec.Model.train(dataset, epochs=3000)
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - t0 < 10


def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_no_leaks_over_10000_calls(model):
    """Reference counts of the model and of the arguments are unchanged and
    traced Python memory and RSS do not grow over 10,000 calls (recommend,
    the error path, vectors, batch rows, similar)."""
    user, item = "12", model.item_ids[5]
    warm = [model.recommend(user), model.similar(item, 3), model.user_vectors(), model.recommend_batch([user], 3)]
    del warm
    gc.collect()
    refs = (sys.getrefcount(model), sys.getrefcount(user), sys.getrefcount(item))
    tracemalloc.start()
    rss0 = rss_kb()
    snap0 = tracemalloc.take_snapshot()
    for i in range(10000):
        k = i % 5
        if k == 0:
            model.recommend(user, n=5)
        elif k == 1:
            try:
                model.recommend("nobody")
            except cbrec.NotFound:
                pass
        elif k == 2:
            model.item_vectors()
        elif k == 3:
            model.recommend_batch([user], 3)
        else:
            model.similar(item, 3)
    gc.collect()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snap0, "filename"))
    tracemalloc.stop()
    rss_growth = rss_kb() - rss0
    assert (sys.getrefcount(model), sys.getrefcount(user), sys.getrefcount(item)) == refs
    assert grown < 64 * 1024, "traced Python memory grew by %d bytes" % grown
    # AddressSanitizer (make test SANITIZE=1) keeps freed memory in its
    # quarantine on purpose: RSS says nothing there; the checks above still hold
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert rss_growth < 8 * 1024, "RSS grew by %d kB" % rss_growth


def test_evaluate_returns_a_dict(dataset):
    report = cbrec.evaluate(dataset, models=["popularity", "bias"], k=5)
    names = [m["name"] for m in report["models"]]
    assert sorted(names) == ["bias", "popularity"] and report["k"] == 5
    assert all(0 <= m["mean_ndcg5"] <= 1 for m in report["models"])
    with pytest.raises(cbrec.Error):
        cbrec.evaluate(dataset, models=["no-such-model"])


def test_evaluate_progress_sees_the_cbrec_row(dataset):
    """The "cbrec" row trains towers too, and its epochs reach the progress
    callable, which can stop them (returning True, or Ctrl-C through it): it
    saw none, and a Ctrl-C during `evaluate(ds, models=["cbrec"])` waited for
    the whole training (minutes on MovieLens) before it was raised."""
    seen = []
    cbrec.evaluate(dataset, models=["cbrec"], epochs=2, progress=lambda p: seen.append(p["stage"]))
    assert seen.count("train") >= 2, seen
    stopped = []
    report = cbrec.evaluate(dataset, models=["cbrec"], epochs=500, batch=32, neighbours=0,
                            progress=lambda p: stopped.append(p) or p["stage"] == "train")
    assert len(stopped) == 1, "True stopped the cbrec row's training at its first tick"
    assert [m["name"] for m in report["models"]] == ["cbrec"]


def test_help_is_readable():
    text = pydoc.render_doc(cbrec.Model, renderer=pydoc.plaintext)
    for word in ("recommend(self, user, n=10", "recommend_batch", "item_vectors", "Ctrl-C", "epochs"):
        assert word in text, word
    assert "learning rate" in cbrec.Model.train.__doc__.lower() or "lr" in cbrec.Model.train.__doc__
    assert any(s["name"] == "user_layers" for s in cbrec.settings("train"))


def test_gil_released_while_training(dataset):
    """Another Python thread keeps running while the library trains: the
    counter it increments moves during the call (with the GIL held through
    the call it could not)."""
    state = {"n": 0, "done": False}

    def count():
        while not state["done"]:
            state["n"] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        before = state["n"]
        cbrec.Model.train(dataset, epochs=2, threads=1)
        during = state["n"] - before
    finally:
        state["done"] = True
        t.join()
    assert during > 10000, during


def test_item_content(tmp_path):
    """An item's genres and other content by column, for a catalog's item and an added one."""
    cbrec.synth(str(tmp_path / "g"), users=60, items=80, ratings=1500, layout="generic")
    m = cbrec.Model.train(cbrec.Dataset.load(str(tmp_path / "g")), epochs=1, seed=1, neighbours=0)
    c = m.item_content(m.item_ids[0])
    assert c["genres"] == [] and c["tags"] and len(c["brand"]) == 1  # a tags + brand catalog: no genre column
    m.add_item({"id": "new-1", "title": "New", "tags": c["tags"], "brand": c["brand"][0]})
    added = m.item_content("new-1")
    assert sorted(added["tags"]) == sorted(c["tags"]) and added["brand"] == c["brand"]
    with pytest.raises(cbrec.NotFound):
        m.item_content("no such item zzz")


def test_add_item_warns_of_unknown_values(tmp_path):
    """A value the model does not know is left out of an added item with a UserWarning naming it
    (it was dropped without a word); strict makes it an error."""
    cbrec.synth(str(tmp_path / "g"), users=60, items=80, ratings=1500, layout="generic")
    m = cbrec.Model.train(cbrec.Dataset.load(str(tmp_path / "g")), epochs=1, seed=1, neighbours=0)
    with pytest.warns(UserWarning, match="unknown value 'NewBrand' of 'brand'"):
        m.add_item({"id": "x1", "brand": "NewBrand"})
    assert "brand" not in m.item_content("x1")
    with pytest.raises(cbrec.NotFound, match="NewBrand"):
        m.add_item({"id": "x2", "brand": "NewBrand", "strict": True})


def test_set_block_file(tmp_path):
    """The model's own block list: no recommendation, batch row or similar list shows an item of a
    blocked brand; None clears it; a bad line is NotFound naming the file and line."""
    cbrec.synth(str(tmp_path / "g"), users=60, items=80, ratings=1500, layout="generic")
    m = cbrec.Model.train(cbrec.Dataset.load(str(tmp_path / "g")), epochs=1, seed=1, neighbours=0)
    brand = m.item_content(m.item_ids[0])["brand"][0]
    blocked = {i for i in m.item_ids if m.item_content(i)["brand"] == [brand]}
    (tmp_path / "block.txt").write_text(f"brand {brand}\n")
    (tmp_path / "bad.txt").write_text("# first\nbrand no-such-brand\n")
    m.set_block_file(str(tmp_path / "block.txt"))
    with pytest.raises(cbrec.NotFound, match=r"bad.txt:2: unknown value 'no-such-brand' of 'brand'"):
        m.set_block_file(tmp_path / "bad.txt")
    user = m.user_ids[0]
    for shown in (m.recommend(user, n=50).ids, m.similar(m.item_ids[1], k=79).ids):
        assert shown and not blocked & set(shown)
    assert not blocked & {m.item_ids[i] for i in m.recommend_batch(m.user_ids[:5], n=20)[0].ravel() if i >= 0}
    m.set_block_file(None)
    assert blocked & set(m.similar(m.item_ids[1], k=79).ids)


def test_item_content_every_value(tmp_path):
    """An added item's content is every value it was given (add-item kept 64 a column, item_content
    returned 512 at most), and a value holding a separator of the kept content is refused."""
    d = tmp_path / "many"
    d.mkdir()
    (d / "cbrec.schema").write_text("ratings = r.csv\nitems = i.csv\nitems.columns = id, tags:multi(;)\n")
    (d / "i.csv").write_text("id,tags\n" + "".join(
        f"i{i}," + ";".join(f"t{i % 6 * 100 + t}" for t in range(100)) + "\n" for i in range(30)))
    (d / "r.csv").write_text("user,item,rating\n" + "".join(
        f"u{u},i{(u * 7 + k * 3) % 30},{1 + (u + k) % 5}\n" for u in range(40) for k in range(8)))
    m = cbrec.Model.train(cbrec.Dataset.load(str(d)), epochs=1, seed=1, neighbours=0)
    tags = [f"t{t}" for t in range(600)]
    m.add_item({"id": "list", "tags": tags})
    m.add_item({"id": "string", "tags": ";".join(tags)})
    for added in ("list", "string"):
        assert sorted(m.item_content(added)["tags"]) == sorted(tags)
    with pytest.raises(cbrec.InvalidArgument, match='"tags".*byte 0x1E'):
        m.add_item({"id": "bad", "tags": ["t1", "t\x1e2"]})


def test_exclude_ids_with_commas_and_bad_types():
    """exclude / allow take ids holding commas or quotes whole (joined plainly, 'sku,5' was two ids),
    and refuse what is not an id (None was looked up as 'None')."""
    rng = np.random.default_rng(4)
    names = ['sku,5', 'say "hi"', 'plain'] + [f"i{k}" for k in range(27)]
    pairs = rng.choice(40 * 30, 1000, replace=False)  # each (user, item) once
    users, items = pairs // 30, pairs % 30
    ds = cbrec.Dataset.from_arrays([f"u{u}" for u in users], [names[i] for i in items], rng.integers(1, 6, 1000))
    m = cbrec.Model.train(ds, epochs=1, seed=1, neighbours=0)
    everything = m.recommend("u1", n=30, include_seen=True).ids
    assert 'sku,5' in everything and 'say "hi"' in everything
    kept = m.recommend("u1", n=30, include_seen=True, exclude=['sku,5', 'say "hi"']).ids
    assert 'sku,5' not in kept and 'say "hi"' not in kept and len(kept) == len(everything) - 2
    assert sorted(m.recommend("u1", n=30, include_seen=True, allow=['sku,5', 'plain']).ids) == ['plain', 'sku,5']
    with pytest.raises(TypeError):
        m.recommend("u1", exclude=[None])


def test_error_message_cut_inside_utf8(model):
    # a message quoting input may be cut inside a UTF-8 sequence: still the library's error, not UnicodeDecodeError
    with pytest.raises(cbrec.NotFound, match="is not a genre"):
        model.new_user({"genre_ratings": {"a" + "\u00e9" * 100: 5}, "strict": True})


def test_batch_users_as_one_str_refused(model):
    # a str is not a sequence of ids: its characters were looked up ("unknown user '5'" for "57")
    with pytest.raises(TypeError, match="users must be a sequence, not a str"):
        model.recommend_batch("57")
    assert model.recommend_batch(np.array(["5", "7"]), n=2)[0].shape == (2, 2)


def test_allow_none_and_empty(model):
    """allow=None is the default, as None is for every setting (it was a
    TypeError, 'NoneType' object is not iterable); an empty allow list names
    no item and is refused, as the server refuses it (it was the library's
    unset value: every item came back, say an empty in-stock list)."""
    user = model.user_ids[0]
    everything = model.recommend(user, n=5).ids
    assert model.recommend(user, n=5, allow=None).ids == everything
    assert model.recommend_batch([user], n=5, allow=None)[0].tolist() == model.recommend_batch([user], n=5)[0].tolist()
    for empty in ([], (), set(), [""]):
        with pytest.raises(cbrec.InvalidArgument, match="allow: the list names no item"):
            model.recommend(user, n=5, allow=empty)
        with pytest.raises(cbrec.InvalidArgument, match="allow"):
            model.recommend_batch([user], n=5, allow=empty)


def test_setting_errors_name_the_keyword(dataset, model):
    """A refused setting is named as the keyword was written (user_layers,
    not the CLI's user-layers) and the keys suggested for a mistyped one are
    keywords too ("did you mean user-layers?" named none a call can take)."""
    with pytest.raises(cbrec.InvalidArgument, match=r"^user_layers: '0' is not accepted"):
        cbrec.Model.train(dataset, user_layers=[0])
    with pytest.raises(cbrec.NotFound, match=r"unknown train key 'user_layer' \(did you mean user_layers, "):
        cbrec.Model.train(dataset, user_layer=[8])
    with pytest.raises(cbrec.InvalidArgument, match=r"^rank_by: 'rank-by' is not accepted"):
        model.recommend(model.user_ids[0], rank_by="rank-by")  # the value is left as it is
    with pytest.raises(cbrec.NotFound, match=r"unknown recommend key 'mmr_lamda' \(did you mean mmr_lambda\?\)"):
        model.recommend(model.user_ids[0], mmr_lamda=0.5)
    with pytest.raises(cbrec.NotFound, match=r"unknown train key 'valid_fraction' \(did you mean valid_frac\?\)"):
        cbrec.evaluate(dataset, models=["popularity"], train={"valid_fraction": 0.1})


def test_evaluate_unknown_key_suggests_train_keys(dataset):
    """evaluate() takes EVAL and TRAIN keys alike: a mistyped one is looked
    for in both (the eval table alone answered 'epoch' with "did you mean
    implicit_epochs?" and 'user_layer' with "users?"), and carries .code as
    the library's errors do."""
    with pytest.raises(cbrec.NotFound, match=r"unknown eval or train key 'epoch' \(did you mean epochs") as e:
        cbrec.evaluate(dataset, models=["popularity"], epoch=3)
    assert e.value.code == -5
    with pytest.raises(cbrec.NotFound, match=r"did you mean user_layers"):
        cbrec.evaluate(dataset, models=["popularity"], user_layer=[8])
    with pytest.raises(cbrec.InvalidArgument) as e:
        model = cbrec.Model.train(dataset, epochs=1)
        model.recommend(model.user_ids[0], allow=[])
    assert e.value.code == -4


def test_whole_number_float_ids_are_the_integers():
    """An int id column pandas made float (a gap in it) gives the ids '1', '2', ... (they were
    '1.0', '2.0': recommend(1) and recommend('1') found no one, with no hint why)."""
    rng = np.random.default_rng(5)
    pairs = rng.choice(40 * 30, 1000, replace=False)
    users, items = (pairs // 30 + 1).astype(np.float64), (pairs % 30 + 1).astype(np.float32)
    ds = cbrec.Dataset.from_arrays(users, items, rng.integers(1, 6, 1000))
    m = cbrec.Model.train(ds, epochs=1, seed=1, neighbours=0)
    assert m.recommend(1, n=3).ids == m.recommend("1", n=3).ids
    assert all("." not in i for i in m.recommend(1, n=30, include_seen=True).ids)
    with pytest.raises(cbrec.NotFound):
        m.recommend("1.0")
    # an id taken from that float column is its integer too (it was "an id must be a str or an int")
    assert m.recommend(users[0], n=3).ids == m.recommend(str(int(users[0])), n=3).ids
    first = m.recommend(1, n=1).ids[0]
    assert first not in m.recommend(1, n=5, exclude=[float(first)]).ids
    with pytest.raises(TypeError, match="whole-number float"):
        m.recommend(1.5)
    with pytest.raises(TypeError, match="whole-number float"):
        m.recommend(1, exclude=[float("inf")])


def test_batch_refuses_what_it_does_not_use(model):
    """recommend_batch ranks the whole catalog per user: a diversity mode, a genre cap or a retrieval
    source's setting was taken and ignored in silence (the CLI's --users refused them)."""
    for kw in ({"diversity": "mmr"}, {"genre_cap": 2}, {"recent": 10}):
        with pytest.raises(cbrec.InvalidArgument, match="^%s: recommend_batch ranks the whole catalog" % next(iter(kw))):
            model.recommend_batch(n=3, **kw)
    assert model.recommend_batch(n=3, include_seen=True)[0].shape[1] == 3


def test_evaluate_refuses_a_split_beside_folds(dataset):
    """The folds give the splits: split= / test_frac= beside folds= were ignored in silence (the CLI
    refused them), even written out at their defaults."""
    for kw in ({"split": "random"}, {"test_frac": 0.3}):
        with pytest.raises(cbrec.InvalidArgument, match="the folds give the splits"):
            cbrec.evaluate(dataset, ["popularity"], folds="f1", **kw)
