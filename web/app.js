// cbrec's page logic (vanilla JS, no build step): talks to the /v1/* JSON API of `cbrec serve`
// (contract: SERVE-API.md), renders the item / known-user / new-profile panels, the lists with
// their reasons, and the SVG map of the item vectors with the shown list highlighted.
'use strict';

const N_RECS = 10;
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1',
  '#ff9da7', '#9c755f', '#8cd17d', '#86bcb6', '#d37295', '#a0cbe8', '#ffbe7d', '#bab0ac',
  '#499894', '#d4a6c8', '#79706e'];

// A new profile: rated items, genres and other content values (prefs: "column\u001fvalue") to stars,
// the user columns' values.
function emptyProfile() {
  return { ratings: new Map(), genres: new Map(), prefs: new Map(), columns: {} };
}

const state = {
  meta: null,
  map: null,            // {points, byId: Map id -> point}
  genreColor: new Map(),
  mapColor: new Map(),  // the colours of the map's column (meta.map_column: genres, else tags, ...)
  genresById: new Map(), // everything the page has learnt of items' genres
  titleById: new Map(),
  profile: emptyProfile(),
  seq: { profile: 0, user: 0, item: 0, search: 0 },
  diversity: 0,         // 0..1: MMR trade-off asked of the server for user and profile lists
  shown: { list: [], history: [], focus: null, label: '' },
};

const $ = (id) => document.getElementById(id);

// el('li', {class: 'x', onclick: f}, child, 'text', ...) — a DOM node; null children are skipped.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showStatus(message) {
  const box = $('status');
  box.textContent = message;
  box.hidden = !message;
}

// GET or POST JSON; throws Error(message from the API's {"error":{...}}) on a non-2xx answer.
async function api(path, body) {
  const init = body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const message = data && data.error && data.error.message ? data.error.message : response.statusText;
    throw new Error(`${path.split('?')[0]}: ${message} (HTTP ${response.status})`);
  }
  return data;
}

// Runs an async step, shows its error in the status bar instead of the console.
async function guarded(step) {
  try {
    await step();
    showStatus('');
  } catch (error) {
    showStatus(error.message);
  }
}

function learnItem(entry) {
  const id = String(entry.item);
  if (entry.title) state.titleById.set(id, entry.title);
  if (Array.isArray(entry.genres)) state.genresById.set(id, entry.genres);
}

function fmt(x, digits) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '–';
}

// What the model learnt from (/v1/meta): 'rating' (stars), 'binary' (0/1 picks) or
// 'weighted' (summed event weights); the reasons word it the same way ("which you picked").
function dataKind() {
  const m = state.meta || {};
  return m.binary ? 'binary' : m.weighted ? 'weighted' : 'rating';
}

// A predicted value as the model means it: a star rating only where it learnt ratings.
function predictionText(value) {
  const kind = dataKind();
  return kind === 'rating' ? `★ ${fmt(value, 1)}` : kind === 'binary' ? `p ${fmt(value, 2)}` : `weight ${fmt(value, 1)}`;
}

// An observed value (a history entry, a mean): a rating, a pick or a weight.
function observedText(value, digits) {
  const kind = dataKind();
  return kind === 'rating' ? `★ ${fmt(value, digits)}` : kind === 'binary' ? 'picked' : `weight ${fmt(value, digits)}`;
}

function genreChips(genres) {
  if (!genres || !genres.length) return null;
  return el('span', { class: 'chips inline' }, genres.map((g) => el('span', {
    class: 'chip genre', style: `--c:${state.genreColor.get(g) || '#888'}`,
  }, g)));
}

// Five star buttons rating `id` in the new profile; clicking the current rating removes it.
function starButtons(id, title) {
  const current = state.profile.ratings.has(id) ? state.profile.ratings.get(id).rating : 0;
  const box = el('span', { class: 'stars', role: 'group', 'aria-label': `Rate ${title}`, 'data-for': id });
  for (let r = 1; r <= 5; r++) {
    box.append(el('button', {
      type: 'button', class: r <= current ? 'star on' : 'star',
      'aria-label': `${r} of 5`, 'aria-pressed': String(r === current), 'data-rate': r,
      title: r === current ? 'Remove this rating' : `Rate ${r} of 5`,
      onclick: () => rateItem(id, title, r === current ? 0 : r),
    }, '★'));
  }
  return box;
}

function openButton(id, title) {
  return el('button', { type: 'button', class: 'title-link', 'data-item': id,
    onclick: () => openItem(id) }, title || `item ${id}`);
}

// One entry of a cb_list_to_json list: rank, title, genres, score, predicted rating, reasons.
function listEntry(entry, opts) {
  learnItem(entry);
  const id = String(entry.item);
  const genres = entry.genres || state.genresById.get(id);
  const reasons = (entry.reasons || []).slice();
  if (opts.extraReasons) reasons.push(...opts.extraReasons(entry, genres));
  const stats = [el('span', { class: 'score', title: opts.scoreTitle }, `${opts.scoreName} ${fmt(entry.score, 2)}`)];
  if (typeof entry.rating === 'number') {
    stats.push(el('span', { class: 'rating', title: (state.meta && state.meta.prediction) || 'predicted rating' },
      predictionText(entry.rating)));
  }
  return el('li', { class: 'entry', 'data-item': id },
    el('span', { class: 'rank', 'aria-hidden': 'true' }, entry.rank || ''),
    el('div', { class: 'entry-body' },
      el('div', { class: 'entry-top' }, openButton(id, entry.title), el('span', { class: 'stats' }, stats)),
      el('div', { class: 'meta-line' }, genreChips(genres),
        (entry.sources || []).length ? el('span', { class: 'chips inline sources', title: 'the retrieval sources that proposed it' },
          el('span', { class: 'via' }, 'via'), entry.sources.map((s) => el('span', { class: 'chip source' }, s))) : null),
      reasons.length ? el('ul', { class: 'chips reasons', 'aria-label': 'why' },
        reasons.map((r) => el('li', { class: 'chip reason' }, r))) : null),
    opts.stars ? starButtons(id, entry.title) : null);
}

function renderList(target, list, opts) {
  target.replaceChildren(...(list.items || []).map((entry) => listEntry(entry, opts)));
  if (!(list.items || []).length) target.append(el('li', { class: 'hint' }, 'No items.'));
}

/* ---------- tabs and routing ---------- */

function selectTab(name) {
  for (const tab of ['item', 'user', 'profile']) {
    $(`tab-${tab}`).setAttribute('aria-selected', String(tab === name));
    $(`tab-${tab}`).tabIndex = tab === name ? 0 : -1;
    $(`panel-${tab}`).hidden = tab !== name;
  }
  state.tab = name;
  $('diversity').closest('label').hidden = name === 'item';  // similar items are not diversified
  if (name === 'profile') refreshProfile();
  else if (name === 'user' && state.userShown) highlight(state.userShown);
  else if (name === 'item' && state.itemShown) highlight(state.itemShown);
  else highlight({ list: [], history: [], focus: null, label: '' });
}

function setHash(hash) {
  if (location.hash !== hash) history.replaceState(null, '', hash || location.pathname);
}

/* ---------- search ---------- */

async function search(text) {
  const seq = ++state.seq.search;
  const data = await api(`/v1/items?q=${encodeURIComponent(text)}&limit=20`);
  if (seq !== state.seq.search) return;
  (data.items || []).forEach(learnItem);
  $('results-title').textContent = `Search results for “${text}” (${(data.items || []).length})`;
  renderResults(data.items || []);
  $('results-card').hidden = false;
}

function renderResults(items) {
  state.results = items;
  $('results').replaceChildren(...items.map((it) => {
    const id = String(it.item);
    return el('li', { class: 'entry result', 'data-item': id },
      el('div', { class: 'entry-body' },
        el('div', { class: 'entry-top' }, openButton(id, it.title),
          el('span', { class: 'stats' }, el('span', { class: 'count' }, `${it.n_ratings ?? 0} ratings`))),
        genreChips(it.genres)),
      starButtons(id, it.title));
  }));
  if (!items.length) $('results').append(el('li', { class: 'hint' }, 'No title matches.'));
}

/* ---------- item panel ---------- */

async function openItem(id) {
  id = String(id);
  const seq = ++state.seq.item;
  selectTab('item');
  setHash(`#item=${encodeURIComponent(id)}`);
  const [item, similar] = await Promise.all([
    api(`/v1/items/${encodeURIComponent(id)}`), api(`/v1/similar?item=${encodeURIComponent(id)}&k=${N_RECS}`)]);
  if (seq !== state.seq.item) return;
  learnItem(item);
  await fillGenres(similar.items || []);
  if (seq !== state.seq.item) return;
  state.itemId = id;
  $('item-empty').hidden = true;
  $('item-view').hidden = false;
  $('item-title').textContent = item.title;
  const facts = [`item ${id}`, `${item.n_ratings ?? 0} ratings`];
  if (typeof item.mean_rating === 'number' && dataKind() !== 'binary') facts.push(`mean ${observedText(item.mean_rating, 2)}`);
  if (item.new) facts.push('new item (placed by its content alone)');
  // the other content columns (tags, brand, ...): the chips are the genres alone
  for (const [column, values] of Object.entries(item.content || {})) facts.push(`${column}: ${values.join(', ')}`);
  $('item-facts').textContent = facts.join(' · ');
  $('item-genres').replaceChildren(genreChips(item.genres) || '');
  $('item-rate').replaceChildren(starButtons(id, item.title));
  $('similar-criterion').textContent = similar.criterion ? `(by ${similar.criterion})` : '';
  renderList($('similar'), similar, {
    scoreName: 'similarity', scoreTitle: similar.criterion, stars: true,
    extraReasons: (entry, genres) => {
      const shared = sharedContent(item, genres, entry.content);
      const out = [];
      if (!(entry.reasons || []).length) out.push(`item vectors ${fmt(entry.score, 2)} alike (cosine)`);
      if (shared.length) out.push(`shares ${shared.join(', ')}`);
      else if (genres) out.push(`no ${contentWords()} in common: alike by other features`);
      return out;
    },
  });
  state.itemShown = { list: (similar.items || []).map((e) => String(e.item)), history: [], focus: id,
    label: `the ${(similar.items || []).length} items most similar to “${item.title}”` };
  highlight(state.itemShown);
  revealPanel();
}

// What an item shares with the opened one: genres, then each other content column's values
// ("tags: jazz, bebop"), as /v1/items and the lists give them.
function sharedContent(item, genres, content) {
  const out = (genres || []).filter((g) => (item.genres || []).includes(g));
  for (const [column, values] of Object.entries(content || {})) {
    const mine = (item.content || {})[column] || [];
    const both = values.filter((v) => mine.includes(v));
    if (both.length) out.push(`${column}: ${both.join(', ')}`);
  }
  return out;
}

// The model's content columns in words: "genre", "genre, tags or brand", "tags or brand".
function contentWords() {
  const columns = Object.entries(state.meta.columns || {}).filter(([, values]) => (values || []).length);  // not numeric, text
  const names = [...((state.meta.genres || []).length ? ['genre'] : []), ...columns.map(([column]) => column)];
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : names[0] || 'genre';
}

// Brings the panels' card into view when it starts below the fold (after a search, say).
function revealPanel() {
  const card = $('tab-item').closest('.card');
  if (card.getBoundingClientRect().top > window.innerHeight * 0.6) card.scrollIntoView({ block: 'start' });
}

// Similar-item lists carry no genres: fetch the missing ones so the "shares …" reason can be given.
async function fillGenres(entries) {
  const missing = entries.filter((e) => !e.genres && !state.genresById.has(String(e.item)));
  await Promise.all(missing.map((e) => api(`/v1/items/${encodeURIComponent(e.item)}`)
    .then(learnItem).catch(() => null)));
}

/* ---------- known user panel ---------- */

async function loadUsers() {
  const data = await api('/v1/users?limit=200');
  const select = $('user-select');
  for (const u of data.users || []) {
    select.append(el('option', { value: String(u.user) }, `user ${u.user} (${u.n_ratings} ratings)`));
  }
}

async function openUser(id) {
  id = String(id);
  const seq = ++state.seq.user;
  selectTab('user');
  setHash(`#user=${encodeURIComponent(id)}`);
  const select = $('user-select');
  if (![...select.options].some((o) => o.value === id)) select.append(el('option', { value: id }, `user ${id}`));
  select.value = id;
  const [user, recs] = await Promise.all([
    api(`/v1/users/${encodeURIComponent(id)}`), api(`/v1/recommend?user=${encodeURIComponent(id)}&n=${N_RECS}${state.diversity ? `&diversity=${state.diversity}` : ''}`)]);
  if (seq !== state.seq.user) return;
  state.userId = id;
  const history = (user.history || []).slice().sort((a, b) => (b.time || 0) - (a.time || 0));
  history.forEach(learnItem);
  const ratings = history.map((h) => h.rating).filter((r) => typeof r === 'number');
  const mean = ratings.length ? ratings.reduce((a, b) => a + b, 0) / ratings.length : null;
  $('user-facts').textContent = [mean === null || dataKind() === 'binary' ? null : `mean ${observedText(mean, 2)}`,
    user.live_events ? `${user.live_events} live events` : null].filter(Boolean).join(' · ');
  $('user-view').hidden = false;
  $('user-criterion').textContent = recs.criterion ? `(by ${recs.criterion})` : '';
  renderList($('user-recs'), recs, { scoreName: 'score', scoreTitle: recs.criterion });
  renderHistory(history);
  state.userShown = { list: (recs.items || []).map((e) => String(e.item)),
    history: history.map((h) => String(h.item)), focus: null,
    label: `user ${id}'s ${(recs.items || []).length} recommendations and their ${history.length} ${dataKind() === 'rating' ? 'rated' : 'picked'} items` };
  highlight(state.userShown);
}

const HISTORY_SHOWN = 15;

// The latest ratings first; past HISTORY_SHOWN they wait behind a "Show all" button.
function renderHistory(history) {
  const list = $('user-history');
  list.replaceChildren(...history.map((h, i) => el('li', { 'data-item': String(h.item), hidden: i >= HISTORY_SHOWN },
    el('span', { class: 'rating-pill', 'aria-label': dataKind() === 'rating' ? `rated ${h.rating}` : observedText(h.rating, 1) },
      dataKind() === 'rating' ? `★ ${h.rating}` : observedText(h.rating, 1)),
    openButton(String(h.item), h.title))));
  if (history.length > HISTORY_SHOWN) {
    const more = el('button', { type: 'button', class: 'link', id: 'history-more', 'aria-expanded': 'false' },
      `Show all ${history.length}`);
    more.addEventListener('click', () => {
      const open = more.getAttribute('aria-expanded') !== 'true';
      [...list.children].forEach((li, i) => { if (li.dataset.item) li.hidden = !open && i >= HISTORY_SHOWN; });
      more.setAttribute('aria-expanded', String(open));
      more.textContent = open ? `Show the latest ${HISTORY_SHOWN}` : `Show all ${history.length}`;
    });
    list.append(el('li', { class: 'more' }, more));
  }
}

/* ---------- new profile panel ---------- */

// A like / dislike toggle: off, liked (5 stars), disliked (1); cycle(next) sets the next state.
function moodChip(name, value, attrs, color, cycle) {
  const mood = value >= 4 ? 'like' : value ? 'dislike' : 'off';
  const label = mood === 'like' ? `${name}: liked` : mood === 'dislike' ? `${name}: disliked` : name;
  return el('button', {
    type: 'button', class: `chip genre-toggle ${mood}`, ...attrs, 'aria-label': label,
    'aria-pressed': String(mood !== 'off'), style: `--c:${color}`,
    onclick: () => cycle(!value ? 5 : value >= 4 ? 1 : 0),
  }, mood === 'like' ? '♥ ' : mood === 'dislike' ? '✕ ' : '', name);
}

// The genres, then every other content column's values (tags, brand, ...: "preferences"), the first
// MAX_VALUE_CHIPS of each as the server lists them (a schema may keep thousands).
const MAX_VALUE_CHIPS = 60;
function renderGenrePicker() {
  const genres = state.meta.genres || [];
  $('genres-heading').hidden = !genres.length;
  $('genre-chips').replaceChildren(...genres.map((g) => moodChip(g, state.profile.genres.get(g) || 0,
    { 'data-genre': g }, state.genreColor.get(g) || '#888', (stars) => setMood(state.profile.genres, g, stars))));
  const columns = Object.entries(state.meta.columns || {}).filter(([, values]) => Array.isArray(values) && values.length);
  $('content-chips').replaceChildren(...columns.map(([column, values]) => el('div', { class: 'field-block' },
    el('h3', {}, column),
    el('div', { class: 'chips genre-picker' }, values.slice(0, MAX_VALUE_CHIPS).map(String).map((v) => {
      const key = `${column}\u001f${v}`;
      return moodChip(v, state.profile.prefs.get(key) || 0, { 'data-column': column, 'data-value': v }, '#6c757d',
        (stars) => setMood(state.profile.prefs, key, stars));
    })))));
}

function setMood(map, key, stars) {
  if (stars) map.set(key, stars);
  else map.delete(key);
  renderGenrePicker();
  profileChanged();
}

function renderProfileColumns() {
  const box = $('profile-columns');
  box.replaceChildren();
  for (const [column, values] of Object.entries(state.meta.user_columns || {})) {
    const inputId = `col-${column}`;
    let input;
    if (Array.isArray(values) && values.length) {
      const sorted = values.map(String).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
      input = el('select', { id: inputId }, el('option', { value: '' }, '(any)'),
        sorted.map((v) => el('option', { value: v }, v)));
    } else {
      input = el('input', { id: inputId, type: 'number', min: 0, step: 1, placeholder: '(any)', class: 'narrow' });
    }
    if (state.profile.columns[column] !== undefined) input.value = String(state.profile.columns[column]);
    input.addEventListener('change', () => {
      const v = input.value.trim();
      if (v === '') delete state.profile.columns[column];
      else state.profile.columns[column] = input.type === 'number' ? Number(v) : v;
      profileChanged();
    });
    box.append(el('label', { class: 'field' }, el('span', {}, column), input));
  }
}

function rateItem(id, title, rating) {
  if (rating) state.profile.ratings.set(id, { rating, title });
  else state.profile.ratings.delete(id);
  // Every star group of this item (search results, item page, lists) shows the new rating.
  document.querySelectorAll('.stars[data-for]').forEach((group) => {
    if (group.dataset.for === id) group.replaceWith(starButtons(id, title));
  });
  profileChanged();
}

function renderProfileRatings() {
  const list = $('profile-ratings');
  list.replaceChildren(...[...state.profile.ratings].map(([id, r]) => el('li', { class: 'chip rated', 'data-item': id },
    `★ ${r.rating} `, openButton(id, r.title),
    el('button', { type: 'button', class: 'remove', 'aria-label': `Remove the rating of ${r.title}`,
      onclick: () => rateItem(id, r.title, 0) }, '×'))));
  $('profile-empty').hidden = state.profile.ratings.size > 0;
  const count = state.profile.ratings.size + state.profile.genres.size + state.profile.prefs.size;
  $('profile-count').textContent = String(count);
  $('profile-count').hidden = count === 0;
}

// A star count (1-5; a genre liked 5, disliked 1) as a rating on the model's scale: the stars
// themselves on a scale that tops out at 5 (MovieLens' 0.5-5 and 1-5), else spanning the scale
// (a 0/1 model: 3 stars or more is a pick). Sent as they were, stars were refused by a model of
// 0/1 picks and meant less than they said on a 1-10 scale.
function starRating(stars) {
  const [lo, hi] = state.meta.rating_scale || [1, 5];
  if (state.meta.binary) return stars >= 3 ? hi : lo;
  return hi === 5 && lo <= 1 ? stars : lo + (stars - 1) / 4 * (hi - lo);
}

function profileBody() {
  const profile = { ...state.profile.columns };
  if (state.profile.ratings.size) {
    profile.ratings = Object.fromEntries([...state.profile.ratings].map(([id, r]) => [id, starRating(r.rating)]));
  }
  if (state.profile.genres.size) {
    profile.genre_ratings = Object.fromEntries([...state.profile.genres].map(([g, stars]) => [g, starRating(stars)]));
  }
  if (state.profile.prefs.size) { // {"tags": {"jazz": 5}, "brand": {"Acme": 1}}
    profile.preferences = {};
    for (const [key, stars] of state.profile.prefs) {
      const [column, value] = key.split('\u001f');
      (profile.preferences[column] ||= {})[value] = starRating(stars);
    }
  }
  const body = { profile, n: N_RECS };
  if (state.diversity) body.diversity = state.diversity;
  return body;
}

function profileChanged() {
  renderProfileRatings();
  saveProfile();
  if (state.tab === 'profile') refreshProfile();
}

async function refreshProfile() {
  const seq = ++state.seq.profile;
  const panel = $('panel-profile');
  panel.setAttribute('aria-busy', 'true');
  await guarded(async () => {
    const recs = await api('/v1/recommend', profileBody());
    if (seq !== state.seq.profile) return;
    $('profile-criterion').textContent = recs.criterion ? `(by ${recs.criterion})` : '';
    $('profile-notes').replaceChildren(...(recs.notes || []).map((n) => el('li', {}, n)));
    renderList($('profile-recs'), recs, { scoreName: 'score', scoreTitle: recs.criterion, stars: true });
    highlight({ list: (recs.items || []).map((e) => String(e.item)),
      history: [...state.profile.ratings.keys()], focus: null,
      label: `the new profile's ${(recs.items || []).length} recommendations and its rated items` });
  });
  if (seq === state.seq.profile) panel.setAttribute('aria-busy', 'false');
  panel.dataset.version = String(seq);
}

// The profile survives a reload of the page (localStorage, this browser only).
function saveProfile() {
  try {
    localStorage.setItem('cbrec-profile', JSON.stringify({
      ratings: [...state.profile.ratings], genres: [...state.profile.genres], prefs: [...state.profile.prefs],
      columns: state.profile.columns }));
  } catch (e) { /* storage off: the profile lives for this page only */ }
}

async function restoreProfile() {
  try {
    const saved = JSON.parse(localStorage.getItem('cbrec-profile') || 'null');
    if (!saved) return;
    state.profile.ratings = await knownRatings(saved.ratings || []);
    const known = new Set(state.meta.genres || []);
    state.profile.genres = new Map((saved.genres || []).filter(([g]) => known.has(g)));
    const values = new Set(Object.entries(state.meta.columns || {}).flatMap(([c, vs]) =>
      (Array.isArray(vs) ? vs : []).map((v) => `${c}\u001f${v}`)));
    state.profile.prefs = new Map((saved.prefs || []).filter(([key]) => values.has(key)));
    // attributes this model takes only: one saved against other data (an "age" where the model
    // has none) made every list of the profile an error, and the form does not show it to remove
    const columns = state.meta.user_columns || {};
    state.profile.columns = Object.fromEntries(Object.entries(saved.columns || {}).filter(([c]) => c in columns));
  } catch (e) { /* a bad saved profile is dropped */ }
}

// The saved ratings of items this model has, titled as it titles them: one saved against other
// data (the same address serving another model) named an item this model has not, and every list
// of the profile was an error. An item the server cannot be asked about now is kept.
async function knownRatings(saved) {
  const checked = await Promise.all(saved.map(async ([id, r]) => {
    try {
      const response = await fetch(`/v1/items/${encodeURIComponent(id)}`);
      if (response.status === 404) return null;
      const item = response.ok ? await response.json() : null;
      return [id, item && item.title ? { ...r, title: item.title } : r];
    } catch (e) { return [id, r]; }
  }));
  return new Map(checked.filter(Boolean));
}

/* ---------- map ---------- */

const SVG_NS = 'http://www.w3.org/2000/svg';
const MAP_SIZE = 400, MAP_PAD = 14;

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

async function loadMap() {
  const data = await api(`/v1/map?n=0`);
  const points = data.points || [];
  points.forEach(learnItem);
  state.map = { points, byId: new Map(points.map((p) => [String(p.item), p])) };
  drawMap();
}

function mapScale(points) {
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const span = Math.max(maxX - minX, maxY - minY) || 1;
  const inner = MAP_SIZE - 2 * MAP_PAD;
  const offX = (inner - (maxX - minX) / span * inner) / 2, offY = (inner - (maxY - minY) / span * inner) / 2;
  return (p) => [MAP_PAD + offX + (p.x - minX) / span * inner, MAP_PAD + offY + (maxY - p.y) / span * inner];
}

function drawMap() {
  const box = $('map');
  const points = state.map.points;
  if (!points.length) { box.replaceChildren(el('p', { class: 'hint' }, 'No item vectors to show.')); return; }
  const place = mapScale(points);
  const root = svg('svg', { viewBox: `0 0 ${MAP_SIZE} ${MAP_SIZE}`, class: 'map-svg' });
  const base = svg('g', { class: 'base' });
  for (const p of points) {
    const [x, y] = place(p);
    p.px = x; p.py = y;
    const dot = svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.4, fill: state.mapColor.get(p.colour) || '#9aa3ad' });
    dot.append(svg('title'));
    dot.lastChild.textContent = p.title || `item ${p.item}`;
    dot.addEventListener('click', () => openItem(String(p.item)));
    base.append(dot);
  }
  root.append(base, svg('g', { class: 'marks' }));
  box.replaceChildren(root);
  renderLegend();
  highlight(state.shown);
}

function renderLegend() {
  const legend = $('map-legend');
  const used = new Set(state.map.points.map((p) => p.colour));
  legend.replaceChildren(...[...state.mapColor].filter(([g]) => used.has(g)).map(([g, c]) =>
    el('li', {}, el('span', { class: 'swatch', style: `background:${c}` }), g)));
  legend.append(el('li', {}, el('span', { class: 'swatch ring' }), 'rated'),
    el('li', {}, el('span', { class: 'swatch rec' }), 'recommended / similar'));
}

// Marks the shown list on the map: rated items ringed, list items numbered, the opened item starred.
function highlight(shown) {
  state.shown = shown;
  const root = document.querySelector('#map svg');
  if (!root || !state.map) return;
  const marks = root.querySelector('.marks');
  marks.replaceChildren();
  root.classList.toggle('dim', shown.list.length + shown.history.length > 0 || !!shown.focus);
  let placed = 0;
  for (const id of shown.history) {
    const p = state.map.byId.get(id);
    if (p) marks.append(svg('circle', { cx: p.px, cy: p.py, r: 4, class: 'mark-history', 'data-item': id }));
  }
  // Drawn last to first, so that where marks overlap the better-ranked one is on top.
  shown.list.map((id, i) => [id, i]).reverse().forEach(([id, i]) => {
    const p = state.map.byId.get(id);
    if (!p) return;
    placed++;
    const g = svg('g', { class: 'mark-rec', 'data-item': id, transform: `translate(${p.px.toFixed(1)},${p.py.toFixed(1)})` });
    g.append(svg('circle', { r: 7 }), svg('text', { y: 3.2 }), svg('title'));
    g.children[1].textContent = String(i + 1);
    g.children[2].textContent = `${i + 1}. ${state.titleById.get(id) || p.title || id}`;
    g.addEventListener('click', () => openItem(id));
    marks.append(g);
  });
  const focus = shown.focus && state.map.byId.get(shown.focus);
  if (focus) {
    const star = svg('path', { class: 'mark-focus', d: starPath(focus.px, focus.py, 9, 4) });
    star.append(svg('title'));
    star.lastChild.textContent = focus.title || shown.focus;
    marks.append(star);
  }
  const missing = shown.list.length - placed;
  $('map-caption').textContent = shown.label
    ? `Highlighted: ${shown.label}.` + (missing ? ` ${missing} of them are outside the map's sample.` : '')
    : 'Each dot is an item, placed by its vector\'s first two principal components: near dots are items the model finds alike (a projection: some alike items land apart).' + mapColourWords();
}

// What colours the map's dots, as the caption says it: the server chooses the column (meta.map_column).
function mapColourWords() {
  const column = state.meta.map_column;
  return !column ? '' : column === 'genres' ? ' Coloured by first genre.' : ` Coloured by first ${column} value.`;
}

// The map's colours: the genres' (as their chips have them), else the values of the column the server
// colours the map by (a catalog of tags alone), each value its colour in sorted order.
function mapColours() {
  const column = state.meta.map_column;
  if (column === 'genres') return state.genreColor;
  const values = ((state.meta.columns || {})[column] || []).map(String).sort((a, b) => a.localeCompare(b));
  return new Map(values.map((v, i) => [v, PALETTE[i % PALETTE.length]]));
}

function starPath(cx, cy, outer, inner) {
  const pts = [];
  for (let i = 0; i < 10; i++) {
    const r = i % 2 ? inner : outer, a = Math.PI / 5 * i - Math.PI / 2;
    pts.push(`${(cx + r * Math.cos(a)).toFixed(1)},${(cy + r * Math.sin(a)).toFixed(1)}`);
  }
  return `M${pts.join('L')}Z`;
}

/* ---------- start ---------- */

// The hash's key and its value: split at the first '=' before decoding, so that an id holding
// '=' or '&' ("k=v", sent as %3D) stays whole; a malformed %-sequence is no value.
function hashParts() {
  const hash = location.hash.slice(1), at = hash.indexOf('=');
  if (at < 0) return [hash, ''];
  try { return [hash.slice(0, at), decodeURIComponent(hash.slice(at + 1))]; } catch (e) { return [hash.slice(0, at), '']; }
}

function route() {
  const [key, value] = hashParts();
  if (key === 'item' && value) return guarded(() => openItem(value));
  if (key === 'user' && value) return guarded(() => openUser(value));
  if (key === 'q' && value) { $('search-input').value = value; return guarded(() => search(value)); }
  selectTab('profile');
  return null;
}

function wire() {
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('search-input').value.trim();
    if (text) guarded(() => search(text));
  });
  $('results-close').addEventListener('click', () => { $('results-card').hidden = true; });
  $('diversity').addEventListener('input', () => { $('diversity-out').textContent = Number($('diversity').value).toFixed(1); });
  $('diversity').addEventListener('change', () => {
    state.diversity = Number($('diversity').value);
    if (state.tab === 'profile') refreshProfile();
    else if (state.tab === 'user' && state.userId) guarded(() => openUser(state.userId));
  });
  $('user-select').addEventListener('change', (event) => {
    if (event.target.value) guarded(() => openUser(event.target.value));
  });
  $('profile-clear').addEventListener('click', () => {
    state.profile = emptyProfile();
    renderGenrePicker();
    renderProfileColumns();
    document.querySelectorAll('.stars[data-for]').forEach((group) => {
      const id = group.dataset.for;
      group.replaceWith(starButtons(id, state.titleById.get(id) || `item ${id}`));
    });
    profileChanged();
  });
  const tabs = ['item', 'user', 'profile'];
  tabs.forEach((name, i) => {
    const tab = $(`tab-${name}`);
    tab.addEventListener('click', () => {
      selectTab(name);
      if (name === 'item' && state.itemId) setHash(`#item=${encodeURIComponent(state.itemId)}`);
      else if (name === 'user' && state.userId) setHash(`#user=${encodeURIComponent(state.userId)}`);
      else setHash('');
    });
    tab.addEventListener('keydown', (event) => {
      const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      selectTab(next);
      $(`tab-${next}`).focus();
    });
  });
}

async function start() {
  wire();
  await guarded(async () => {
    state.meta = await api('/v1/meta');
    state.meta.genres = (state.meta.genres || []).slice().sort((a, b) => a.localeCompare(b));
    state.meta.genres.forEach((g, i) => state.genreColor.set(g, PALETTE[i % PALETTE.length]));
    state.mapColor = mapColours();
    $('model-info').textContent = `${state.meta.items} items · ${state.meta.users} users · ${state.meta.dim}-d vectors`;
    await restoreProfile();
    renderGenrePicker();
    renderProfileColumns();
    renderProfileRatings();
  });
  if (!state.meta) return;
  await Promise.all([guarded(loadUsers), guarded(loadMap)]);
  await route();
  window.addEventListener('hashchange', route);
  document.body.dataset.ready = 'true';
}

start();
