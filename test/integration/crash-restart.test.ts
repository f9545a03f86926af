import { afterAll, describe, expect, it } from 'vitest';
import { findRunning } from '../../local/data-dir.ts';
import { startProcess } from '../kit/processes.ts';
import { PASSWORD, tempDir } from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import { type Client, type Frame, is, openClient, terminateAll } from '../kit/ws-client.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  terminateAll();
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** Whether a process is gone (signal 0 fails). */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

async function post(url: string, body: unknown, token?: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

describe('npm start killed with SIGKILL mid-traffic', () => {
  it('comes back on the same data folder with users, sessions, blocks, revocations and every acknowledged message', async () => {
    const dir = await tempDir();
    cleanups.push(dir.remove);
    const env = {
      DATA_DIR: dir.path,
      PORT: '0',
      WS_PORT: '0',
      RATE_LIMIT_MAX: '20',
      BLOCK_AFTER_VIOLATIONS: '1',
    };
    const first = await startProcess(env);
    const url = first.httpUrl;
    const pairs: Record<string, { access_token: string; refresh_token: string }> = {};
    for (const u of ['keeper', 'quitter', 'flood', 'talk1', 'talk2']) {
      expect((await post(`${url}/auth/register`, { username: u, password: PASSWORD })).status).toBe(201);
      const login = await post(`${url}/auth/login`, { username: u, password: PASSWORD });
      pairs[u] = login.body as { access_token: string; refresh_token: string };
    }
    const token = (u: string) => pairs[u]?.access_token ?? '';
    // A revocation: logout spends the access token and its refresh family.
    expect((await post(`${url}/auth/logout`, {}, token('quitter'))).status).toBe(204);
    // A block: the system blocks a user that keeps going over the frame limit.
    const flood = await openClient(first.wsUrl, { protocols: ['jwt', token('flood')] });
    for (let i = 0; i < 23; i++) flood.send({ type: 'ping' });
    await flood.next(is('closing', { reason: 'blocked' }), 5000);

    // Traffic, then the kill while messages are still in flight.
    const room = 'crash';
    const talkers: Client[] = [];
    for (const u of ['talk1', 'talk2']) {
      const c = await openClient(first.wsUrl, { protocols: ['jwt', token(u)] });
      await c.request({ type: 'join', room });
      talkers.push(c);
    }
    for (let i = 0; i < 15; i++) {
      for (const [n, c] of talkers.entries())
        c.send({ type: 'message', room, text: `t${n}-${i}`, id: `m${n}-${i}` });
    }
    const acks = () => talkers.flatMap((c) => c.received.filter(is('ack')));
    await until('some acknowledgements', () => acks().length >= 4, 10_000);
    // The system's own process (tsx runs it as a child of the one it was started as), killed outright.
    const { pid } = (await findRunning(dir.path)) ?? { pid: 0 };
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    await until('the killed system to be gone', () => isGone(pid), 10_000);
    await first.stop('SIGKILL');
    const acknowledged = new Set(acks().map((a: Frame) => String(a.messageId)));
    expect(acknowledged.size).toBeGreaterThanOrEqual(4);

    const second = await startProcess(env);
    cleanups.push(() => second.stop('SIGTERM'));
    const again = second.httpUrl;
    expect((await post(`${again}/auth/login`, { username: 'keeper', password: PASSWORD })).status).toBe(200);
    expect((await post(`${again}/auth/refresh`, { refresh_token: pairs.keeper?.refresh_token })).status).toBe(
      200,
    );
    expect((await post(`${again}/auth/login`, { username: 'flood', password: PASSWORD })).status).toBe(403);
    const me = await fetch(`${again}/auth/me`, { headers: { authorization: `Bearer ${token('quitter')}` } });
    expect(me.status).toBe(401);
    expect(
      (await post(`${again}/auth/refresh`, { refresh_token: pairs.quitter?.refresh_token })).status,
    ).toBe(401);

    const reader = await openClient(second.wsUrl, { protocols: ['jwt', token('keeper')] });
    const joined = await reader.request({ type: 'join', room, history: 50 });
    const kept = new Set((joined.history as Frame[]).map((m) => String(m.messageId)));
    for (const id of acknowledged) expect(kept.has(id), `acknowledged message ${id}`).toBe(true);
  }, 60_000);
});
