/**
 * The demo page: log in, join rooms, chat, and watch the client do its work (the token's
 * countdown and refreshes, reconnects, the server's refusals in plain words). It learns the
 * API URLs from `config.json` next to it.
 */
import {
  type Access,
  type ChatMessage,
  RealtimeClient,
  RealtimeError,
  roomKind,
  type SessionEndReason,
} from './client.ts';
import { plainWords } from './words.ts';

interface PageConfig {
  httpUrl: string;
  wsUrl: string;
  /** Whether the server's origin allowlist holds this page's origin (the local system tells). */
  originAllowed?: boolean;
}

type Entry = { kind: 'message'; message: ChatMessage } | { kind: 'system'; text: string; ts: number };

interface Room {
  entries: Entry[];
  members: Set<string>;
  unread: number;
  /** In a `private:` room, what the grant allows. */
  access?: Access;
  /** Out of the room for good (its grant was deleted): kept to read, no longer joined. */
  removed?: boolean;
}

const DEFAULT_ROOM = 'lobby';
const HISTORY = 30;
const MAX_ENTRIES = 500;

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

const ui = {
  status: $('status'),
  session: $('session'),
  who: $('who'),
  token: $('token'),
  tokenLeft: $('token-left'),
  refreshes: $('refreshes'),
  refreshNow: $<HTMLButtonElement>('refresh-now'),
  retryNow: $<HTMLButtonElement>('retry-now'),
  logout: $<HTMLButtonElement>('logout'),
  authView: $('auth-view'),
  authForm: $<HTMLFormElement>('auth-form'),
  username: $<HTMLInputElement>('username'),
  password: $<HTMLInputElement>('password'),
  register: $<HTMLButtonElement>('register'),
  authError: $('auth-error'),
  chatView: $('chat-view'),
  joinForm: $<HTMLFormElement>('join-form'),
  roomName: $<HTMLInputElement>('room-name'),
  dmForm: $<HTMLFormElement>('dm-form'),
  dmName: $<HTMLInputElement>('dm-name'),
  roomList: $('room-list'),
  roomTitle: $('room-title'),
  members: $('members'),
  leave: $<HTMLButtonElement>('leave'),
  messages: $('messages'),
  composer: $<HTMLFormElement>('composer'),
  text: $<HTMLInputElement>('text'),
  notice: $('notice'),
  log: $('log'),
};

const rooms = new Map<string, Room>();
let current: string | undefined;
let client: RealtimeClient;
let refreshCount = 0;
let noticeTimer: ReturnType<typeof setTimeout> | undefined;
let originRefused = false;

/** What a browser cannot read from a refused handshake (it sees a bare close), said up front. */
const originMessage = () =>
  `This page's origin (${location.origin}) is not allowed to open a socket. ` +
  `Start the server with ALLOWED_ORIGINS=${location.origin}, or leave ALLOWED_ORIGINS unset so it follows PORT.`;

const clock = (ts: number) => new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
const clockS = (ts: number) =>
  new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const ENDED: Record<Exclude<SessionEndReason, 'blocked'>, string> = {
  logout: 'You are logged out.',
  token_revoked: 'Your session was ended (logged out elsewhere or revoked). Log in again.',
  refresh_failed: 'Your session has expired. Log in again.',
};

/**
 * One message for a blocked account, wherever it shows up (a refused login, a socket the
 * server closes): the reason and the end, when the server said them
 * (`this user is blocked until <ISO>: <reason>`).
 */
function blockedText(serverMessage?: string): string {
  const m = /blocked until (\S+?Z)(?:: (.+))?$/.exec(serverMessage ?? '');
  const until = m?.[1] ? new Date(m[1]) : undefined;
  const when =
    until && !Number.isNaN(until.getTime())
      ? ` until ${until.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })}`
      : '';
  const why = m?.[2] ? ` Reason: ${m[2]}.` : '';
  return `This account is blocked${when}.${why}`;
}

/** Words for an error; a blocked account always reads the same. */
function words(err: unknown): string {
  if (err instanceof RealtimeError && err.code === 'forbidden' && /blocked/.test(err.message))
    return blockedText(err.message);
  return plainWords(err);
}

let blockedDetail: Promise<string | undefined> | undefined;

function clearNotice(): void {
  clearTimeout(noticeTimer);
  ui.notice.hidden = true;
}

function notice(text: string, kind: 'error' | 'info' = 'error'): void {
  ui.notice.textContent = text;
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    ui.notice.hidden = true;
  }, 8000);
}

function activity(text: string): void {
  const item = el('li', undefined, `${clockS(Date.now())}  ${text}`);
  ui.log.prepend(item);
  while (ui.log.children.length > 100) ui.log.lastElementChild?.remove();
}

// --- rooms and messages ---

function room(name: string): Room {
  let r = rooms.get(name);
  if (!r) {
    r = { entries: [], members: new Set(), unread: 0 };
    rooms.set(name, r);
  }
  return r;
}

function add(name: string, entry: Entry): void {
  const r = room(name);
  r.entries.push(entry);
  if (r.entries.length > MAX_ENTRIES) r.entries.shift();
  if (name === current) ui.messages.querySelector('.hint-empty')?.remove();
  if (name === current) ui.messages.append(renderEntry(entry));
  else if (entry.kind === 'message') r.unread++;
  if (name === current) scrollToEnd();
  renderRoomList();
}

function renderEntry(entry: Entry): HTMLLIElement {
  if (entry.kind === 'system') return el('li', 'system', entry.text);
  const m = entry.message;
  const item = el('li', m.from === client.username ? 'msg mine' : 'msg');
  const head = el('div', 'meta');
  head.append(el('span', 'from', m.from));
  const time = el('time', undefined, clock(m.ts));
  time.dateTime = new Date(m.ts).toISOString();
  head.append(time);
  if (m.text !== undefined) item.append(head, el('p', 'text', m.text));
  else item.append(head);
  if (m.data !== undefined) item.append(el('pre', 'data', JSON.stringify(m.data, null, 2)));
  return item;
}

/** How a room shows in the list and its title: `@bob` for a direct message, its kind after a private or broadcast room. */
function roomLabel(name: string): string {
  switch (roomKind(name)) {
    case 'dm': {
      const other = name
        .slice(3)
        .split('+')
        .find((u) => u !== client.username);
      return `@${other ?? client.username}`;
    }
    case 'private':
      return `#${name.slice('private:'.length)} · private`;
    case 'broadcast':
      return `#${name.slice('broadcast:'.length)} · broadcast`;
    case 'user':
      return `@${name.slice('user:'.length)} · you`;
    default:
      return `#${name}`;
  }
}

/** Why the composer of a room is read-only, or undefined when the user may post in it. */
function readOnlyReason(name: string, r: Room | undefined): string | undefined {
  if (r?.removed) return 'You were removed from this room';
  if (roomKind(name) === 'broadcast' && !client.roles.some((x) => x === 'admin' || x === 'publisher'))
    return 'Read-only: only publishers post here';
  if (r?.access === 'reader') return 'Read-only: your access to this room is reader';
  return undefined;
}

function scrollToEnd(): void {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function renderRoomList(): void {
  ui.roomList.replaceChildren(
    ...[...rooms].map(([name, r]) => {
      const item = el('li');
      const button = el('button', name === current ? 'room-chip active' : 'room-chip', roomLabel(name));
      button.dataset.kind = roomKind(name);
      button.type = 'button';
      button.setAttribute('aria-current', String(name === current));
      if (r.unread > 0) button.append(el('span', 'badge', String(r.unread)));
      button.addEventListener('click', () => show(name));
      item.append(button);
      return item;
    }),
  );
}

function renderMembers(): void {
  const r = current ? rooms.get(current) : undefined;
  const names = r ? [...r.members].sort() : [];
  ui.members.textContent = names.length > 0 ? `${names.length} here: ${names.join(', ')}` : '';
}

/** What an empty room says, so a first visitor knows how to see messages arrive. */
function emptyRoomHint(name: string): HTMLLIElement {
  if (roomKind(name) === 'dm') {
    const other = roomLabel(name).slice(1);
    return el(
      'li',
      'system hint-empty',
      `Only you and ${other} can read this room. ${other} sees your messages once they open a message to you too.`,
    );
  }
  return el(
    'li',
    'system hint-empty',
    'Nobody else is here yet. Open this page in a second window (a private one keeps the sessions apart), create another user there and join this room to chat.',
  );
}

function show(name: string | undefined): void {
  current = name;
  const r = name ? rooms.get(name) : undefined;
  if (r) r.unread = 0;
  ui.roomTitle.textContent = name ? roomLabel(name) : 'No room';
  ui.leave.hidden = !name;
  const readOnly = name ? readOnlyReason(name, r) : undefined;
  ui.text.disabled = !name || readOnly !== undefined;
  ui.text.placeholder = readOnly ?? 'Write a message…';
  const alone = r !== undefined && r.entries.length === 0 && r.members.size <= 1;
  ui.messages.replaceChildren(
    ...(alone && name ? [emptyRoomHint(name)] : (r?.entries.map(renderEntry) ?? [])),
  );
  renderMembers();
  renderRoomList();
  scrollToEnd();
}

/**
 * Joins a room with one frame: `joined` carries the history and the members, so nothing
 * else is asked (every frame counts against the rate limit, 10 a minute by default).
 */
async function join(name: string, how: 'join' | 'dm' = 'join'): Promise<void> {
  const joined =
    how === 'dm'
      ? await client.dm(name, { history: HISTORY })
      : await client.join(name, { history: HISTORY });
  name = joined.room;
  const r = room(name);
  r.removed = false;
  if (joined.access) r.access = joined.access;
  const known = new Set(r.entries.flatMap((e) => (e.kind === 'message' ? [e.message.messageId] : [])));
  for (const m of joined.history)
    if (!known.has(m.messageId)) r.entries.push({ kind: 'message', message: m });
  r.members = new Set([client.username, ...(joined.members ?? [])]);
  show(name);
}

// --- session ---

function setSignedIn(signedIn: boolean): void {
  ui.authView.hidden = signedIn;
  ui.chatView.hidden = !signedIn;
  ui.session.hidden = !signedIn;
  if (!signedIn) {
    clearNotice();
    stopCountdown();
    rooms.clear();
    show(undefined);
    refreshCount = 0;
    ui.refreshes.textContent = '';
  }
}

function tick(): void {
  const left = client.expiresAt - Date.now();
  if (client.expiresAt === 0) {
    ui.tokenLeft.textContent = '–';
    return;
  }
  const s = Math.max(0, Math.round(left / 1000));
  ui.tokenLeft.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  ui.token.classList.toggle('low', s < 60);
}

let countdown: ReturnType<typeof setInterval> | undefined;

/** "reconnecting in 4 s…", counting down each second until the next attempt, with "retry now". */
function startCountdown(at: number): void {
  stopCountdown();
  const render = () => {
    ui.status.textContent = `reconnecting in ${Math.max(0, Math.ceil((at - Date.now()) / 1000))} s…`;
  };
  render();
  countdown = setInterval(render, 250);
  ui.retryNow.hidden = false;
}

function stopCountdown(): void {
  clearInterval(countdown);
  countdown = undefined;
  ui.retryNow.hidden = true;
}

const STATUS: Record<string, string> = {
  idle: 'offline',
  connecting: 'connecting…',
  open: 'live',
  reconnecting: 'reconnecting…',
  closed: 'offline',
};

function wire(c: RealtimeClient): void {
  c.on('state', ({ state }) => {
    if (state !== 'reconnecting') stopCountdown();
    ui.status.dataset.state = state;
    ui.status.textContent = STATUS[state] ?? state;
  });
  c.on('message', (m) => add(m.room, { kind: 'message', message: m }));
  c.on('member_joined', ({ room: name, username }) => {
    room(name).members.add(username);
    add(name, { kind: 'system', text: `${username} joined`, ts: Date.now() });
    if (name === current) renderMembers();
  });
  c.on('member_left', ({ room: name, username }) => {
    room(name).members.delete(username);
    add(name, { kind: 'system', text: `${username} left`, ts: Date.now() });
    if (name === current) renderMembers();
  });
  c.on('removed', ({ room: name }) => {
    room(name).removed = true;
    room(name).members.clear();
    add(name, {
      kind: 'system',
      text: 'Your access to this room was revoked: you are no longer in it',
      ts: Date.now(),
    });
    if (name === current) show(name);
  });
  c.on('access_changed', ({ room: name, access }) => {
    room(name).access = access;
    add(name, { kind: 'system', text: `Your access to this room is now ${access}`, ts: Date.now() });
    if (name === current) show(name);
  });
  c.on('error', (err) => notice(words(err)));
  c.on('token', ({ expiresAt, refreshed }) => {
    tick();
    if (!refreshed) return;
    refreshCount++;
    ui.refreshes.textContent = `· refreshed ${refreshCount}×`;
    ui.token.classList.remove('flash');
    void ui.token.offsetWidth; // restart the animation
    ui.token.classList.add('flash');
    activity(`Token refreshed over HTTP; valid until ${clockS(expiresAt)}`);
  });
  c.on('token_refreshed', ({ exp }) =>
    activity(`The socket took the new token (server expiry ${clockS(exp * 1000)})`),
  );
  c.on('reconnecting', ({ attempt, delayMs }) => {
    startCountdown(Date.now() + delayMs);
    activity(`Connection lost; reconnect attempt ${attempt} in ${(delayMs / 1000).toFixed(1)} s`);
  });
  c.on('rejoined', ({ room: name, recovered, restored }) => {
    if (!recovered || restored === 0) return;
    const text = `${restored} missed message${restored === 1 ? '' : 's'} restored`;
    add(name, { kind: 'system', text, ts: Date.now() });
    activity(`#${name}: ${text}`);
    notice(`${text} in #${name}.`, 'info');
  });
  c.on('reset', ({ room: name }) =>
    add(name, {
      kind: 'system',
      text: 'Messages from while you were away may be missing: the room no longer holds them all',
      ts: Date.now(),
    }),
  );
  c.on('connected', ({ reconnected }) => {
    activity(reconnected ? `Reconnected; rejoined ${c.rooms.length} room(s)` : 'Connected');
    if (reconnected) notice('Reconnected.', 'info');
  });
  c.on('closing', ({ reason }) => {
    activity(`The server is closing the socket: ${reason.replace('_', ' ')}`);
    // The closing frame says only "blocked"; the HTTP API, asked with the token still in
    // hand, says until when and why.
    const token = c.accessToken;
    if (reason === 'blocked' && token)
      blockedDetail = c.http.me(token).then(
        () => undefined,
        (err: unknown) => (err instanceof Error ? err.message : undefined),
      );
  });
  c.on('session_ended', ({ reason }) => {
    activity(`Session ended: ${reason.replace('_', ' ')}`);
    setSignedIn(false);
    if (reason !== 'blocked') {
      showAuthMessage(ENDED[reason], reason === 'logout' ? 'info' : 'error');
      return;
    }
    showAuthMessage(blockedText());
    void blockedDetail?.then((detail) => {
      if (!ui.authView.hidden) showAuthMessage(blockedText(detail));
    });
  });
}

function showAuthMessage(text: string, kind: 'error' | 'info' = 'error'): void {
  ui.authError.textContent = text;
  ui.authError.dataset.kind = kind;
  ui.authError.hidden = false;
}

async function signIn(register: boolean): Promise<void> {
  const username = ui.username.value.trim().toLowerCase();
  const password = ui.password.value;
  ui.authError.hidden = true;
  if (!username || !password) {
    showAuthMessage('Enter a username and a password.');
    return;
  }
  const buttons = Array.from(ui.authForm.querySelectorAll('button'));
  for (const b of buttons) b.disabled = true;
  try {
    if (register) await client.register(username, password);
    await client.login(username, password);
    ui.password.value = '';
    ui.who.textContent = client.username;
    setSignedIn(true);
    activity(`Logged in as ${client.username}`);
    if (originRefused) {
      notice(originMessage());
      return;
    }
    await client.connect();
    await join(DEFAULT_ROOM);
    ui.text.focus();
  } catch (err) {
    if (client.accessToken) notice(words(err));
    else showAuthMessage(words(err));
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

async function main(): Promise<void> {
  const config = (await (await fetch('config.json')).json()) as PageConfig;
  client = new RealtimeClient({ httpUrl: config.httpUrl, wsUrl: config.wsUrl });
  originRefused = config.originAllowed === false;
  wire(client);
  setInterval(tick, 1000);

  ui.authForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void signIn(false);
  });
  ui.register.addEventListener('click', () => void signIn(true));
  ui.logout.addEventListener('click', () => {
    client.logout().catch(() => {
      // Already signed out here; the server forgets the session when the token expires.
    });
  });
  ui.retryNow.addEventListener('click', () => client.reconnectNow());
  ui.refreshNow.addEventListener('click', () => {
    client.refresh().catch((err: unknown) => notice(words(err)));
  });
  ui.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = ui.roomName.value.trim().replace(/^#/, '');
    if (!name) return;
    if (rooms.has(name) && client.rooms.includes(name)) {
      show(name);
      ui.roomName.value = '';
      return;
    }
    join(name).then(
      () => {
        ui.roomName.value = '';
      },
      (err: unknown) => notice(words(err)),
    );
  });
  ui.dmForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = ui.dmName.value.trim().replace(/^@/, '').toLowerCase();
    if (!name) return;
    join(name, 'dm').then(
      () => {
        ui.dmName.value = '';
      },
      (err: unknown) => notice(words(err)),
    );
  });
  ui.leave.addEventListener('click', () => {
    const name = current;
    if (!name) return;
    // A room the server took the user out of is only forgotten here.
    (rooms.get(name)?.removed ? Promise.resolve() : client.leave(name)).then(
      () => {
        rooms.delete(name);
        show(rooms.keys().next().value);
      },
      (err: unknown) => notice(words(err)),
    );
  });
  ui.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ui.text.value;
    if (!current || text.trim() === '') return;
    client.send(current, text).then(
      () => {
        if (ui.text.value === text) ui.text.value = '';
      },
      (err: unknown) => notice(words(err)),
    );
  });
  setSignedIn(false);
  ui.authError.hidden = true;
  if (originRefused) showAuthMessage(originMessage());
  ui.username.focus();
}

main().catch((err: unknown) => {
  document.body.prepend(el('p', 'error fatal', `The page could not start: ${(err as Error).message}`));
});
