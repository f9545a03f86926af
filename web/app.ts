/**
 * The demo page: log in, join rooms, chat, and watch the client do its work (the token's
 * countdown and refreshes, reconnects, the server's refusals in plain words). It learns the
 * API URLs from `config.json` next to it.
 */
import { RealtimeClient, RealtimeError, type SessionEndReason } from './client.ts';
import { bindRoomControls, join, rooms, show, useClient, wireRooms } from './page-rooms.ts';
import { activity, clearNotice, clockS, el, notice, ui } from './page-ui.ts';
import { plainWords } from './words.ts';

interface PageConfig {
  httpUrl: string;
  wsUrl: string;
  /** Whether the server's origin allowlist holds this page's origin (the local system tells). */
  originAllowed?: boolean;
}

const DEFAULT_ROOM = 'lobby';

let client: RealtimeClient;
let refreshCount = 0;
let originRefused = false;

/** What a browser cannot read from a refused handshake (it sees a bare close), said up front. */
const originMessage = () =>
  `This page's origin (${location.origin}) is not allowed to open a socket. ` +
  `Start the server with ALLOWED_ORIGINS=${location.origin}, or leave ALLOWED_ORIGINS unset so it follows PORT.`;

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
  useClient(client);
  wireRooms(client);
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
  bindRoomControls(client, (err) => notice(words(err)));
  setSignedIn(false);
  ui.authError.hidden = true;
  if (originRefused) showAuthMessage(originMessage());
  ui.username.focus();
}

main().catch((err: unknown) => {
  document.body.prepend(el('p', 'error fatal', `The page could not start: ${(err as Error).message}`));
});
