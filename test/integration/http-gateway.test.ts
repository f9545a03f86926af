import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORS } from '../../lambdas/edge/cors.ts';
import { FUNCTIONS } from '../../lambdas/functions.ts';
import { makeUserBlockHandler } from '../../lambdas/http-admin-user-block.ts';
import { startHttpGateway } from '../../local/http-gateway.ts';
import { loginWithRoles, startTestSystem, type TestSystem } from '../kit/system.ts';

let system: TestSystem;
let admin: string;

beforeAll(async () => {
  system = await startTestSystem({}, undefined, { sweeperTimer: false });
  admin = await loginWithRoles(system, 'hdr_admin', ['admin']);
});
afterAll(async () => {
  await system.close();
});

/** Every route key of the manifest with its parameters filled in. */
const ROUTES = FUNCTIONS.flatMap((fn) => fn.httpRoutes ?? []).map((key) => {
  const [method = '', path = ''] = key.split(' ');
  return {
    key,
    method,
    path: path.replace(/\{(\w+)\}/g, (_, name: string) => (name === 'ip' ? '10.9.9.9' : 'x')),
  };
});

describe('X-Content-Type-Options: nosniff on every response', () => {
  it('covers every route of the manifest, with and without a token, success and failure alike', async () => {
    expect(ROUTES.length).toBeGreaterThan(10);
    const seen = new Set<number>();
    for (const { key, method, path } of ROUTES) {
      for (const token of [undefined, admin]) {
        const res = await system.request(method, path, {
          ...(token ? { token } : {}),
          ...(method === 'GET' || method === 'DELETE' ? {} : { body: { duration_s: 60, text: 'hi' } }),
        });
        seen.add(res.status);
        expect(res.headers.get('x-content-type-options'), `${key} -> ${res.status}`).toBe('nosniff');
      }
    }
    // Successes (200, 202, 204) and refusals (400, 401, 404) were all looked at.
    for (const status of [200, 204, 400, 401, 404]) expect(seen).toContain(status);
  });

  it('is on GET /health', async () => {
    const res = await system.request('GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it("is on the gateway's own answers: no route, a CORS preflight, the demo page", async () => {
    const missing = await system.request('GET', '/no/such/route');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-content-type-options')).toBe('nosniff');
    const preflight = await system.request('OPTIONS', '/auth/login', {
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('answers CORS with the rules the stack gives API Gateway', async () => {
    const origin = { origin: 'http://localhost:3000' };
    const preflight = await system.request('OPTIONS', '/auth/login', {
      headers: { ...origin, 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBe(origin.origin);
    expect(preflight.headers.get('access-control-allow-methods')).toBe(CORS.allowMethods.join(','));
    expect(preflight.headers.get('access-control-max-age')).toBe(String(CORS.maxAgeS));
    const health = await system.request('GET', '/health', { headers: origin });
    expect(health.headers.get('access-control-expose-headers')).toBe('retry-after');
  });
});

describe('paths that do not percent-decode', () => {
  const BAD = ['%E0%A4%A', '%', '%zz', '%ff', 'ab%2', '%C3%28'];

  for (const bad of BAD) {
    it(`answers 400 invalid_request for ${JSON.stringify(bad)} in a path parameter, without a token`, async () => {
      for (const path of [
        `/admin/users/${bad}/block`,
        `/admin/ips/${bad}/block`,
        `/admin/rooms/${bad}/messages`,
      ]) {
        const res = await system.request('POST', path, { body: {} });
        expect(res.status, path).toBe(400);
        expect(res.body.error).toBe('invalid_request');
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      }
    });
  }

  it('is refused by the function itself too, as on AWS where the event may carry the raw path', async () => {
    const handler = makeUserBlockHandler(system.deps);
    const event = {
      version: '2.0',
      routeKey: 'POST /admin/users/{username}/block',
      rawPath: '/admin/users/%zz/block',
      rawQueryString: '',
      headers: {},
      pathParameters: { username: '%zz' },
      requestContext: { http: { method: 'POST', path: '/admin/users/%zz/block', sourceIp: '10.1.2.3' } },
      isBase64Encoded: false,
    } as unknown as Parameters<typeof handler>[0];
    const res = await handler(event);
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body ?? '{}')).toMatchObject({ error: 'invalid_request' });
    expect(res.headers?.['x-content-type-options']).toBe('nosniff');
  });

  it('refuses before any handler runs, and the gateway lives on', async () => {
    let calls = 0;
    const gw = await startHttpGateway({
      routes: [
        {
          routeKey: 'POST /things/{id}',
          handler: async () => {
            calls++;
            return { statusCode: 204 };
          },
        },
      ],
    });
    try {
      for (const bad of BAD) {
        const res = await fetch(`${gw.url}/things/${bad}`, { method: 'POST' });
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ error: 'invalid_request' });
      }
      expect(calls).toBe(0);
      const good = await fetch(`${gw.url}/things/a%20b`, { method: 'POST' });
      expect(good.status).toBe(204);
      expect(calls).toBe(1);
    } finally {
      await gw.close();
    }
  });
});
