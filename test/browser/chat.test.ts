import { mkdir } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockUser, publishToRoom } from '../../lambdas/core/admin.ts';
import { deleteGrant, putGrant } from '../../lambdas/core/grants.ts';
import { socketsOfUser } from '../../lambdas/core/socket-rows.ts';
import type { AccessClaims } from '../../lambdas/core/tokens.ts';
import { PASSWORD, type TestSystem } from '../kit/system.ts';
import { clientFor, closeClients, loggedIn, nodeSocket } from '../kit/web-client.ts';
import {
  containsText,
  hasCount,
  hasText,
  isVisible,
  launchChromium,
  startPageSystem,
  watchProblems,
} from './support.ts';

const ARTIFACTS = 'test-artifacts';
/** Few enough frames per user that the rate-limit test reaches the limit quickly. */
const RATE_LIMIT_MAX = 6;

let system: TestSystem;
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  [system, browser] = await Promise.all([
    startPageSystem({ RATE_LIMIT_MAX: String(RATE_LIMIT_MAX) }),
    launchChromium(),
    mkdir(ARTIFACTS, { recursive: true }),
  ]).then(([s, b]) => [s, b] as const);
});

afterAll(async () => {
  closeClients();
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await system?.close();
});

async function openPage(
  viewport = { width: 1100, height: 720 },
): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  const page = await context.newPage();
  const problems = watchProblems(page);
  await page.goto(`${system.httpUrl}/`);
  return { page, problems };
}

/** Creates an account on the page; resolves once the socket is live and the lobby joined. */
async function signUp(page: Page, username: string): Promise<void> {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await hasText(page.locator('#status'), 'live');
  await hasText(page.locator('#room-title'), '#lobby');
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByLabel('Message').fill(text);
  await page.getByLabel('Message').press('Enter');
}

const message = (page: Page, from: string, text: string) =>
  page
    .locator('#messages li.msg')
    .filter({ has: page.locator('.from', { hasText: from }) })
    .filter({ hasText: text });

describe('the demo page in Chromium', () => {
  it('serves the page with a strict CSP and the socket URL in config.json', async () => {
    const res = await fetch(`${system.httpUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const config = (await (await fetch(`${system.httpUrl}/config.json`)).json()) as { wsUrl: string };
    expect(config.wsUrl).toBe(system.wsUrl);
    expect((await fetch(`${system.httpUrl}/../package.json`)).status).toBe(404);
    expect((await fetch(`${system.httpUrl}/build.ts`)).status).toBe(404);
  });

  it('explains a failed sign-in in plain words', async () => {
    const { page, problems } = await openPage();
    await page.getByLabel('Username').fill('frank');
    await page.getByLabel('Password', { exact: true }).fill('short');
    await page.getByRole('button', { name: 'Create account' }).click();
    await containsText(page.locator('#auth-error'), 'The server did not accept that');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await hasText(page.locator('#auth-error'), 'Wrong username or password.');
    expect(problems).toEqual([]);
  });

  it('two users in two browsers: a message from one appears for the other, with its sender', async () => {
    const alice = await openPage();
    const bob = await openPage({ width: 390, height: 760 });
    await signUp(alice.page, 'alice');
    await signUp(bob.page, 'bob');
    await isVisible(alice.page.locator('#messages li.system', { hasText: 'bob joined' }));
    await containsText(alice.page.locator('#members'), 'alice, bob');

    await say(alice.page, 'Hello Bob, this came over the WebSocket.');
    await isVisible(message(bob.page, 'alice', 'Hello Bob, this came over the WebSocket.'));
    await say(bob.page, 'Hi Alice! Loud and clear.');
    await isVisible(message(alice.page, 'bob', 'Hi Alice! Loud and clear.'));
    await hasCount(alice.page.locator('#messages li.msg.mine'), 1);

    // The token's countdown runs, and a refresh shows and keeps the socket working.
    await hasText(alice.page.locator('#token-left'), /^1[45]:\d\d$/);
    await alice.page.getByRole('button', { name: 'Refresh' }).click();
    await hasText(alice.page.locator('#refreshes'), '· refreshed 1×');
    await containsText(alice.page.locator('#log'), 'The socket took the new token');
    await say(alice.page, 'Still here after a token refresh.');
    await isVisible(message(bob.page, 'alice', 'Still here after a token refresh.'));

    await alice.page.locator('#activity summary').click();
    await alice.page.screenshot({ path: `${ARTIFACTS}/chat-desktop.png` });
    await bob.page.screenshot({ path: `${ARTIFACTS}/chat-phone.png` });
    expect([...alice.problems, ...bob.problems]).toEqual([]);

    await bob.page.getByRole('button', { name: 'Log out' }).click();
    await hasText(bob.page.locator('#auth-error'), 'You are logged out.');
    await isVisible(alice.page.locator('#messages li.system', { hasText: 'bob left' }));
  });

  it("spends one frame on a join, so the rest of the limit is the user's, then says it in plain words", async () => {
    const { page, problems } = await openPage();
    await signUp(page, 'carol'); // the join of the lobby: 1 frame of RATE_LIMIT_MAX
    for (let i = 1; i <= RATE_LIMIT_MAX - 1; i++) {
      await say(page, `message ${i}`);
      await isVisible(message(page, 'carol', `message ${i}`));
    }
    expect(await page.locator('#notice').isHidden()).toBe(true);
    await say(page, 'one too many');
    await containsText(page.locator('#notice'), 'You are sending too fast');
    await containsText(page.locator('#notice'), /Try again in \d+ s/);
    await hasText(page.locator('#status'), 'live');
    await page.screenshot({ path: `${ARTIFACTS}/rate-limited.png` });
    expect(problems).toEqual([]);
  });

  it('suggests a second window in an empty room, and clears its notice on logout', async () => {
    const { page, problems } = await openPage();
    await signUp(page, 'ida');
    await page.getByPlaceholder('Join a room…').fill('quiet-corner');
    await page.getByPlaceholder('Join a room…').press('Enter');
    await hasText(page.locator('#room-title'), '#quiet-corner');
    await containsText(page.locator('#messages'), 'Open this page in a second window');
    await page.getByPlaceholder('Join a room…').fill('not a room!');
    await page.getByPlaceholder('Join a room…').press('Enter');
    await isVisible(page.locator('#notice'));
    await page.getByRole('button', { name: 'Log out' }).click();
    await hasText(page.locator('#auth-error'), 'You are logged out.');
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(problems).toEqual([]);
  });

  it('direct messages, a read-only broadcast room and a private room whose grant is revoked', async () => {
    const ivy = await openPage();
    const jack = await openPage();
    await signUp(ivy.page, 'ivy');
    await signUp(jack.page, 'jack');
    await ivy.page.getByPlaceholder('Chat with…').fill('jack');
    await ivy.page.getByPlaceholder('Chat with…').press('Enter');
    await hasText(ivy.page.locator('#room-title'), '@jack');
    await jack.page.getByPlaceholder('Chat with…').fill('@Ivy');
    await jack.page.getByPlaceholder('Chat with…').press('Enter');
    await hasText(jack.page.locator('#room-title'), '@ivy');
    await say(ivy.page, 'Just between us.');
    await isVisible(message(jack.page, 'ivy', 'Just between us.'));

    await jack.page.getByPlaceholder('Join a room…').fill('broadcast:news');
    await jack.page.getByPlaceholder('Join a room…').press('Enter');
    await hasText(jack.page.locator('#room-title'), '#news · broadcast');
    expect(await jack.page.getByLabel('Message').isDisabled()).toBe(true);
    expect(await jack.page.getByLabel('Message').getAttribute('placeholder')).toBe(
      'Read-only: only publishers post here',
    );
    const herald = { username: 'herald', roles: ['publisher'] } as unknown as AccessClaims;
    await publishToRoom(system.deps, herald, 'broadcast:news', { text: 'Extra!', data: { edition: 2 } });
    await isVisible(message(jack.page, 'herald', 'Extra!'));
    await containsText(jack.page.locator('#messages pre.data'), '"edition": 2');

    await putGrant(system.deps, herald, 'private:ops', 'jack', { access: 'member' });
    await jack.page.getByPlaceholder('Join a room…').fill('private:ops');
    await jack.page.getByPlaceholder('Join a room…').press('Enter');
    await hasText(jack.page.locator('#room-title'), '#ops · private');
    await isVisible(jack.page.locator('.room-chip[data-kind="private"]'));
    expect(await jack.page.getByLabel('Message').isDisabled()).toBe(false);
    await deleteGrant(system.deps, herald, 'private:ops', 'jack');
    await containsText(jack.page.locator('#messages'), 'Your access to this room was revoked');
    expect(await jack.page.getByLabel('Message').isDisabled()).toBe(true);
    await jack.page.screenshot({ path: `${ARTIFACTS}/rooms.png` });
    expect([...ivy.problems, ...jack.problems]).toEqual([]);
  });

  it('tells a blocked user until when and why, the same way on the socket and at login', async () => {
    const { page, problems } = await openPage();
    await signUp(page, 'hank');
    await blockUser(system.deps, { username: 'admin' }, 'hank', { duration_s: 3600, reason: 'spam' });
    const expected = /^This account is blocked until .+\. Reason: spam\.$/;
    await hasText(page.locator('#auth-error'), expected);
    await page.getByLabel('Username').fill('hank');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await hasText(page.locator('#auth-error'), expected);
    expect(problems).toEqual([]);
  });

  it("says when the page's own origin is not allowed, before anyone logs in", async () => {
    const other = await startPageSystem({ ALLOWED_ORIGINS: 'http://localhost:5173' });
    try {
      const context = await browser.newContext();
      contexts.push(context);
      const page = await context.newPage();
      await page.goto(`${other.httpUrl}/`);
      await containsText(page.locator('#auth-error'), `This page's origin (${other.httpUrl}) is not allowed`);
      await containsText(page.locator('#auth-error'), `ALLOWED_ORIGINS=${other.httpUrl}`);
    } finally {
      await other.close();
    }
  });

  it('survives a server-side close: reconnects, rejoins and shows what came next', async () => {
    const { page, problems } = await openPage();
    await signUp(page, 'dave');
    const [row] = await socketsOfUser(system.deps, 'dave');
    await system.deps.api?.close(row?.connectionId ?? '');
    await containsText(page.locator('#log'), 'Connection lost; reconnect attempt 1');
    await hasText(page.locator('#status'), 'live');
    await containsText(page.locator('#log'), 'Reconnected; rejoined 1 room(s)');

    const erin = clientFor(system, { createSocket: nodeSocket(new URL(system.httpUrl).origin) });
    await loggedIn(erin, 'erin');
    await erin.connect();
    await erin.join('lobby');
    await erin.send('lobby', 'Welcome back, Dave.');
    await isVisible(message(page, erin.username, 'Welcome back, Dave.'));
    expect(await socketsOfUser(system.deps, 'dave')).toHaveLength(1);
    expect(problems).toEqual([]);
  });

  it('restores the messages sent while its socket was down, and says how many', async () => {
    const { page, problems } = await openPage();
    await signUp(page, 'jade');
    const hal = clientFor(system, { createSocket: nodeSocket(new URL(system.httpUrl).origin) });
    await loggedIn(hal, 'hal');
    await hal.connect();
    await hal.join('lobby');
    await hal.send('lobby', 'Before the drop.');
    await isVisible(message(page, hal.username, 'Before the drop.'));
    // Keep the page away while two messages go out: its reconnect waits for this.
    await page.route('**/auth/ws-ticket', async (route) => {
      await hal.send('lobby', 'Missed one.');
      await hal.send('lobby', 'Missed two.');
      await route.continue();
    });
    const [row] = await socketsOfUser(system.deps, 'jade');
    await system.deps.api?.close(row?.connectionId ?? '');
    await containsText(page.locator('#messages'), '2 missed messages restored');
    await isVisible(message(page, hal.username, 'Missed one.'));
    await isVisible(message(page, hal.username, 'Missed two.'));
    expect(await message(page, hal.username, 'Missed one.').count()).toBe(1);
    expect(problems).toEqual([]);
  });
});
