import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  ConnectionsApiError,
  connectionsApi,
  regionOfEndpoint,
  type SignedConnectionsApi,
} from '../../lambdas/aws/connections-api.ts';
import { credentialsFromEnv } from '../../lambdas/aws/signed-http.ts';
import type { ConnectionsApi } from '../../lambdas/core/deps.ts';
import { startWsGateway, type WsGateway } from '../../local/ws-gateway.ts';
import { sdkConnectionsApi, sdkManagementClient } from '../kit/sdk-connections-api.ts';
import { expectedSignature, signatureOf, standIn } from '../kit/sigv4.ts';

const LOCAL = { accessKeyId: 'local', secretAccessKey: 'local' };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});

function lean(
  endpoint: string,
  extra: Partial<Parameters<typeof connectionsApi>[0]> = {},
): SignedConnectionsApi {
  const api = connectionsApi({ endpoint, region: 'local', credentials: LOCAL, ...extra });
  cleanups.push(() => api.destroy());
  return api;
}

function sdk(endpoint: string): ConnectionsApi {
  const client = sdkManagementClient(endpoint, { region: 'local', credentials: LOCAL, maxAttempts: 1 });
  cleanups.push(() => client.destroy());
  return sdkConnectionsApi(client);
}

/** A local WebSocket gateway that accepts every handshake, and `sockets` clients connected to it. */
async function gatewayWith(sockets: number) {
  const ids: string[] = [];
  const gw: WsGateway = await startWsGateway({
    // Fixed credentials, so the clients below can be built before the gateway exists.
    managementCredentials: LOCAL,
    routes: {
      connect: async (event) => {
        ids.push(event.requestContext.connectionId);
        return { statusCode: 200 };
      },
      default: async () => ({ statusCode: 200 }),
      disconnect: async () => ({ statusCode: 200 }),
    },
  });
  cleanups.push(() => gw.close());
  const clients: WebSocket[] = [];
  for (let i = 0; i < sockets; i++) {
    const ws = new WebSocket(gw.url);
    cleanups.push(() => ws.terminate());
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    clients.push(ws);
  }
  return { gw, clients, ids };
}

const received = (ws: WebSocket, n: number) =>
  new Promise<string[]>((resolve) => {
    const got: string[] = [];
    const on = (data: Buffer) => {
      got.push(data.toString());
      if (got.length === n) {
        ws.off('message', on);
        resolve(got);
      }
    };
    ws.on('message', on);
  });

describe('posting to sockets through the local gateway', () => {
  it('delivers a post, reads a connection and closes it, over real sockets', async () => {
    const { gw, clients, ids } = await gatewayWith(2);
    const api = lean(gw.managementEndpoint);
    const [a, b] = clients as [WebSocket, WebSocket];
    const [idA, idB] = ids as [string, string];
    const got = received(a, 2);
    expect(await api.post(idA, '{"type":"pong"}')).toBe(true);
    expect(await api.post(idA, 'é ü 漢字')).toBe(true);
    expect(await got).toEqual(['{"type":"pong"}', 'é ü 漢字']);

    expect(await api.exists(idB)).toBe(true);
    const closed = new Promise<number>((resolve) => b.once('close', resolve));
    expect(await api.close(idB)).toBe(true);
    expect(await closed).toBe(1000);
    expect(await api.exists(idB)).toBe(false);
    expect(await api.post(idB, 'late')).toBe(false);
    expect(await api.close(idB)).toBe(false);
    expect(await api.post('AAAAAAAAAAAAAAA=', 'x')).toBe(false);
  });

  it('answers every call as the SDK client does: 200, 410, 413 and the missing stage', async () => {
    const { gw, ids } = await gatewayWith(1);
    const id = ids[0] ?? '';
    const outcome = (p: Promise<boolean>) =>
      p.then(
        (ok) => ({ ok }),
        (err: Error & { $metadata?: { httpStatusCode?: number } }) => ({
          error: err.name,
          status: err.$metadata?.httpStatusCode,
        }),
      );
    const run = async (api: ConnectionsApi, bad: ConnectionsApi) => [
      await outcome(api.post(id, 'x')),
      await outcome(api.exists(id)),
      await outcome(api.post(id, 'x'.repeat(128 * 1024 + 1))),
      await outcome(api.post('AAAAAAAAAAAAAAA=', 'x')),
      await outcome(api.exists('AAAAAAAAAAAAAAA=')),
      await outcome(bad.post(id, 'x')),
    ];
    const noStage = `http://127.0.0.1:${gw.port}`;
    const ours = await run(lean(gw.managementEndpoint), lean(noStage));
    const theirs = await run(sdk(gw.managementEndpoint), sdk(noStage));
    expect(ours).toEqual(theirs);
    expect(ours).toEqual([
      { ok: true },
      { ok: true },
      { error: 'PayloadTooLargeException', status: 413 },
      { ok: false },
      { ok: false },
      { error: 'ForbiddenException', status: 403 },
    ]);
  });

  it('keeps its sockets: a thousand posts, 16 at a time, open at most 16 connections', async () => {
    const { url, seen } = await standIn(cleanups, (_req, _body, res) => {
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
    const api = lean(`${url}/prod`);
    const ids = Array.from({ length: 1000 }, (_, i) => `c${i}=`);
    for (let i = 0; i < ids.length; i += 16)
      await Promise.all(ids.slice(i, i + 16).map((id) => api.post(id, 'm')));
    expect(seen).toHaveLength(1000);
    expect(new Set(seen.map((s) => s.req.socket.remotePort)).size).toBeLessThanOrEqual(16);
  });
});

describe('the signature', () => {
  it('signs SigV4 for execute-api that a verifier written from the AWS documentation accepts', async () => {
    const { url, seen } = await standIn(cleanups, (_req, _body, res) => {
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
    const credentials = {
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG',
      sessionToken: 'FQo//tok=',
    };
    const api = lean(`${url}/prod/`, { region: 'eu-west-1', credentials });
    const id = "L0SM9cOFvHcCIhw=/(x)*'!";
    expect(await api.post(id, '{"type":"message","text":"héllo"}')).toBe(true);
    expect(await api.exists(id)).toBe(true);
    expect(await api.close(id)).toBe(true);
    expect(seen.map((s) => `${s.req.method} ${s.req.url}`)).toEqual(
      ['POST', 'GET', 'DELETE'].map((m) => `${m} /prod/@connections/L0SM9cOFvHcCIhw%3D%2F%28x%29%2A%27%21`),
    );
    for (const { req, body } of seen) {
      expect(String(req.headers.authorization)).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*\bhost\b[^,]*, Signature=/,
      );
      expect(String(req.headers.authorization)).toMatch(/SignedHeaders=[^,]*x-amz-security-token/);
      expect(req.headers['x-amz-security-token']).toBe('FQo//tok=');
      expect(signatureOf(req)).toBe(expectedSignature(req, body, credentials.secretAccessKey));
      // The same request under another secret would not verify.
      expect(signatureOf(req)).not.toBe(expectedSignature(req, body, 'another-secret'));
    }
    expect(seen[0]?.body.toString('utf8')).toBe('{"type":"message","text":"héllo"}');
    expect(seen[0]?.req.headers['content-length']).toBe(
      String(Buffer.byteLength('{"type":"message","text":"héllo"}')),
    );
  });

  it('takes credentials and the region from the Lambda environment, and refuses to start without them', () => {
    expect(
      credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 's', AWS_SESSION_TOKEN: 't' }),
    ).toEqual({ accessKeyId: 'AKID', secretAccessKey: 's', sessionToken: 't' });
    expect(
      credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 's' }).sessionToken,
    ).toBeUndefined();
    expect(() => credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'AKID' })).toThrow(/AWS_SECRET_ACCESS_KEY/);
    expect(() => credentialsFromEnv({})).toThrow(/AWS_ACCESS_KEY_ID/);
    expect(regionOfEndpoint('https://abc123.execute-api.eu-west-1.amazonaws.com/prod')).toBe('eu-west-1');
    expect(regionOfEndpoint('https://ws.example.com/prod')).toBeUndefined();
  });
});

describe('refusals', () => {
  const cases: [string, number, Record<string, string>, string][] = [
    [
      'a throttled post',
      429,
      { 'x-amzn-ErrorType': 'LimitExceededException:http://internal.amazon.com/coral/' },
      'LimitExceededException',
    ],
    ['a throttled post without an error type', 429, {}, 'LimitExceededException'],
    [
      'a payload over the limit',
      413,
      { 'x-amzn-ErrorType': 'PayloadTooLargeException' },
      'PayloadTooLargeException',
    ],
    [
      'a server error',
      500,
      { 'x-amzn-ErrorType': 'InternalServerErrorException' },
      'InternalServerErrorException',
    ],
    ['a bare 503', 503, {}, 'InternalServerErrorException'],
    ['a forbidden call', 403, {}, 'ForbiddenException'],
    ['a hostile error type', 400, { 'x-amzn-ErrorType': '<script>alert(1)</script>' }, 'BadRequestException'],
  ];
  for (const [what, status, headers, name] of cases) {
    it(`throws ${name} for ${what}, with the status the SDK reports`, async () => {
      const { url } = await standIn(cleanups, (_req, _body, res) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify({ message: 'refused' }));
      });
      const error = await lean(`${url}/prod`)
        .post('c1=', 'm')
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionsApiError);
      expect(error).toMatchObject({
        name,
        statusCode: status,
        $metadata: { httpStatusCode: status },
        $fault: status >= 500 ? 'server' : 'client',
        message: 'refused',
      });
    });
  }

  it('fails a request that gets no answer in time with TimeoutError', async () => {
    const { url } = await standIn(cleanups, () => {});
    const error = await lean(`${url}/prod`, { timeoutMs: 100 })
      .post('c1=', 'm')
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe('TimeoutError');
  });

  it('sends once more, on a fresh socket, a request whose kept-alive socket the server had closed', async () => {
    let served = 0;
    const { url, seen } = await standIn(cleanups, (_req, _body, res, socket) => {
      served++;
      // The second request on the first socket finds it closed, as after a Lambda freeze.
      if (served === 2) {
        socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
    const api = lean(`${url}/prod`);
    expect(await api.post('c1=', 'one')).toBe(true);
    expect(await api.post('c2=', 'two')).toBe(true);
    expect(seen.map((s) => s.body.toString())).toEqual(['one', 'two', 'two']);
    expect(seen[2]?.req.socket.remotePort).not.toBe(seen[0]?.req.socket.remotePort);
  });

  it('does not resend over a fresh socket that fails: the caller decides', async () => {
    const { url, seen } = await standIn(cleanups, (_req, _body, _res, socket) => socket.destroy());
    const error = await lean(`${url}/prod`)
      .post('c1=', 'm')
      .catch((e: unknown) => e);
    expect((error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    expect(seen).toHaveLength(1);
  });
});
