#!/usr/bin/env node
// The web page tested in headless Debian chromium against the real `cbrec serve`: makes a small
// synthetic dataset (cbrec synth), trains a model on it (few epochs), starts the server on
// 127.0.0.1 on a free port, and drives the page with real mouse clicks over CDP (tests/web/cdp.js).
// Prints cmocka-style lines ([ RUN ], [ OK ], [ FAILED ], [ SKIPPED ]) that scripts/run-tests.sh
// counts. Screenshots go to $BUILD/artifacts/ (BUILD defaults to build).
// Development only: `--url URL --data SYNTH_DIR` drives an already running server instead.
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { Browser } = require('./cdp');

const ROOT = path.resolve(__dirname, '..', '..');
const CBREC = path.resolve(ROOT, process.env.CBREC || './cbrec');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(ROOT, process.env.BUILD || 'build', 'artifacts');
const WIDTH = 1280, HEIGHT = 900;
const WATCHDOG_MS = 90000;
const started = [];  // every process this test starts, for the watchdog

function skip(name, reason) {
  console.log(`[  SKIPPED ] ${name}: ${reason}`);
  process.exit(0);
}

function option(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : null;
}

/* ---------- the synthetic data, read back for the expected answers ---------- */

function readCsv(file) {
  const [header, ...rows] = fs.readFileSync(file, 'utf8').trim().split('\n');
  const names = header.split(',');
  // cbrec synth writes no quoted fields (titles have no commas); a quote would mean a new format.
  if (rows.some((r) => r.includes('"'))) throw new Error(`${file}: quoted CSV fields are not expected`);
  return rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [names[i], v])));
}

function loadTruth(dir) {
  const movies = readCsv(path.join(dir, 'movies.csv'));
  const items = new Map(movies.map((m) => [m.movieId, { title: m.title, genres: m.genres.split('|') }]));
  const byUser = new Map();
  for (const r of readCsv(path.join(dir, 'ratings.csv'))) {
    if (!byUser.has(r.userId)) byUser.set(r.userId, []);
    byUser.get(r.userId).push(r.movieId);
  }
  const genres = [...new Set(movies.flatMap((m) => m.genres.split('|')))].sort();
  return { items, byUser, genres };
}

// A shop-like catalog in dir: string ids holding '=', '&', '/', '%' and UTF-8, a tags and a brand
// column, no genres; items i share their tags with i + 3, 6, ... and 30 users pick 8 items each
// (implicit events: a model of 0/1 picks).
function writeGenericCatalog(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const tags = ['jazz;bebop', 'rock;café', 'pop'];
  const ids = Array.from({ length: 24 }, (_, i) => (i === 0 ? 'k=v&x/100%' : `sku ${i}=é`));
  fs.writeFileSync(path.join(dir, 'cbrec.schema'), 'ratings = r.csv\nitems = i.csv\n' +
    'items.columns = id, name:title, tags:multi(;), brand:categorical\n');
  fs.writeFileSync(path.join(dir, 'i.csv'), 'id,name,tags,brand\n' +
    ids.map((id, i) => `"${id}",Product ${i},${tags[i % 3]},${i % 2 ? 'Zed' : 'Acme'}\n`).join(''));
  let ratings = 'user,item\n';
  for (let u = 0; u < 30; u++) {
    for (let k = 0; k < 8; k++) ratings += `u${u},"${ids[(u * 5 + k * 3) % 24]}"\n`;
  }
  fs.writeFileSync(path.join(dir, 'r.csv'), ratings);
  return ids;
}

/* ---------- server ---------- */

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${args[0]} failed: ${(r.stderr || r.error || '').toString().slice(-600)}`);
  return r.stdout;
}

function getStatus(url) {
  return new Promise((resolve) => {
    const request = http.get(url, (response) => { response.resume(); resolve(response.statusCode); });
    request.on('error', () => resolve(0));
    request.setTimeout(1000, () => { request.destroy(); resolve(0); });
  });
}

// Starts `cbrec serve` on 127.0.0.1 port 0 (it picks a free port and prints its address on its
// first line), then waits for /healthz to answer 200.
async function startServer(model) {
  const child = spawn(CBREC, ['serve', '--model', model, '--listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let output = '';
  child.stdout.on('data', (d) => { output = (output + d).slice(-2000); });
  child.stderr.on('data', (d) => { output = (output + d).slice(-2000); });
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`cbrec serve exited (${child.exitCode}): ${output}`);
    const address = /http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
    if (address && await getStatus(`http://127.0.0.1:${address[1]}/healthz`) === 200) {
      return { base: `http://127.0.0.1:${address[1]}`, child };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`cbrec serve did not answer /healthz within 15 s: ${output}`);
}

/* ---------- page helpers ---------- */

const texts = (selector) => `[...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => e.textContent.trim())`;
const attrs = (selector, name) => `[...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => e.getAttribute(${JSON.stringify(name)}))`;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function sameSet(a, b) {
  const sa = new Set(a), sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}

// Waits until the new-profile list has been refreshed after `version` (app.js numbers each refresh).
async function profileRefreshedAfter(page, version) {
  await page.waitFor(`(() => { const p = document.getElementById('panel-profile');
    return p.getAttribute('aria-busy') === 'false' && Number(p.dataset.version || 0) > ${version}; })()`,
  'the profile\'s recommendations to refresh');
  return page.eval(`Number(document.getElementById('panel-profile').dataset.version)`);
}

const profileVersion = (page) => page.eval(`Number(document.getElementById('panel-profile').dataset.version || 0)`);

function share(titles, genre) {
  return titles.length ? titles.filter((t) => t.includes(genre)).length / titles.length : 0;
}

/* ---------- the checks ---------- */

function tests(page, base, truth, work) {
  const ctx = {};
  return [
    ['web_page_loads', async () => {
      await page.goto(`${base}/`);
      await page.waitFor(`document.body.dataset.ready === 'true'`, 'the page to load (body[data-ready])');
      const info = await page.eval(`document.getElementById('model-info').textContent`);
      check(info.includes(`${truth.items.size} items`), `header says "${info}", not ${truth.items.size} items`);
      const chips = await page.eval(attrs('#genre-chips [data-genre]', 'data-genre'));
      check(sameSet(chips, truth.genres), `genre chips ${chips} != the data's genres ${truth.genres}`);
      const dots = await page.eval(`document.querySelectorAll('#map .base circle').length`);
      check(dots === Math.min(truth.items.size, 3000), `map has ${dots} dots for ${truth.items.size} items`);
    }],
    ['web_search_shows_titles', async () => {
      const query = 'Story 12';
      await page.type('#search-input', query);
      await page.click('#search-form button[type=submit]');
      await page.waitFor(`!document.getElementById('results-card').hidden && document.querySelectorAll('#results .entry').length`, 'search results');
      const shown = await page.eval(texts('#results .entry .title-link'));
      const expected = [...truth.items.values()].map((m) => m.title).filter((t) => t.toLowerCase().includes(query.toLowerCase()));
      check(expected.length > 0 && expected.length <= 20, `test data: ${expected.length} titles match "${query}"`);
      check(sameSet(shown, expected), `search "${query}" shows ${JSON.stringify(shown)}, expected ${JSON.stringify(expected)}`);
      ctx.firstResult = { id: await page.eval(`document.querySelector('#results .entry').dataset.item`), title: shown[0] };
    }],
    ['web_item_shows_similar_with_reasons', async () => {
      const { id, title } = ctx.firstResult;
      await page.click('#results .entry .title-link');
      await page.waitFor(`document.getElementById('item-title').textContent === ${JSON.stringify(title)} &&
        document.querySelectorAll('#similar .entry').length > 0`, `the item page of "${title}"`);
      const ids = await page.eval(attrs('#similar .entry', 'data-item'));
      check(ids.length === 10, `${ids.length} similar items, expected 10`);
      check(!ids.includes(id), 'the item is listed as similar to itself');
      const reasons = await page.eval(`[...document.querySelectorAll('#similar .entry')].map((e) => e.querySelectorAll('.reason').length)`);
      check(reasons.every((n) => n > 0), `similar items without a reason: ${reasons}`);
      const scores = await page.eval(`${texts('#similar .entry .score')}.map((s) => Number(s.split(' ').pop()))`);
      check(scores.every((s, i) => i === 0 || s <= scores[i - 1]), `similarities not descending: ${scores}`);
      const mine = new Set(truth.items.get(id).genres);
      const sharing = ids.filter((j) => truth.items.get(j).genres.some((g) => mine.has(g))).length;
      check(sharing >= 6, `only ${sharing} of 10 similar items share a genre with "${title}" (planted: genres)`);
      const sharesChips = await page.eval(`${texts('#similar .reason')}.filter((t) => t.startsWith('shares ')).length`);
      check(sharesChips === sharing, `${sharesChips} "shares …" reasons for ${sharing} items sharing a genre`);
      const marks = await page.eval(`[document.querySelectorAll('#map .mark-rec').length, document.querySelectorAll('#map .mark-focus').length]`);
      check(marks[0] === 10 && marks[1] === 1, `map marks ${marks[0]} similar items and ${marks[1]} opened item`);
      await page.screenshot(path.join(ARTIFACTS, 'web-item.png'), WIDTH);
      await page.init(WIDTH, HEIGHT);
    }],
    ['web_known_user_history_and_recs', async () => {
      const user = [...truth.byUser.keys()].sort((a, b) => truth.byUser.get(b).length - truth.byUser.get(a).length)[0];
      const rated = truth.byUser.get(user);
      await page.click('#tab-user');
      // A <select>'s popup is native UI that CDP clicks cannot reach; choose as the keyboard does.
      await page.eval(`(() => { const s = document.getElementById('user-select'); s.focus(); s.value = ${JSON.stringify(user)};
        s.dispatchEvent(new Event('change', { bubbles: true })); })()`);
      await page.waitFor(`document.querySelectorAll('#user-history li[data-item]').length === ${rated.length} &&
        document.querySelectorAll('#user-recs .entry').length > 0`, `user ${user}'s history and recommendations`);
      const visible = `[...document.querySelectorAll('#user-history li[data-item]')].filter((li) => li.getClientRects().length > 0).length`;
      const before = await page.eval(visible);
      check(before === Math.min(15, rated.length), `${before} history rows shown before "Show all"`);
      if (rated.length > 15) {
        await page.click('#history-more');
        await page.waitFor(`${visible} === ${rated.length}`, 'the whole history after "Show all"');
        await page.click('#history-more');
        await page.waitFor(`${visible} === 15`, 'the history folded again');
      }
      const history = await page.eval(attrs('#user-history li[data-item]', 'data-item'));
      check(sameSet(history, rated), `user ${user}'s history on the page differs from ratings.csv`);
      const recs = await page.eval(attrs('#user-recs .entry', 'data-item'));
      check(recs.length === 10, `${recs.length} recommendations, expected 10`);
      check(!recs.some((i) => rated.includes(i)), 'a recommendation the user has already rated');
      const reasons = await page.eval(`[...document.querySelectorAll('#user-recs .entry')].map((e) => e.querySelectorAll('.reason').length)`);
      check(reasons.every((n) => n > 0), `recommendations without a reason: ${reasons}`);
      const rings = await page.eval(`document.querySelectorAll('#map .mark-history').length`);
      check(rings === rated.length, `map rings ${rings} rated items, user rated ${rated.length}`);
      await page.screenshot(path.join(ARTIFACTS, 'web-user.png'), WIDTH);
      await page.init(WIDTH, HEIGHT);
      // The map is live: clicking the mark of recommendation 1 opens that item.
      await page.click(`#map .mark-rec[data-item="${recs[0]}"]`);
      const title = truth.items.get(recs[0]).title;
      await page.waitFor(`document.getElementById('item-title').textContent === ${JSON.stringify(title)} &&
        !document.getElementById('panel-item').hidden`, `the map's mark 1 to open "${title}"`);
    }],
    ['web_profile_genre_clicks_move_recs', async () => {
      await page.click('#results-close');
      await page.waitFor(`document.getElementById('results-card').hidden`, 'the search results to close');
      await page.click('#tab-profile');
      let version = await profileVersion(page);
      await page.click('#profile-clear');
      version = await profileRefreshedAfter(page, version);
      ctx.baseline = { ids: await page.eval(attrs('#profile-recs .entry', 'data-item')), titles: await page.eval(texts('#profile-recs .entry .title-link')) };
      check(ctx.baseline.ids.length === 10, `empty profile: ${ctx.baseline.ids.length} recommendations`);
      // The planted class: the genre the empty profile shows least, among genres with 20+ items.
      const sizes = new Map(truth.genres.map((g) => [g, [...truth.items.values()].filter((m) => m.genres.includes(g)).length]));
      const genre = truth.genres.filter((g) => sizes.get(g) >= 20)
        .sort((a, b) => share(ctx.baseline.titles, a) - share(ctx.baseline.titles, b) || a.localeCompare(b))[0];
      ctx.genre = genre;
      await page.click(`#genre-chips [data-genre="${genre}"]`);
      version = await profileRefreshedAfter(page, version);
      const pressed = await page.eval(`document.querySelector('#genre-chips [data-genre="${genre}"]').getAttribute('aria-pressed')`);
      check(pressed === 'true', `the ${genre} chip is not shown as chosen`);
      const titles = await page.eval(texts('#profile-recs .entry .title-link'));
      const before = share(ctx.baseline.titles, genre), after = share(titles, genre);
      check(after >= 0.7 && after > before, `liking ${genre}: ${genre} share ${before} -> ${after} (want >= 0.7)`);
      const size = await page.screenshot(path.join(ARTIFACTS, 'web-overview.png'), WIDTH, true, 0.7);
      check(size > 20000, `overview screenshot is only ${size} bytes`);
      await page.init(WIDTH, HEIGHT);
      ctx.version = version;
    }],
    // Rating items moves a new profile's list, with reasons naming the rated items; it is not
    // asserted to move toward their genre: on this model it barely does (see the README).
    ['web_profile_rating_clicks_change_recs', async () => {
      const genre = ctx.genre;
      let version = ctx.version;
      await page.click('#profile-clear');
      version = await profileRefreshedAfter(page, version);
      await page.type('#search-input', genre);
      await page.click('#search-form button[type=submit]');
      await page.waitFor(`document.getElementById('results-title').textContent.includes(${JSON.stringify(genre)}) &&
        document.querySelectorAll('#results .entry').length >= 3`, `search results for ${genre}`);
      const rated = (await page.eval(attrs('#results .entry', 'data-item'))).slice(0, 3);
      for (const id of rated) {
        await page.click(`#results .entry[data-item="${id}"] .star[data-rate="5"]`);
        version = await profileRefreshedAfter(page, version);
      }
      const chips = await page.eval(attrs('#profile-ratings [data-item]', 'data-item'));
      check(sameSet(chips, rated), `rated items shown ${chips}, clicked ${rated}`);
      const ids = await page.eval(attrs('#profile-recs .entry', 'data-item'));
      check(ids.length === 10, `${ids.length} recommendations after rating`);
      check(!ids.some((i) => rated.includes(i)), 'a rated item is recommended back');
      check(ids.join() !== ctx.baseline.ids.join(), 'rating three items did not change the list at all');
      const rings = await page.eval(`document.querySelectorAll('#map .mark-history').length`);
      check(rings === 3, `map rings ${rings} items, 3 were rated`);
      // The page shows the server's answer for exactly this profile: the same items and, for
      // each, the same reasons. Whether a reason names a rated item ("because you rated ...")
      // depends on the model: the neighbour component behind it is chosen on a validation
      // carve and may be weak or off on this small synthetic set; when the server names one,
      // the page must show it.
      const ratings = Object.fromEntries(rated.map((id) => [id, 5]));
      const api = await page.eval(`fetch('/v1/recommend', { method: 'POST', headers: { 'Content-Type':
        'application/json' }, body: JSON.stringify({ profile: { ratings: ${JSON.stringify(ratings)} }, n: 10 }) })
        .then((r) => r.json())`);
      check(api.items.map((e) => e.item).join() === ids.join(), `page list ${ids} is not the server's ${api.items.map((e) => e.item)}`);
      const shown = await page.eval(`[...document.querySelectorAll('#profile-recs .entry')].map((e) =>
        [...e.querySelectorAll('.reason')].map((r) => r.textContent))`);
      api.items.forEach((e, i) => {
        for (const r of e.reasons || []) check(shown[i].includes(r), `item ${e.item}: reason '${r}' not shown (page: ${shown[i].join(' | ')})`);
      });
      const ratedTitles = rated.map((id) => truth.items.get(id).title);
      const named = api.items.some((e) => (e.reasons || []).some((r) => ratedTitles.some((t) => r.includes(t))));
      console.log(`rated-item reasons from the server for this profile: ${named ? 'yes' : 'none (a weak or absent neighbour component)'}`);
      await page.screenshot(path.join(ARTIFACTS, 'web-profile.png'), WIDTH);
      await page.init(WIDTH, HEIGHT);
    }],
    ['web_narrow_screen_no_overflow', async () => {
      await page.send('Emulation.setDeviceMetricsOverride', { width: 390, height: 844, deviceScaleFactor: 1, mobile: true });
      await page.waitFor(`document.documentElement.clientWidth === 390`, 'the narrow viewport');
      const overflow = await page.eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`);
      check(overflow <= 0, `the page is ${overflow}px wider than a 390px screen`);
      const size = await page.screenshot(path.join(ARTIFACTS, 'web-narrow.png'), 390);
      check(size > 5000, `narrow screenshot is only ${size} bytes`);
      await page.init(WIDTH, HEIGHT);
    }],
    ['web_deep_link_opens_item', async () => {
      const current = await page.eval(`document.getElementById('item-title').textContent`);
      const id = [...truth.items.keys()].find((i) => truth.items.get(i).title !== current);
      await page.goto(`${base}/?fresh=1#item=${id}`);  // a query string: a new document, not a hash change
      await page.waitFor(`document.body.dataset.ready === 'true' &&
        document.getElementById('item-title').textContent === ${JSON.stringify(truth.items.get(id).title)} &&
        document.querySelectorAll('#similar .entry').length === 10`, `/#item=${id} to open its item page`);
    }],
    ['web_generic_catalog', async () => {
      if (!work) return console.log('web_generic_catalog: skipped with --url (it starts its own server)');
      const dir = path.join(work, 'generic'), ids = writeGenericCatalog(dir);
      run(CBREC, ['train', '--data', dir, '--model', path.join(dir, 'm.cbrec'), '--epochs', '2', '--seed', '1', '-q']);
      const other = await startServer(path.join(dir, 'm.cbrec'));
      try {
        // a profile saved against other data: an attribute and an item this model has not (every
        // list was an error), and an item it has under another title
        await page.goto(`${other.base}/`);
        await page.waitFor(`document.body.dataset.ready === 'true'`, 'the page on the second server');
        await page.eval(`localStorage.setItem('cbrec-profile', JSON.stringify({ genres: [], columns: { age: 30 },
          ratings: [['no such item', { rating: 5, title: 'Gone' }], [${JSON.stringify(ids[1])}, { rating: 2, title: 'Old title' }]] }))`);
        // a deep link to an id holding '=' (it opened 'k' and said "unknown item")
        await page.goto(`${other.base}/?fresh=1#item=${encodeURIComponent(ids[0])}`);
        await page.waitFor(`document.body.dataset.ready === 'true' &&
          document.getElementById('item-title').textContent === 'Product 0' &&
          document.querySelectorAll('#similar .entry').length === 10`, `/#item=${encodeURIComponent(ids[0])} to open its item page`);
        // without genres the map is coloured by the first multi-valued column, tags (it was all grey)
        const fills = await page.eval(attrs('#map .base circle', 'fill'));
        check(fills.length === ids.length && new Set(fills).size === 3 && !fills.includes('#9aa3ad'),
          `map dots not coloured by their first tag: ${[...new Set(fills)]}`);
        const legend = await page.eval(texts('#map-legend li'));
        check(['jazz', 'rock', 'pop'].every((t) => legend.includes(t)), `map legend without the first tags: ${legend}`);
        const caption = await page.eval('mapColourWords()'); // the caption's words when nothing is highlighted
        check(caption.includes('Coloured by first tags value'), `map caption: ${caption}`);
        const reasons = await page.eval(texts('#similar .reason'));
        // without genres every similar item "had no genre in common", whatever tags it shared
        check(reasons.some((r) => r.startsWith('shares tags: jazz, bebop')), `no "shares tags" reason: ${reasons}`);
        check(!reasons.some((r) => r.startsWith('no genre')), `a reason about genres in a catalog without: ${reasons}`);
        // four stars in a new profile, on a model of 0/1 picks (sent as 4, refused: the list an error)
        const version = await profileVersion(page);
        await page.click('#item-rate [data-rate="4"]');
        await page.click('#tab-profile');
        await profileRefreshedAfter(page, version);
        const status = await page.eval(`document.getElementById('status').hidden ? '' : document.getElementById('status').textContent`);
        check(!status, `the new profile's list is an error: ${status}`);
        const kept = await page.eval(`[...document.querySelectorAll('#profile-ratings li')].map((e) => e.dataset.item + ': ' + e.textContent)`);
        check(kept.length === 2 && kept.some((t) => t.startsWith(`${ids[1]}: ★ 2 Product 1`)) && !kept.some((t) => t.startsWith('no such item')),
          `the saved profile's ratings: ${kept}`);
        // the page asked whether the saved item is there: the browser logs the 404 that said no
        page.errors = page.errors.filter((e) => !e.includes('/v1/items/no%20such%20item'));
        check(await page.eval(`document.querySelectorAll('#profile-recs .entry').length`) > 0, 'no list for the new profile');
        // without genres the profile still picks content: the tags' and the brand's values (there were no pickers)
        check(await page.eval(`document.getElementById('genres-heading').hidden`), 'a Genres heading in a catalog without');
        const chips = await page.eval(`[...document.querySelectorAll('#content-chips [data-column]')].map((b) => b.dataset.column + '=' + b.dataset.value)`);
        check(chips.includes('tags=jazz') && chips.includes('brand=Zed'), `no tag and brand pickers: ${chips}`);
        const before = await profileVersion(page);
        await page.click('#content-chips [data-column="tags"][data-value="jazz"]');
        await profileRefreshedAfter(page, before);
        const liked = await page.eval(`document.querySelector('#content-chips [data-value="jazz"]').getAttribute('aria-pressed')`);
        check(liked === 'true', 'the jazz chip is not pressed');
        const after = await page.eval(`document.getElementById('status').hidden ? '' : document.getElementById('status').textContent`);
        check(!after, `the profile with a liked tag is an error: ${after}`);
        const saved = await page.eval(`JSON.parse(localStorage.getItem('cbrec-profile')).prefs`);
        check(JSON.stringify(saved) === JSON.stringify([['tags\u001fjazz', 5]]), `saved preferences: ${JSON.stringify(saved)}`);
      } finally {
        other.child.kill('SIGTERM');
      }
    }],
    ['web_no_console_errors', async () => {
      const status = await page.eval(`document.getElementById('status').hidden ? '' : document.getElementById('status').textContent`);
      check(!status, `the page shows an error: ${status}`);
      check(page.errors.length === 0, `console errors: ${page.errors.join(' | ')}`);
    }],
  ];
}

/* ---------- main ---------- */

async function main() {
  const devUrl = option('--url');
  if (!fs.existsSync(CHROMIUM)) skip('web_page', `no chromium at ${CHROMIUM} (scripts/install-deps.sh installs it)`);
  let work = null, server = null, base = devUrl, dataDir = option('--data');
  if (!devUrl) {
    if (!fs.existsSync(CBREC)) skip('web_page', `no cbrec binary at ${CBREC}`);
    const help = spawnSync(CBREC, ['serve', '--help'], { encoding: 'utf8' });
    if (help.status !== 0) skip('web_page', `'${path.basename(CBREC)} serve' is not available: ${(help.stderr || '').split('\n')[0]}`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  let browser = null, failed = 0;
  // On the watchdog or a signal: kill what this test started, then leave (never leave them running).
  const abandon = (why) => {
    console.log(`[ RUN      ] web_page_watchdog\npage test: ${why}\n[  FAILED  ] web_page_watchdog`);
    for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
    if (work) fs.rmSync(work, { recursive: true, force: true });
    process.exit(1);
  };
  const watchdog = setTimeout(() => abandon(`still running after ${WATCHDOG_MS / 1000} s`), WATCHDOG_MS);
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => abandon(`stopped by ${signal}`));
  try {
    const t0 = Date.now();
    if (!devUrl) {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'cbrec-web-'));
      dataDir = path.join(work, 'data');
      run(CBREC, ['synth', '--out', dataDir, '--users', '300', '--items', '400', '--ratings', '15000', '--genres', '8', '--seed', '7']);
      run(CBREC, ['train', '--data', dataDir, '--model', path.join(work, 'm.cbrec'), '--epochs', '5', '--seed', '1', '-q']);
      server = await startServer(path.join(work, 'm.cbrec'));
      base = server.base;
      console.log(`web page test: data, model and server ready in ${Date.now() - t0} ms (${base})`);
    }
    const truth = loadTruth(dataDir);
    browser = await Browser.launch(CHROMIUM, WIDTH, HEIGHT, (child) => started.push(child));
    const page = await browser.newPage();
    await page.init(WIDTH, HEIGHT);
    for (const [name, body] of tests(page, base, truth, work)) {
      console.log(`[ RUN      ] ${name}`);
      const t1 = Date.now();
      try {
        await body();
        console.log(`[       OK ] ${name} (${Date.now() - t1} ms)`);
      } catch (error) {
        failed++;
        console.log(`${error.message}\n[  FAILED  ] ${name}`);
      }
    }
    console.log(`screenshots: ${ARTIFACTS}/web-*.png`);
  } catch (error) {
    failed++;
    console.log(`[ RUN      ] web_page_setup\n${error.message}\n[  FAILED  ] web_page_setup`);
  } finally {
    clearTimeout(watchdog);
    if (browser) await browser.close();
    if (server) server.child.kill('SIGTERM');
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main();
