import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, type TestSystem } from '../kit/system.ts';

/** A minimal OIDC issuer on loopback: discovery, JWKS, and ID tokens signed with its key. */
async function startIssuer() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'issuer-key-1', alg: 'ES256', use: 'sig' };
  let up = true;
  const server: Server = createServer((req, res) => {
    if (!up) {
      res.writeHead(503).end();
      return;
    }
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url === '/.well-known/openid-configuration') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks` }));
    } else if (req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const idToken = async (
    claims: Record<string, unknown>,
    options: { iss?: string; aud?: string; expS?: number; key?: CryptoKey; iat?: number } = {},
  ) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'issuer-key-1' })
      .setIssuer(options.iss ?? url)
      .setAudience(options.aud ?? 'our-client-id')
      .setIssuedAt(options.iat)
      .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expS ?? 300))
      .sign(options.key ?? privateKey);
  return {
    url,
    idToken,
    setUp: (value: boolean) => {
      up = value;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let issuer: Awaited<ReturnType<typeof startIssuer>>;
let system: TestSystem;

beforeAll(async () => {
  issuer = await startIssuer();
  system = await startTestSystem({ OIDC_ISSUER: issuer.url, OIDC_AUDIENCE: 'our-client-id' });
});
afterAll(async () => {
  await system.close();
  await issuer.close();
});

const exchange = (id_token: unknown) =>
  system.request('POST', '/auth/token-exchange', { body: { id_token } });

describe('POST /auth/token-exchange', () => {
  it('creates the user on first exchange, named after preferred_username, and finds it again by issuer and subject', async () => {
    const first = await exchange(await issuer.idToken({ sub: 'ext-1', preferred_username: 'Carol' }));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      token_type: 'Bearer',
      expires_in: 900,
      refresh_token: expect.any(String),
    });
    const me = await system.request('GET', '/auth/me', { token: first.body.access_token as string });
    expect(me.body).toMatchObject({ username: 'carol', roles: ['user'] });

    // A new preferred_username later does not rename or duplicate the user.
    const again = await exchange(await issuer.idToken({ sub: 'ext-1', preferred_username: 'somebody_else' }));
    const me2 = await system.request('GET', '/auth/me', { token: again.body.access_token as string });
    expect(me2.body).toMatchObject({ username: 'carol', sub: me.body.sub });
  });

  it('generates a name when preferred_username is taken or invalid', async () => {
    await system.request('POST', '/auth/register', {
      body: { username: 'dora', password: 'a long enough password' },
    });
    for (const [sub, preferred] of [
      ['ext-2', 'dora'],
      ['ext-3', 'no spaces allowed'],
      ['ext-4', undefined],
    ] as const) {
      const res = await exchange(
        await issuer.idToken({ sub, ...(preferred ? { preferred_username: preferred } : {}) }),
      );
      expect(res.status).toBe(200);
      const me = await system.request('GET', '/auth/me', { token: res.body.access_token as string });
      expect(me.body.username).toMatch(/^user-[0-9a-f]{10}$/);
    }
  });

  it('refuses a password login for an exchanged user', async () => {
    await exchange(await issuer.idToken({ sub: 'ext-5', preferred_username: 'erin_oidc' }));
    const res = await system.request('POST', '/auth/login', {
      body: { username: 'erin_oidc', password: 'anything at all here' },
    });
    expect(res.status).toBe(401);
  });

  it('refuses bad ID tokens with 401 invalid_token', async () => {
    const { privateKey: otherKey } = await generateKeyPair('ES256');
    const bad: [string, string | unknown][] = [
      ['another audience', await issuer.idToken({ sub: 'x' }, { aud: 'someone-else' })],
      ['another issuer', await issuer.idToken({ sub: 'x' }, { iss: 'https://evil.example' })],
      ['an expired token', await issuer.idToken({ sub: 'x' }, { expS: -120 })],
      ['a signature by another key', await issuer.idToken({ sub: 'x' }, { key: otherKey })],
      [
        'an HS256 token',
        await new SignJWT({ sub: 'x' })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer(issuer.url)
          .setAudience('our-client-id')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode('x'.repeat(32))),
      ],
      ['garbage', 'not.a.token'],
      ['a number', 42],
    ];
    for (const [name, token] of bad) {
      const res = await exchange(token);
      expect(res.status, name).toBe(401);
      expect(res.body.error, name).toBe('invalid_token');
    }
  });

  it('refuses an ID token issued in the future, beyond clockSkewS', async () => {
    const now = Math.floor(Date.now() / 1000);
    const yearAhead = await issuer.idToken(
      { sub: 'future' },
      { iat: now + 365 * 86_400, expS: 366 * 86_400 },
    );
    const res = await exchange(yearAhead);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
    const minuteAhead = await issuer.idToken({ sub: 'future' }, { iat: now + 60 });
    expect((await exchange(minuteAhead)).status).toBe(401);
    // Within the allowed skew (30 s) it passes.
    const skewed = await issuer.idToken({ sub: 'future' }, { iat: now + 10 });
    expect((await exchange(skewed)).status).toBe(200);
  });

  it('exchanges an ID token once: a replay, even racing, gets 401', async () => {
    const token = await issuer.idToken({ sub: 'replayed', preferred_username: 'once_only' });
    const first = await Promise.all(Array.from({ length: 5 }, () => exchange(token)));
    expect(first.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401]);
    const again = await exchange(token);
    expect(again.status).toBe(401);
    expect(again.body).toMatchObject({ error: 'invalid_token', message: expect.stringMatching(/already/) });
    // A fresh token of the same subject is fine.
    expect((await exchange(await issuer.idToken({ sub: 'replayed' }))).status).toBe(200);
  });

  it('refuses a replay whose ECDSA signature was re-encoded (s -> n - s), which still verifies', async () => {
    const token = await issuer.idToken({ sub: 'malleable' });
    expect((await exchange(token)).status).toBe(200);
    const [head, payload, sig = ''] = token.split('.');
    const raw = Buffer.from(sig, 'base64url');
    // The order of P-256: (r, n - s) is a second valid signature of the same bytes.
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const sValue = BigInt(`0x${raw.subarray(32).toString('hex')}`);
    const flipped = Buffer.concat([
      raw.subarray(0, 32),
      Buffer.from((n - sValue).toString(16).padStart(64, '0'), 'hex'),
    ]);
    const twin = `${head}.${payload}.${flipped.toString('base64url')}`;
    expect(twin).not.toBe(token);
    const res = await exchange(twin);
    expect(res.status).toBe(401);
    expect(res.body.message).toMatch(/already/);
  });

  it('refuses a second token carrying the jti of one already exchanged', async () => {
    const jti = 'idp-jti-42';
    expect((await exchange(await issuer.idToken({ sub: 'jti-user', jti }))).status).toBe(200);
    const sameJti = await issuer.idToken({ sub: 'jti-user', jti, nonce: 'different' });
    expect((await exchange(sameJti)).status).toBe(401);
  });

  it('answers 503 when the issuer cannot be reached for its keys', async () => {
    const lonely = await startTestSystem({ OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_AUDIENCE: 'x' });
    try {
      const res = await lonely.request('POST', '/auth/token-exchange', {
        body: { id_token: await issuer.idToken({ sub: 'x' }) },
      });
      expect(res.status).toBe(503);
    } finally {
      await lonely.close();
    }
  });
});

describe('without an OIDC issuer', () => {
  it('answers 404', async () => {
    const plain = await startTestSystem();
    try {
      const res = await plain.request('POST', '/auth/token-exchange', { body: { id_token: 'a.b.c' } });
      expect(res.status).toBe(404);
      expect(res.body.error).toBe('not_found');
    } finally {
      await plain.close();
    }
  });
});
