import type { AddressInfo } from 'node:net';
import { base64url, CompactEncrypt, compactDecrypt, UnsecuredJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import {
  type ClientOptions,
  RealtimeClient,
  type TokenPair,
  type WebSocketLike,
} from '../../../web/client.ts';
import { nextEvent, record } from '../../kit/web-client.ts';

/** The client against a scripted server: behaviours the real one cannot be made to show on demand. */

const servers: WebSocketServer[] = [];
const clients: RealtimeClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function server(onFrame: (ws: WebSocket, text: string) => void | Promise<void>) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'jwt' });
  servers.push(wss);
  await new Promise((resolve) => wss.once('listening', resolve));
  const sockets: WebSocket[] = [];
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('message', (data) => void onFrame(ws, data.toString()));
  });
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, sockets };
}

function tokens(extra: Partial<TokenPair> = {}): TokenPair {
  const access_token = new UnsecuredJWT({ username: 'alice' }).setExpirationTime('15m').encode();
  return { access_token, token_type: 'Bearer', expires_in: 900, refresh_token: 'r', ...extra };
}

function client(wsUrl: string, options: Partial<ClientOptions> = {}) {
  const c = new RealtimeClient({
    httpUrl: 'http://127.0.0.1:1',
    wsUrl,
    auth: 'protocol',
    autoRefresh: false,
    createSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike,
    reconnectBaseMs: 20,
    ...options,
  });
  clients.push(c);
  return c;
}

describe('RealtimeClient against a scripted server', () => {
  it('treats a socket that stops answering pings as dead and reconnects', async () => {
    const { url, sockets } = await server(() => {}); // never replies
    const c = client(url, { pingIntervalMs: 100, requestTimeoutMs: 100 });
    c.useTokens(tokens());
    await c.connect();
    const reconnecting = await nextEvent(c, 'reconnecting');
    expect(reconnecting).toMatchObject({ attempt: 1 });
    await nextEvent(c, 'connected');
    expect(sockets).toHaveLength(2);
  });

  it('surfaces error frames that answer no request as error events', async () => {
    const { url, sockets } = await server(() => {});
    const c = client(url);
    c.useTokens(tokens());
    await c.connect();
    const error = nextEvent(c, 'error');
    sockets[0]?.send(
      JSON.stringify({ type: 'error', code: 'rate_limited', message: 'slow down', retry_after: 7 }),
    );
    expect(await error).toMatchObject({ code: 'rate_limited', retryAfterS: 7 });
  });

  it('ignores frames that are not the protocol (API Gateway errors, binary noise)', async () => {
    const { url, sockets } = await server((ws, text) => {
      const { id } = JSON.parse(text) as { id: string };
      ws.send('{"message": "Internal server error", "connectionId":"x", "requestId":"y"}');
      ws.send('not json');
      ws.send(JSON.stringify({ type: 'pong', id }));
    });
    const c = client(url);
    c.useTokens(tokens());
    await c.connect();
    const frames = record(c, 'frame');
    await expect(c.ping()).resolves.toMatchObject({ type: 'pong' });
    expect(frames).toHaveLength(1);
    expect(sockets).toHaveLength(1);
  });

  it('with a message_key, sends every frame as a JWE and reads encrypted replies', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const seen: unknown[] = [];
    const { url } = await server(async (ws, text) => {
      const outer = JSON.parse(text) as { type: string; jwe: string; id?: string };
      seen.push(outer);
      const { plaintext } = await compactDecrypt(outer.jwe, key);
      const inner = JSON.parse(new TextDecoder().decode(plaintext)) as {
        type: string;
        id: string;
        room: string;
      };
      const reply = async (frame: object) =>
        ws.send(
          JSON.stringify({
            type: 'encrypted',
            jwe: await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(frame)))
              .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
              .encrypt(key),
          }),
        );
      if (inner.type === 'join') {
        await reply({ type: 'joined', room: inner.room, history: [], id: inner.id });
        await reply({
          type: 'message',
          room: inner.room,
          from: 'bob',
          text: 'secret',
          ts: 1,
          messageId: 'm1',
        });
      }
    });
    const c = client(url);
    c.useTokens(tokens({ message_key: base64url.encode(key) }));
    expect(c.encrypted).toBe(true);
    await c.connect();
    const message = nextEvent(c, 'message');
    await expect(c.join('vault')).resolves.toMatchObject({ type: 'joined', room: 'vault' });
    expect(await message).toMatchObject({ from: 'bob', text: 'secret' });
    expect(seen).toEqual([{ type: 'encrypted', jwe: expect.stringMatching(/^ey[^.]+\.\./), id: 'c1' }]);
    expect(JSON.stringify(seen)).not.toContain('vault');
  });

  it('reports an encrypted frame it cannot read', async () => {
    const { url, sockets } = await server(() => {});
    const c = client(url);
    c.useTokens(tokens({ message_key: base64url.encode(new Uint8Array(32)) }));
    await c.connect();
    const error = nextEvent(c, 'error');
    sockets[0]?.send(JSON.stringify({ type: 'encrypted', jwe: 'a.b.c.d.e' }));
    expect(await error).toMatchObject({ code: 'decryption_failed' });
  });
});
