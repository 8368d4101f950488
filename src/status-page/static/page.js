// Mailroom status page. No secret is in this page: the admin token comes from the URL fragment
// (`/#token=...`, which browsers never send to the server) or the login form, lives in
// sessionStorage, and goes out only in an Authorization header, to trade for a one-time
// ticket that opens the event stream (EventSource cannot send headers).
(() => {
  'use strict';
  const TOKEN_KEY = 'mailroom.adminToken';
  const TRAIL_LENGTH = 8;
  const $ = (selector, root = document) => root.querySelector(selector);
  const cards = new Map(); // accountId -> { el, view }
  const trails = new Map(); // accountId -> the last few states it went through
  let linked = null; // how many accounts are linked in all (the server shows at most a few hundred)
  let source = null;
  let reconnectTimer = null;
  let reconnectDelay = 1000;
  let session = 0;

  function takeTokenFromFragment() {
    if (location.hash.length <= 1) return;
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get('token');
    if (token === null) return;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    params.delete('token');
    const rest = params.toString();
    // Out of the address bar and the history entry too.
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }

  function setConn(state) {
    const el = $('#conn');
    el.dataset.conn = state;
    el.textContent = state;
  }

  function showLogin(message) {
    disconnect();
    $('#accounts').hidden = true;
    $('#logout').hidden = true;
    $('#login').hidden = false;
    const error = $('#login-error');
    error.textContent = message || '';
    error.hidden = !message;
    setConn('signed out');
    $('#token').focus();
  }

  function showAccounts() {
    $('#login').hidden = true;
    $('#accounts').hidden = false;
    $('#logout').hidden = false;
  }

  function disconnect() {
    session++;
    if (source) source.close();
    source = null;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
  }

  function scheduleReconnect() {
    setConn('reconnecting');
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 15000);
  }

  async function connect() {
    disconnect();
    const mine = session;
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showLogin();
    showAccounts();
    setConn('connecting');
    let ticket;
    try {
      const response = await fetch('events/ticket', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
      if (mine !== session) return;
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin('That token was refused.');
      }
      if (!response.ok) return scheduleReconnect();
      ticket = (await response.json()).ticket;
    } catch {
      if (mine === session) scheduleReconnect();
      return;
    }
    if (mine !== session) return;
    const stream = new EventSource('events?ticket=' + encodeURIComponent(ticket));
    source = stream;
    stream.addEventListener('open', () => {
      reconnectDelay = 1000;
      setConn('live');
    });
    stream.addEventListener('snapshot', (e) => onSnapshot(JSON.parse(e.data)));
    stream.addEventListener('account', (e) => render(JSON.parse(e.data).account));
    stream.addEventListener('transition', (e) => onTransition(JSON.parse(e.data)));
    stream.addEventListener('removed', (e) => remove(JSON.parse(e.data).accountId));
    stream.addEventListener('linked', (e) => {
      linked = JSON.parse(e.data).linked;
      updateEmpty();
    });
    // A ticket opens one stream: EventSource's own retry would be refused, so reconnect with a new one.
    stream.addEventListener('error', () => {
      if (source !== stream) return;
      stream.close();
      source = null;
      scheduleReconnect();
    });
  }

  function onSnapshot(message) {
    linked = message.linked;
    const ids = new Set(message.accounts.map((a) => a.accountId));
    for (const id of [...cards.keys()]) if (!ids.has(id)) remove(id);
    for (const account of message.accounts) render(account);
    updateEmpty();
  }

  // Transitions may arrive before the account's first view (a link starts a run at once).
  function onTransition(message) {
    let trail = trails.get(message.accountId);
    if (!trail) trails.set(message.accountId, (trail = [message.from]));
    trail.push(message.to);
    while (trail.length > TRAIL_LENGTH) trail.shift();
    const card = cards.get(message.accountId);
    if (card) $('.trail', card.el).textContent = trail.join(' → ');
  }

  function remove(accountId) {
    const card = cards.get(accountId);
    if (card) card.el.remove();
    cards.delete(accountId);
    trails.delete(accountId);
    updateEmpty();
  }

  function updateEmpty() {
    $('#empty').hidden = cards.size > 0;
    updateCoverage();
  }

  // The server shows a bounded number of accounts (those active most recently first): say so,
  // and where the others are.
  function updateCoverage() {
    const el = $('#coverage');
    const shown = cards.size;
    el.hidden = linked === null || shown >= linked;
    if (el.hidden) return;
    const code = (text) => {
      const c = document.createElement('code');
      c.textContent = text;
      return c;
    };
    el.replaceChildren(
      'Showing ' + shown + ' of ' + linked + ' linked accounts (the most recently active first). For the others: ',
      code('mailroom status --state <state>'),
      ' or ',
      code('GET /accounts?state=<state>'),
      '.',
    );
  }

  function cardFor(accountId) {
    let card = cards.get(accountId);
    if (card) return card;
    const el = $('#account-template').content.firstElementChild.cloneNode(true);
    el.dataset.account = accountId;
    $('.account-id', el).textContent = accountId;
    $('.diagram-holder', el).append($('#diagram-template').content.cloneNode(true));
    card = { el, view: null };
    cards.set(accountId, card);
    const list = $('#accounts');
    const after = [...cards.keys()].sort().find((id) => id > accountId);
    list.insertBefore(el, after ? cards.get(after).el : null);
    updateEmpty();
    return card;
  }

  function render(view) {
    const card = cardFor(view.accountId);
    card.view = view;
    const el = card.el;
    el.dataset.state = view.state;
    $('.state-badge', el).textContent = view.state;
    for (const node of el.querySelectorAll('svg .state')) node.classList.toggle('current', node.dataset.state === view.state);
    $('.dirty', el).hidden = !view.dirty;
    const progress = view.progress;
    const bar = $('progress', el);
    bar.max = progress && progress.total ? progress.total : 1;
    bar.value = progress ? (progress.total ? Math.min(progress.done, progress.total) : progress.finishedAt ? 1 : 0) : 0;
    $('.progress-label', el).textContent = !progress ? 'Run' : progress.finishedAt ? 'Last run' : 'Current run';
    $('.progress-text', el).textContent = view.progressText;
    $('.pending', el).textContent = view.pending + (view.pending === 1 ? ' file' : ' files') + ' to download';
    renderTimes(card);
    const error = $('.last-error', el);
    error.textContent = view.lastError ? view.lastError.kind + ': ' + view.lastError.message + ' (' + ago(view.lastError.at) + ')' : 'none';
    error.classList.toggle('has-error', Boolean(view.lastError));
    const trail = trails.get(view.accountId);
    $('.trail', el).textContent = trail ? trail.join(' → ') : view.state;
  }

  function renderTimes(card) {
    const view = card.view;
    const el = $('.last-sync', card.el);
    el.textContent = view.lastSyncedAt ? ago(view.lastSyncedAt) : 'never';
    el.title = view.lastSyncedAt || '';
  }

  function ago(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    const time = new Date(iso).toLocaleTimeString();
    if (seconds < 60) return time + ' (' + seconds + ' s ago)';
    if (seconds < 3600) return time + ' (' + Math.round(seconds / 60) + ' min ago)';
    return new Date(iso).toLocaleString();
  }

  $('#login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('#token');
    const token = input.value.trim();
    input.value = '';
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    connect();
  });
  $('#logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    for (const id of [...cards.keys()]) remove(id);
    linked = null;
    updateCoverage();
    showLogin();
  });
  window.addEventListener('hashchange', () => {
    if (new URLSearchParams(location.hash.slice(1)).has('token')) {
      takeTokenFromFragment();
      connect();
    }
  });
  setInterval(() => cards.forEach((card) => card.view && renderTimes(card)), 5000);

  takeTokenFromFragment();
  connect();
})();
