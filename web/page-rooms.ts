/** The rooms of the demo page: what each holds, and how the list, the title and the messages render. */
import { type Access, type ChatMessage, type RealtimeClient, roomKind } from './client.ts';
import { activity, clock, el, notice, ui } from './page-ui.ts';

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

const HISTORY = 30;
const MAX_ENTRIES = 500;

export const rooms = new Map<string, Room>();
/** The room on screen. */
export let current: string | undefined;
let client: RealtimeClient;

/** The client whose rooms these are. */
export function useClient(c: RealtimeClient): void {
  client = c;
}

export function room(name: string): Room {
  let r = rooms.get(name);
  if (!r) {
    r = { entries: [], members: new Set(), unread: 0 };
    rooms.set(name, r);
  }
  return r;
}

export function add(name: string, entry: Entry): void {
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
export function roomLabel(name: string): string {
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

export function renderMembers(): void {
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

export function show(name: string | undefined): void {
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
export async function join(name: string, how: 'join' | 'dm' = 'join'): Promise<void> {
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

/** What the client says about rooms, onto the page. */
export function wireRooms(c: RealtimeClient): void {
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
}

/** The controls of the rooms: join, direct message, leave, and the composer; `fail` shows what went wrong. */
export function bindRoomControls(c: RealtimeClient, fail: (err: unknown) => void): void {
  ui.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = ui.roomName.value.trim().replace(/^#/, '');
    if (!name) return;
    if (rooms.has(name) && c.rooms.includes(name)) {
      show(name);
      ui.roomName.value = '';
      return;
    }
    join(name).then(() => {
      ui.roomName.value = '';
    }, fail);
  });
  ui.dmForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = ui.dmName.value.trim().replace(/^@/, '').toLowerCase();
    if (!name) return;
    join(name, 'dm').then(() => {
      ui.dmName.value = '';
    }, fail);
  });
  ui.leave.addEventListener('click', () => {
    const name = current;
    if (!name) return;
    // A room the server took the user out of is only forgotten here.
    (rooms.get(name)?.removed ? Promise.resolve() : c.leave(name)).then(() => {
      rooms.delete(name);
      show(rooms.keys().next().value);
    }, fail);
  });
  ui.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ui.text.value;
    if (!current || text.trim() === '') return;
    c.send(current, text).then(() => {
      if (ui.text.value === text) ui.text.value = '';
    }, fail);
  });
}
