#!/usr/bin/env python3
"""DEV MOCK ONLY — not used by `make test` or by tests/web/run.sh.

A stand-in for `cbrec serve` while developing web/ without a server: serves web/* and
answers the endpoints the page uses (SERVE-API contract shapes) from a `cbrec synth`
folder with crude genre arithmetic instead of the model. The real page test runs
against the real `cbrec serve`.

usage: python3 tests/web/dev_mock.py SYNTH_DIR [PORT]
"""
import csv, json, math, os, random, sys, urllib.parse
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")
DATA = sys.argv[1]
ITEMS, USERS = {}, {}
for row in csv.DictReader(open(os.path.join(DATA, "movies.csv"))):
    ITEMS[row["movieId"]] = {"item": row["movieId"], "title": row["title"],
                             "genres": row["genres"].split("|"), "ratings": []}
for row in csv.DictReader(open(os.path.join(DATA, "ratings.csv"))):
    r = float(row["rating"])
    ITEMS[row["movieId"]]["ratings"].append(r)
    USERS.setdefault(row["userId"], []).append(
        {"item": row["movieId"], "title": ITEMS[row["movieId"]]["title"], "rating": r,
         "time": int(row["timestamp"])})
GENRES = sorted({g for it in ITEMS.values() for g in it["genres"]})


def item_json(it):
    n = len(it["ratings"])
    return {"item": it["item"], "title": it["title"], "genres": it["genres"], "n_ratings": n,
            "mean_rating": sum(it["ratings"]) / n if n else None, "new": False}


def ranked(taste, n, seen, reason):
    scored = []
    for it in ITEMS.values():
        if it["item"] in seen:
            continue
        s = sum(taste.get(g, 0) for g in it["genres"]) / len(it["genres"])
        s += 0.01 * math.log1p(len(it["ratings"]))
        scored.append((s, it))
    scored.sort(key=lambda p: -p[0])
    out = []
    for rank, (s, it) in enumerate(scored[:n], 1):
        out.append({"rank": rank, "item": it["item"], "title": it["title"], "score": s,
                    "rating": min(5, 3 + s), "sources": ["genre", "embedding"],
                    "reasons": [reason(it), "close match to your taste vector (mock)"]})
    return {"criterion": "retrieval score", "items": out, "notes": ["dev mock"]}


def taste_of(ratings, genre_ratings):
    taste = {g: (r - 3) for g, r in genre_ratings.items()}
    for item, r in ratings.items():
        for g in ITEMS[str(item)]["genres"]:
            taste[g] = taste.get(g, 0) + (float(r) - 3)
    return taste


def best_genre(taste):
    return lambda it: "top in your favourite genre " + max(it["genres"], key=lambda g: taste.get(g, 0))


class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=WEB, **kw)

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def not_found(self):
        self.send_json({"error": {"status": 404, "message": "unknown id"}}, 404)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        p = url.path
        if not p.startswith("/v1/"):
            return super().do_GET()
        if p == "/v1/meta":
            return self.send_json({"items": len(ITEMS), "users": len(USERS), "dim": 32,
                                   "criterion": "retrieval score", "genres": GENRES, "columns": {}, "map_column": "genres",
                                   "user_columns": {"gender": ["F", "M"], "region": [str(i) for i in range(1, 11)]}})
        if p == "/v1/items":
            text = q.get("q", "").lower()
            hits = [item_json(it) for it in ITEMS.values() if text in it["title"].lower()]
            hits.sort(key=lambda h: -h["n_ratings"])
            return self.send_json({"items": hits[:int(q.get("limit", 20))]})
        if p.startswith("/v1/items/"):
            it = ITEMS.get(p.rsplit("/", 1)[1])
            return self.send_json(item_json(it)) if it else self.not_found()
        if p == "/v1/similar":
            it = ITEMS.get(q.get("item", ""))
            if not it:
                return self.not_found()
            taste = {g: 1 for g in it["genres"]}
            lst = ranked(taste, int(q.get("k", 10)), {it["item"]}, lambda o: "shares a genre")
            for e in lst["items"]:
                e["reasons"], e["sources"], e["rating"] = [], [], None
            lst["criterion"], lst["item"] = "cosine similarity", it["item"]
            return self.send_json(lst)
        if p == "/v1/users":
            ids = sorted(USERS, key=int)[:int(q.get("limit", 50))]
            return self.send_json({"users": [{"user": u, "n_ratings": len(USERS[u])} for u in ids]})
        if p.startswith("/v1/users/"):
            u = p.rsplit("/", 1)[1]
            if u not in USERS:
                return self.not_found()
            return self.send_json({"user": u, "history": USERS[u], "n_ratings": len(USERS[u]), "live_events": 0})
        if p == "/v1/recommend":
            return self.recommend_user(q.get("user", ""), int(q.get("n", 10)))
        if p == "/v1/map":
            rnd = random.Random(7)
            angle = {g: 2 * math.pi * i / len(GENRES) for i, g in enumerate(GENRES)}
            pts = []
            for it in ITEMS.values():
                x = sum(math.cos(angle[g]) for g in it["genres"]) / len(it["genres"]) + rnd.gauss(0, 0.15)
                y = sum(math.sin(angle[g]) for g in it["genres"]) / len(it["genres"]) + rnd.gauss(0, 0.15)
                pts.append({"item": it["item"], "x": x, "y": y, "title": it["title"], "genres": it["genres"],
                            "colour": it["genres"][0]})
            return self.send_json({"points": pts, "highlight": [], "history": []})
        return self.not_found()

    def recommend_user(self, u, n):
        if u not in USERS:
            return self.not_found()
        ratings = {h["item"]: h["rating"] for h in USERS[u]}
        taste = taste_of(ratings, {})
        lst = ranked(taste, n, set(ratings), best_genre(taste))
        lst["user"] = u
        return self.send_json(lst)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/v1/recommend":
            return self.not_found()
        if "user" in body:
            return self.recommend_user(str(body["user"]), int(body.get("n", 10)))
        prof = body.get("profile", {})
        ratings = {str(k): v for k, v in prof.get("ratings", {}).items()}
        taste = taste_of(ratings, prof.get("genre_ratings", {}))
        self.send_json(ranked(taste, int(body.get("n", 10)), set(ratings), best_genre(taste)))


if __name__ == "__main__":
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8765
    print(f"DEV MOCK on http://127.0.0.1:{port}/ (not the real server)")
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
