import type { IncomingMessage } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type AuthorizerResult,
  startWsGateway,
  type WsAuthorizerEvent,
  type WsGateway,
  type WsGatewayOptions,
  type WsProxyEvent,
} from '../../local/ws-gateway.ts';
import { sdkSigner } from '../kit/sigv4.ts';
import { sleep } from '../kit/wait.ts';

const gateways: WsGateway[] = [];
const clients: WebSocket[] = [];

afterEach(async () => {
  for (const ws of clients.splice(0)) ws.terminate();
  await Promise.all(gateways.splice(0).map((gw) => gw.close()));
});

async function start(options: WsGatewayOptions): Promise<WsGateway> {
  const gw = await startWsGateway(options);
  gateways.push(gw);
  return gw;
}

function allow(principalId: string, context?: Record<string, unknown>) {
  return async (event: WsAuthorizerEvent): Promise<AuthorizerResult> =>
    ({
      principalId,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: event.methodArn }],
      },
      context,
    }) as AuthorizerResult;
}

type Opened = { ws: WebSocket; upgrade: IncomingMessage };

function open(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}) {
  const ws = new WebSocket(url, options.protocols ?? [], { headers: options.headers });
  clients.push(ws);
  return new Promise<Opened>((resolve, reject) => {
    let upgrade: IncomingMessage | undefined;
    ws.once('upgrade', (res) => {
      upgrade = res;
    });
    ws.once('open', () => resolve({ ws, upgrade: upgrade as IncomingMessage }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        reject(
          Object.assign(new Error('refused'), {
            status: res.statusCode,
            body: Buffer.concat(chunks).toString(),
          }),
        ),
      );
    });
    ws.once('error', reject);
  });
}

async function refusal(
  url: string,
  options: { protocols?: string[]; headers?: Record<string, string> } = {},
) {
  try {
    await open(url, options);
  } catch (error) {
    return error as Error & { status?: number; body?: string };
  }
  throw new Error('the handshake was accepted');
}

function nextMessage(ws: WebSocket): Promise<{ data: string; isBinary: boolean }> {
  return new Promise((resolve) =>
    ws.once('message', (data: Buffer, isBinary: boolean) => resolve({ data: data.toString(), isBinary })),
  );
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}

/** Resolves with the events a route receives, in order. */
function recorder() {
  const events: WsProxyEvent[] = [];
  const waiters: Array<() => void> = [];
  return {
    events,
    handler: async (event: WsProxyEvent) => {
      events.push(event);
      for (const wake of waiters.splice(0)) wake();
      return { statusCode: 200 };
    },
    async count(n: number): Promise<WsProxyEvent[]> {
      while (events.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
      return events;
    },
  };
}

/**
 * Opens a socket on a gateway that records `$default` and `$disconnect`, lets `send` write to
 * it, and reports how it ended: the client's close code, the one `$disconnect` saw, and how
 * many frames reached `$default`.
 */
async function closeAfter(send: (ws: WebSocket) => void, options: Partial<WsGatewayOptions> = {}) {
  const messages = recorder();
  const disconnects = recorder();
  const gw = await start({
    ...options,
    routes: { default: messages.handler, disconnect: disconnects.handler },
  });
  const { ws } = await open(gw.url);
  const close = closed(ws);
  send(ws);
  const { code } = await close;
  const [event] = await disconnects.count(1);
  return {
    code,
    disconnectCode: event?.requestContext.disconnectStatusCode,
    messages: messages.events.length,
  };
}

function managementClient(gw: WsGateway, endpoint = gw.managementEndpoint) {
  return new ApiGatewayManagementApiClient({
    endpoint,
    region: gw.region,
    credentials: gw.managementCredentials,
  });
}

const AWS_ID = /^[A-Za-z0-9_-]{15}=$/;

describe('handshake events', () => {
  it('gives the authorizer the request as sent: header casing, query, methodArn and context', async () => {
    const seen: WsAuthorizerEvent[] = [];
    const connect = recorder();
    const gw = await start({
      stage: 'dev',
      apiId: 'api123',
      routes: {
        authorizer: async (event) => {
          seen.push(event);
          return allow('user-1', { username: 'ada', exp: 1700000000, admin: false })(event);
        },
        connect: connect.handler,
      },
    });
    await open(`${gw.url}/dev?token=abc&room=a&room=b`, {
      headers: { 'X-Custom-Header': 'Hello', Origin: 'http://localhost:3000', 'User-Agent': 'test-agent' },
    });

    const auth = seen[0];
    expect(auth?.type).toBe('REQUEST');
    expect(auth?.methodArn).toBe('arn:aws:execute-api:local:000000000000:api123/dev/$connect');
    expect(auth?.headers['X-Custom-Header']).toBe('Hello');
    expect(auth?.headers['x-custom-header']).toBeUndefined();
    expect(auth?.headers.Origin).toBe('http://localhost:3000');
    expect(auth?.multiValueHeaders['X-Custom-Header']).toEqual(['Hello']);
    expect(auth?.headers['X-Forwarded-For']).toBe('127.0.0.1');
    expect(auth?.queryStringParameters).toEqual({ token: 'abc', room: 'b' });
    expect(auth?.multiValueQueryStringParameters).toEqual({ token: ['abc'], room: ['a', 'b'] });
    expect(auth?.stageVariables).toEqual({});
    const rc = auth?.requestContext;
    expect(rc).toMatchObject({
      routeKey: '$connect',
      eventType: 'CONNECT',
      messageDirection: 'IN',
      stage: 'dev',
      apiId: 'api123',
      domainName: `127.0.0.1:${gw.port}`,
      identity: { sourceIp: '127.0.0.1', userAgent: 'test-agent' },
    });
    expect(rc?.connectionId).toMatch(AWS_ID);
    expect(rc?.requestId).toMatch(AWS_ID);
    expect(rc?.extendedRequestId).toBe(rc?.requestId);
    expect(rc?.requestTime).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    expect(Math.abs((rc?.requestTimeEpoch ?? 0) - Date.now())).toBeLessThan(5000);
    expect(rc?.connectedAt).toBe(rc?.requestTimeEpoch);
    expect(rc).not.toHaveProperty('authorizer');
    expect(rc).not.toHaveProperty('messageId');

    const [connectEvent] = await connect.count(1);
    expect(connectEvent?.headers?.['X-Custom-Header']).toBe('Hello');
    expect(connectEvent?.queryStringParameters).toEqual({ token: 'abc', room: 'b' });
    expect(connectEvent?.isBase64Encoded).toBe(false);
    expect(connectEvent?.requestContext.connectionId).toBe(rc?.connectionId);
    expect(connectEvent?.requestContext.authorizer).toEqual({
      principalId: 'user-1',
      username: 'ada',
      exp: '1700000000',
      admin: 'false',
    });
  });

  it('leaves the query parameters out when the URL has none', async () => {
    const connect = recorder();
    const gw = await start({ routes: { connect: connect.handler } });
    await open(gw.url);
    const [event] = await connect.count(1);
    expect(event).not.toHaveProperty('queryStringParameters');
    expect(event).not.toHaveProperty('multiValueQueryStringParameters');
    expect(event?.requestContext).not.toHaveProperty('authorizer');
  });

  it('carries the frozen authorizer context into $default and $disconnect', async () => {
    const messages = recorder();
    const disconnects = recorder();
    const gw = await start({
      routes: {
        authorizer: allow('user-2', { sub: 's-2' }),
        default: messages.handler,
        disconnect: disconnects.handler,
      },
    });
    const { ws } = await open(gw.url);
    ws.send('hello');
    const [message] = await messages.count(1);
    expect(message?.body).toBe('hello');
    expect(message?.isBase64Encoded).toBe(false);
    expect(message).not.toHaveProperty('headers');
    expect(message?.requestContext).toMatchObject({
      routeKey: '$default',
      eventType: 'MESSAGE',
      messageDirection: 'IN',
      authorizer: { principalId: 'user-2', sub: 's-2' },
      identity: { sourceIp: '127.0.0.1' },
    });
    expect(message?.requestContext.messageId).toMatch(AWS_ID);
    expect(Object.isFrozen(message?.requestContext.authorizer)).toBe(true);

    ws.close(4000, 'bye');
    const [disconnect] = await disconnects.count(1);
    expect(disconnect?.requestContext).toMatchObject({
      routeKey: '$disconnect',
      eventType: 'DISCONNECT',
      disconnectStatusCode: 4000,
      disconnectReason: 'bye',
      connectionId: message?.requestContext.connectionId,
      connectedAt: message?.requestContext.connectedAt,
      authorizer: { principalId: 'user-2', sub: 's-2' },
    });
    expect(disconnect?.headers).toEqual({
      Host: `127.0.0.1:${gw.port}`,
      'x-api-key': '',
      'X-Forwarded-For': '',
      'x-restapi': '',
    });
  });

  it('reports a close without a status code as 1005', async () => {
    const disconnects = recorder();
    const gw = await start({ routes: { disconnect: disconnects.handler } });
    const { ws } = await open(gw.url);
    ws.close();
    const [event] = await disconnects.count(1);
    expect(event?.requestContext.disconnectStatusCode).toBe(1005);
  });

  it('closes with 1003 on a binary frame, as API Gateway does, and $default never sees it', async () => {
    const ended = await closeAfter((ws) => ws.send(Buffer.from([0, 1, 2, 255])));
    expect(ended).toEqual({ code: 1003, disconnectCode: 1003, messages: 0 });
  });

  it('closes with 1003 on the first fragment of a binary message', async () => {
    const ended = await closeAfter((ws) => ws.send(Buffer.from('first'), { binary: true, fin: false }));
    expect(ended).toEqual({ code: 1003, disconnectCode: 1003, messages: 0 });
  });
});

describe('authorizer outcomes', () => {
  it('answers 401 when the authorizer throws Unauthorized', async () => {
    const gw = await start({
      routes: {
        authorizer: async () => {
          throw new Error('Unauthorized');
        },
      },
    });
    const error = await refusal(gw.url);
    expect(error.status).toBe(401);
    expect(JSON.parse(error.body ?? '')).toEqual({ message: 'Unauthorized' });
  });

  it('answers 403 for a Deny and for an Allow on another resource', async () => {
    const deny = await start({
      routes: {
        authorizer: async (event) => ({
          principalId: 'u',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [{ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: event.methodArn }],
          },
        }),
      },
    });
    expect((await refusal(deny.url)).status).toBe(403);

    const elsewhere = await start({
      routes: {
        authorizer: async () => ({
          principalId: 'u',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [
              { Action: 'execute-api:Invoke', Effect: 'Allow', Resource: 'arn:aws:execute-api:*:*:other/*' },
            ],
          },
        }),
      },
    });
    expect((await refusal(elsewhere.url)).status).toBe(403);
  });

  it('accepts an Allow with wildcards in the resource', async () => {
    const gw = await start({
      routes: {
        authorizer: async () => ({
          principalId: 'u',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [
              { Action: 'execute-api:*', Effect: 'Allow', Resource: ['arn:aws:execute-api:*:*:local/*'] },
            ],
          },
        }),
      },
    });
    const { ws } = await open(gw.url);
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });

  const broken: Array<[string, (event: WsAuthorizerEvent) => Promise<unknown>]> = [
    [
      'another error',
      async () => {
        throw new Error('database down');
      },
    ],
    ['a result that is not an object', async () => 'Allow'],
    [
      'a result without principalId',
      async (event) => ({ ...(await allow('u')(event)), principalId: undefined }),
    ],
    ['a result without policyDocument', async () => ({ principalId: 'u' })],
    ['an object in the context', allow('u', { user: { id: 1 } })],
    ['an array in the context', allow('u', { roles: ['user'] })],
    ['a context over 8 KB', allow('u', { blob: 'x'.repeat(8 * 1024) })],
  ];
  for (const [name, authorizer] of broken) {
    it(`answers 500 for ${name}`, async () => {
      const gw = await start({
        routes: { authorizer: authorizer as (e: WsAuthorizerEvent) => Promise<AuthorizerResult> },
      });
      expect((await refusal(gw.url)).status).toBe(500);
    });
  }

  it('answers 401 without invoking the authorizer when an identity source is missing or empty', async () => {
    let calls = 0;
    const gw = await start({
      identitySources: ['route.request.header.Authorization', 'route.request.querystring.token'],
      routes: {
        authorizer: async (event) => {
          calls += 1;
          return allow('u')(event);
        },
      },
    });
    expect((await refusal(`${gw.url}?token=t`)).status).toBe(401);
    expect((await refusal(gw.url, { headers: { authorization: 'Bearer x' } })).status).toBe(401);
    expect((await refusal(`${gw.url}?token=`, { headers: { authorization: 'Bearer x' } })).status).toBe(401);
    expect(calls).toBe(0);

    await open(`${gw.url}?token=t`, { headers: { authorization: 'Bearer x' } });
    expect(calls).toBe(1);
  });

  it('never invokes the routes for a malformed upgrade', async () => {
    let calls = 0;
    const gw = await start({
      routes: {
        authorizer: async (event) => {
          calls += 1;
          return allow('u')(event);
        },
      },
    });
    const response = await rawRequest(
      gw.port,
      'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: nope\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    expect(calls).toBe(0);
  });
});

describe('$connect route', () => {
  it('refuses the handshake with the status a non-2xx result carries', async () => {
    for (const statusCode of [400, 403, 429]) {
      const gw = await start({ routes: { connect: async () => ({ statusCode }) } });
      expect((await refusal(gw.url)).status).toBe(statusCode);
    }
  });

  it('answers 502 when $connect throws', async () => {
    const gw = await start({
      routes: {
        connect: async () => {
          throw new Error('boom');
        },
      },
    });
    expect((await refusal(gw.url)).status).toBe(502);
  });

  it('selects only the subprotocol $connect names', async () => {
    const gw = await start({
      routes: {
        connect: async (event) => {
          const offered = String(event.headers?.['Sec-WebSocket-Protocol'] ?? '');
          return offered.split(',')[0] === 'jwt'
            ? { statusCode: 200, headers: { 'sec-websocket-protocol': 'jwt' } }
            : { statusCode: 200 };
        },
      },
    });
    const { ws, upgrade } = await open(gw.url, { protocols: ['jwt', 'tok'] });
    expect(ws.protocol).toBe('jwt');
    expect(upgrade.headers['sec-websocket-protocol']).toBe('jwt');
  });

  it('completes the handshake without a subprotocol when $connect names none (a client that offered one aborts)', async () => {
    const gw = await start({ routes: { connect: async () => ({ statusCode: 200 }) } });
    const error = await refusal(gw.url, { protocols: ['jwt', 'tok'] });
    expect(error.message).toBe('Server sent no subprotocol');

    const { ws } = await open(gw.url);
    expect(ws.protocol).toBe('');
  });

  it('does not register the connection for @connections until $connect has finished', async () => {
    let duringConnect: unknown;
    const gw = await start({
      routes: {
        connect: async (event) => {
          try {
            await managementClient(gw).send(
              new PostToConnectionCommand({ ConnectionId: event.requestContext.connectionId, Data: 'early' }),
            );
          } catch (error) {
            duringConnect = error;
          }
          return { statusCode: 200 };
        },
      },
    });
    await open(gw.url);
    expect((duringConnect as Error | undefined)?.name).toBe('GoneException');
  });
});

describe('$default route', () => {
  it('sends the result body back when route responses are on', async () => {
    const gw = await start({
      returnResponseRoutes: ['$default'],
      routes: { default: async (event) => ({ statusCode: 200, body: `echo:${event.body}` }) },
    });
    const { ws } = await open(gw.url);
    const reply = nextMessage(ws);
    ws.send('hi');
    expect((await reply).data).toBe('echo:hi');
  });

  it('sends nothing back when route responses are off', async () => {
    let connectionId = '';
    const handled = recorder();
    const gw = await start({
      routes: {
        connect: async (event) => {
          connectionId = event.requestContext.connectionId;
          return { statusCode: 200 };
        },
        default: async (event) => {
          await handled.handler(event);
          return { statusCode: 200, body: 'not for the client' };
        },
      },
    });
    const { ws } = await open(gw.url);
    const first = nextMessage(ws);
    ws.send('hi');
    await handled.count(1);
    await managementClient(gw).send(
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'sentinel' }),
    );
    expect((await first).data).toBe('sentinel');
  });

  it('answers a failing handler with API Gateway’s error frame and keeps the socket open', async () => {
    const handled = recorder();
    const gw = await start({
      routes: {
        default: async (event) => {
          if (event.body === 'fail') throw new Error('boom');
          return handled.handler(event);
        },
      },
    });
    const { ws } = await open(gw.url);
    const reply = nextMessage(ws);
    ws.send('fail');
    const text = (await reply).data;
    expect(text).toMatch(
      /^\{"message": "Internal server error", "connectionId":"[A-Za-z0-9_-]{15}=", "requestId":"[A-Za-z0-9_-]{15}="\}$/,
    );
    ws.send('next');
    await handled.count(1);
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });

  it('answers Forbidden when no $default route exists', async () => {
    const gw = await start({ routes: {} });
    const { ws } = await open(gw.url);
    const reply = nextMessage(ws);
    ws.send('anything');
    expect(JSON.parse((await reply).data)).toMatchObject({ message: 'Forbidden' });
  });

  it('dispatches frames concurrently rather than one after another', async () => {
    let releaseFirst: () => void = () => {};
    const firstHeld = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    const gw = await start({
      returnResponseRoutes: ['$default'],
      routes: {
        default: async (event) => {
          if (event.body === 'first') await firstHeld;
          else releaseFirst();
          return { statusCode: 200, body: `done:${event.body}` };
        },
      },
    });
    const { ws } = await open(gw.url);
    const replies: string[] = [];
    const both = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer) => {
        replies.push(data.toString());
        if (replies.length === 2) resolve();
      }),
    );
    ws.send('first');
    ws.send('second');
    await both;
    expect(replies).toEqual(['done:second', 'done:first']);
  });
});

describe('limits', () => {
  it('closes with 1009 on a frame over 32 KB, even when the message limit is not reached', async () => {
    const ended = await closeAfter((ws) => ws.send('x'.repeat(32 * 1024 + 1)));
    expect(ended).toEqual({ code: 1009, disconnectCode: 1009, messages: 0 });
  });

  it('accepts a frame of exactly 32 KB', async () => {
    const messages = recorder();
    const gw = await start({ routes: { default: messages.handler } });
    const { ws } = await open(gw.url);
    ws.send('x'.repeat(32 * 1024));
    const [event] = await messages.count(1);
    expect(event?.body).toHaveLength(32 * 1024);
  });

  it('closes with 1009 on a fragmented message over the message limit', async () => {
    const ended = await closeAfter(
      (ws) => {
        ws.send('a'.repeat(500), { fin: false });
        ws.send('b'.repeat(500), { fin: false });
        ws.send('c'.repeat(500), { fin: true });
      },
      { maxFrameBytes: 600, maxMessageBytes: 1000 },
    );
    expect(ended).toEqual({ code: 1009, disconnectCode: 1009, messages: 0 });
  });

  it('closes an idle connection with 1001 Going away', async () => {
    const disconnects = recorder();
    const gw = await start({ idleTimeoutMs: 200, routes: { disconnect: disconnects.handler } });
    const { ws } = await open(gw.url);
    const started = Date.now();
    expect(await closed(ws)).toEqual({ code: 1001, reason: 'Going away' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    const [event] = await disconnects.count(1);
    expect(event?.requestContext.disconnectStatusCode).toBe(1001);
  });

  it('keeps a connection open while either side keeps sending, and closes it once both stop', async () => {
    let connectionId = '';
    const gw = await start({
      idleTimeoutMs: 300,
      routes: {
        connect: async (event) => {
          connectionId = event.requestContext.connectionId;
          return { statusCode: 200 };
        },
        default: async () => ({ statusCode: 200 }),
      },
    });
    const { ws } = await open(gw.url);
    let closedAt = 0;
    const close = closed(ws).then((c) => {
      closedAt = Date.now();
      return c;
    });
    for (let i = 0; i < 6; i += 1) {
      await sleep(100);
      ws.send('keep-alive');
    }
    const client = managementClient(gw);
    for (let i = 0; i < 6; i += 1) {
      await sleep(100);
      await client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'server' }));
    }
    const lastFrame = Date.now();
    expect(closedAt).toBe(0);
    expect((await close).code).toBe(1001);
    expect(closedAt - lastFrame).toBeGreaterThanOrEqual(250);
  });

  it('closes a connection at its maximum age with 1001 even while it is active', async () => {
    const gw = await start({ maxConnectionMs: 300, routes: { default: async () => ({ statusCode: 200 }) } });
    const { ws } = await open(gw.url);
    const close = closed(ws);
    const timer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('busy'), 50);
    try {
      expect(await close).toEqual({ code: 1001, reason: 'Going away' });
    } finally {
      clearInterval(timer);
    }
  });
});

describe('@connections management API through the AWS SDK', () => {
  async function connected(options: Partial<WsGatewayOptions> = {}) {
    let connectionId = '';
    const disconnects = recorder();
    const gw = await start({
      ...options,
      routes: {
        connect: async (event) => {
          connectionId = event.requestContext.connectionId;
          return { statusCode: 200 };
        },
        default: async () => ({ statusCode: 200 }),
        disconnect: disconnects.handler,
      },
    });
    const { ws } = await open(gw.url, { headers: { 'User-Agent': 'sdk-test' } });
    return { gw, ws, connectionId, disconnects, client: managementClient(gw) };
  }

  it('posts, gets and deletes a connection', async () => {
    const { ws, connectionId, disconnects, client } = await connected();
    const message = nextMessage(ws);
    const posted = await client.send(
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: '{"a":1}' }),
    );
    expect(posted.$metadata.httpStatusCode).toBe(200);
    expect(await message).toEqual({ data: '{"a":1}', isBinary: false });

    const before = Date.now();
    ws.send('activity');
    await sleep(50);
    const info = await client.send(new GetConnectionCommand({ ConnectionId: connectionId }));
    expect(info.ConnectedAt).toBeInstanceOf(Date);
    expect(info.LastActiveAt?.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(info.LastActiveAt?.getTime()).toBeGreaterThan(
      info.ConnectedAt?.getTime() ?? Number.POSITIVE_INFINITY,
    );
    expect(info.Identity).toEqual({ SourceIp: '127.0.0.1', UserAgent: 'sdk-test' });

    const close = closed(ws);
    const deleted = await client.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    expect(deleted.$metadata.httpStatusCode).toBe(204);
    expect((await close).code).toBe(1000);
    const [event] = await disconnects.count(1);
    expect(event?.requestContext).toMatchObject({
      disconnectStatusCode: 1000,
      disconnectReason: 'Connection Closed Normally',
    });
  });

  it('raises GoneException for a closed or unknown connection', async () => {
    const { ws, connectionId, disconnects, client } = await connected();
    ws.close();
    await disconnects.count(1);
    const commands = [
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'late' }),
      new GetConnectionCommand({ ConnectionId: connectionId }),
      new DeleteConnectionCommand({ ConnectionId: connectionId }),
      new PostToConnectionCommand({ ConnectionId: 'AAAAAAAAAAAAAAA=', Data: 'x' }),
    ];
    for (const command of commands) {
      // biome-ignore lint/suspicious/noExplicitAny: the commands have different output types
      const error = await client.send(command as any).catch((e: unknown) => e);
      expect((error as Error).name).toBe('GoneException');
    }
  });

  it('raises PayloadTooLargeException for a post over 128 KB', async () => {
    const { connectionId, client, ws } = await connected();
    const error = await client
      .send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'x'.repeat(128 * 1024 + 1) }))
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe('PayloadTooLargeException');
    expect((error as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode).toBe(413);
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });

  it('raises ForbiddenException when the endpoint lacks the stage', async () => {
    const { gw, connectionId } = await connected({ stage: 'prod' });
    const client = managementClient(gw, `http://127.0.0.1:${gw.port}`);
    const error = await client
      .send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'x' }))
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe('ForbiddenException');
  });

  it('answers 404 outside the management paths, to signed calls', async () => {
    const gw = await start({ routes: {} });
    const res = await signedFetch(gw, { method: 'GET', path: '/elsewhere' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ message: 'Not Found' });
  });
});

describe('@connections needs a SigV4 signature, as IAM on AWS', () => {
  async function live() {
    let connectionId = '';
    const gw = await start({
      routes: {
        connect: async (event) => {
          connectionId = event.requestContext.connectionId;
          return { statusCode: 200 };
        },
        default: async () => ({ statusCode: 200 }),
      },
    });
    const { ws } = await open(gw.url);
    const frames: string[] = [];
    ws.on('message', (data) => frames.push(String(data)));
    return { gw, ws, connectionId, frames, path: `/local/@connections/${encodeURIComponent(connectionId)}` };
  }

  async function expectForbidden(res: Response, message: RegExp) {
    expect(res.status).toBe(403);
    expect(res.headers.get('x-amzn-errortype')).toBe('ForbiddenException');
    expect(((await res.json()) as { message: string }).message).toMatch(message);
  }

  it('refuses unsigned GET, POST and DELETE with 403 ForbiddenException, and the socket sees nothing', async () => {
    const { gw, ws, frames, path } = await live();
    const url = `http://127.0.0.1:${gw.port}${path}`;
    const forged = JSON.stringify({ type: 'message', room: 'lobby', from: 'admin', text: 'click here' });
    await expectForbidden(await fetch(url), /Missing Authentication Token/);
    await expectForbidden(await fetch(url, { method: 'POST', body: forged }), /Missing Authentication Token/);
    await expectForbidden(await fetch(url, { method: 'DELETE' }), /Missing Authentication Token/);
    // Unsigned calls learn nothing either: not even whether a path exists.
    await expectForbidden(
      await fetch(`http://127.0.0.1:${gw.port}/elsewhere`),
      /Missing Authentication Token/,
    );
    await sleep(50);
    expect(frames).toEqual([]);
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });

  it('refuses calls signed with another secret, key id or region, or for another service', async () => {
    const { gw, frames, path } = await live();
    const base = { method: 'POST', path, body: '{"x":1}' };
    const cases: [Partial<SignOptions>, RegExp][] = [
      [{ secretAccessKey: 'local' }, /signature we calculated does not match/],
      [{ accessKeyId: 'someone-else' }, /security token/],
      [{ region: 'us-east-1' }, /scoped to a valid region/],
      [{ service: 'execute-apx' }, /scoped to a valid region/],
    ];
    for (const [bad, message] of cases)
      await expectForbidden(await signedFetch(gw, { ...base, ...bad }), message);
    expect(frames).toEqual([]);
  });

  it('refuses a signed call whose body, path or method was changed, and one signed too long ago', async () => {
    const { gw, frames, path, connectionId } = await live();
    const mismatch = /signature we calculated does not match|does not match the body/;
    await expectForbidden(
      await signedFetch(gw, { method: 'POST', path, body: '{"a":1}', sendBody: '{"a":2}' }),
      mismatch,
    );
    await expectForbidden(
      await signedFetch(gw, { method: 'POST', path: '/local/@connections/other', body: 'x', sendPath: path }),
      mismatch,
    );
    await expectForbidden(await signedFetch(gw, { method: 'GET', path, sendMethod: 'DELETE' }), mismatch);
    await expectForbidden(
      await signedFetch(gw, { method: 'POST', path, body: 'x', date: new Date(Date.now() - 10 * 60_000) }),
      /expired/,
    );
    expect(frames).toEqual([]);
    // The same call, rightly signed, goes through.
    const ok = await signedFetch(gw, { method: 'POST', path, body: 'hello' });
    expect(ok.status).toBe(200);
    await sleep(50);
    expect(frames).toEqual(['hello']);
    expect(connectionId).toMatch(AWS_ID);
  });

  it('makes a random secret per gateway, unless one is given', async () => {
    const a = await start({ routes: {} });
    const b = await start({ routes: {} });
    expect(a.managementCredentials.secretAccessKey).not.toBe(b.managementCredentials.secretAccessKey);
    expect(a.managementCredentials.secretAccessKey.length).toBeGreaterThanOrEqual(40);
    const given = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'a'.repeat(40) };
    const c = await start({ routes: {}, managementCredentials: given, region: 'eu-west-1' });
    expect(c.managementCredentials).toEqual(given);
    expect(c.region).toBe('eu-west-1');
  });
});

interface SignOptions {
  method: string;
  path: string;
  body?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  service?: string;
  date?: Date;
  /** Sent instead of what was signed, to tamper with the request. */
  sendBody?: string;
  sendPath?: string;
  sendMethod?: string;
}

/** A raw call signed by the AWS SDK's own SigV4 signer, then sent as told (possibly tampered). */
async function signedFetch(gw: WsGateway, o: SignOptions): Promise<Response> {
  const signer = sdkSigner({
    credentials: {
      accessKeyId: o.accessKeyId ?? gw.managementCredentials.accessKeyId,
      secretAccessKey: o.secretAccessKey ?? gw.managementCredentials.secretAccessKey,
    },
    region: o.region ?? gw.region,
    service: o.service ?? 'execute-api',
  });
  const host = `127.0.0.1:${gw.port}`;
  const signed = await signer.sign(
    {
      method: o.method,
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: gw.port,
      path: o.path,
      query: {},
      headers: { host, ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(o.body === undefined ? {} : { body: o.body }),
    },
    o.date ? { signingDate: o.date } : {},
  );
  const headers = Object.fromEntries(Object.entries(signed.headers).filter(([k]) => k !== 'host'));
  const body = o.sendBody ?? o.body;
  return fetch(`http://${host}${o.sendPath ?? o.path}`, {
    method: o.sendMethod ?? o.method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
}

describe('robustness and shutdown', () => {
  it('survives clients that vanish mid-handshake and keeps serving', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const disconnects = recorder();
    let first = true;
    const gw = await start({
      routes: {
        connect: async () => {
          if (first) {
            first = false;
            await held;
          }
          return { statusCode: 200 };
        },
        disconnect: disconnects.handler,
      },
    });
    const doomed = new WebSocket(gw.url);
    doomed.on('error', () => {});
    await sleep(50);
    doomed.terminate();
    await sleep(50);
    release();
    const [event] = await disconnects.count(1);
    expect(event?.requestContext.disconnectStatusCode).toBe(1006);
    expect(gw.connectionCount()).toBe(0);

    const garbage = await rawRequest(gw.port, 'NOT HTTP AT ALL\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);

    const { ws } = await open(gw.url);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(gw.connectionCount()).toBe(1);
  });

  it('close() sends 1001 to every socket, runs their $disconnect and stops listening', async () => {
    const disconnects = recorder();
    const gw = await start({ routes: { disconnect: disconnects.handler } });
    const a = await open(gw.url);
    const b = await open(gw.url);
    expect(gw.connectionCount()).toBe(2);
    const closes = [closed(a.ws), closed(b.ws)];
    const started = Date.now();
    await gw.close();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(disconnects.events.map((e) => e.requestContext.disconnectStatusCode)).toEqual([1001, 1001]);
    expect((await Promise.all(closes)).map((c) => c.code)).toEqual([1001, 1001]);
    expect(gw.connectionCount()).toBe(0);
    await expect(refusal(gw.url)).resolves.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('close() does not hang on keep-alive management connections', async () => {
    const gw = await start({ routes: {} });
    const client = managementClient(gw);
    await client.send(new GetConnectionCommand({ ConnectionId: 'AAAAAAAAAAAAAAA=' })).catch(() => {});
    const started = Date.now();
    await gw.close();
    expect(Date.now() - started).toBeLessThan(1000);
    client.destroy();
  });
});

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
    socket.on('error', reject);
  });
}
