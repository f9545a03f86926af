import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { LoadSockets, type Sock } from '../../../bench/load-sockets.ts';
import { until } from '../../kit/wait.ts';

type Frame = Record<string, unknown>;

/** A stand-in gateway: answers join, leave and message by id, and sends each message to every socket. */
async function startServer(): Promise<{ url: string; wss: WebSocketServer }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  let next = 0;
  wss.on('connection', (ws: WebSocket) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      if (frame.type === 'join') ws.send(JSON.stringify({ type: 'joined', id: frame.id }));
      if (frame.type === 'leave') ws.send(JSON.stringify({ type: 'left', id: frame.id }));
      if (frame.type === 'message') {
        const messageId = `m${++next}`;
        ws.send(JSON.stringify({ type: 'ack', id: frame.id, messageId }));
        const push = JSON.stringify({ type: 'message', room: frame.room, text: frame.text, messageId });
        for (const client of wss.clients) client.send(push);
      }
    });
  });
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, wss };
}

let server: { url: string; wss: WebSocketServer } | undefined;
const open: Sock[] = [];

afterEach(async () => {
  for (const s of open.splice(0)) s.ws.terminate();
  await new Promise((resolve) => server?.wss.close(resolve));
});

async function harness(): Promise<{ sockets: LoadSockets; problems: string[] }> {
  server = await startServer();
  const problems: string[] = [];
  return { sockets: new LoadSockets(server.url, ['t0', 't1'], problems), problems };
}

describe('LoadSockets', () => {
  it('opens and joins, matches each answer to its request, and counts what arrives', async () => {
    const { sockets, problems } = await harness();
    const a = await sockets.openAndJoin(0, 'r', false);
    const b = await sockets.openAndJoin(1, 'r', false);
    open.push(a, b);
    const ack = await sockets.request(a, { type: 'message', room: 'r', text: `hi@${Date.now()}` });
    expect(ack).toMatchObject({ type: 'ack', messageId: 'm1' });
    await until('both sockets got m1', () => b.got.has('m1') && a.got.has('m1'));
    expect(a.got.get('m1')).toBe(1);
    expect(sockets.connections).toBe(2);
    expect(sockets.latencies).toHaveLength(2);
    expect(a.spans).toHaveLength(1);
    expect(problems).toEqual([]);
  });

  it('notes a message of another room as a problem', async () => {
    const { sockets, problems } = await harness();
    const a = await sockets.openAndJoin(0, 'r', false);
    const b = await sockets.openAndJoin(1, 'other', false);
    open.push(a, b);
    await sockets.request(a, { type: 'message', room: 'r', text: `hi@${Date.now()}` });
    await until('the other room got m1', () => b.got.has('m1'));
    expect(problems).toEqual(['a socket of other got a message of r']);
  });

  it('churns by leaving and rejoining on an even turn and reconnecting on an odd one', async () => {
    const { sockets } = await harness();
    const a = await sockets.openAndJoin(0, 'r', true);
    open.push(a);
    await sockets.churnOne(a, 0);
    expect([sockets.rejoins, sockets.reconnects, sockets.connections]).toEqual([1, 0, 1]);
    const first = a.ws;
    await sockets.churnOne(a, 1);
    expect([sockets.rejoins, sockets.reconnects, sockets.connections]).toEqual([1, 1, 2]);
    expect(a.ws).not.toBe(first);
    expect(a.spans.map((s) => s.to === Number.POSITIVE_INFINITY)).toEqual([false, false, true]);
  });
});
