import { createHmac, createPublicKey, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { domainToASCII } from 'node:url';
import { type CryptoKey, decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blockId, putBlock, removeBlock } from '../../lambdas/core/access.ts';
import { nowS } from '../../lambdas/core/clock.ts';
import { allSocketRows, putSocketRow } from '../../lambdas/core/socket-rows.ts';
import { releaseSlots, slotHolders, takeSlot } from '../../lambdas/core/socket-slots.ts';
import { issueAccessToken, issueTicket } from '../../lambdas/core/tokens.ts';
import { encodePart, signEd25519 } from '../kit/forge.ts';
import {
  claimsOfToken,
  registerAndLogin,
  startTestSystem,
  startWsTestSystem,
  type TestSystem,
} from '../kit/system.ts';
import { until } from '../kit/wait.ts';
import {
  ALLOWED_ORIGIN,
  type Client,
  type OpenOptions,
  openClient,
  type Refused,
  refusalStatus,
  terminateAll,
} from '../kit/ws-client.ts';

let system: TestSystem;
let alice: { token: string; sub: string; username: string; sid: string };
/** Every token handed out in this file: none may ever reach an audit line. */
const tokens: string[] = [];

beforeAll(async () => {
  // Many sockets of one user here: the per-user frame limit is not what this file tests.
  system = await startWsTestSystem();
  const pair = await registerAndLogin(system, 'alice');
  const claims = decodeJwt(pair.access_token);
  alice = {
    token: pair.access_token,
    sub: String(claims.sub),
    username: 'alice',
    sid: String(claims.sid),
  };
  tokens.push(pair.access_token, pair.refresh_token);
});
afterEach(() => terminateAll());
afterAll(async () => {
  await system.close();
});

/** The `ws.denied` reasons written while `run` ran. */
async function deniedReasons(run: () => Promise<unknown>): Promise<unknown[]> {
  const before = system.audit.length;
  await run();
  return system.audit
    .slice(before)
    .filter((l) => l.event === 'ws.denied')
    .map((l) => l.reason);
}

/** Asserts a handshake is refused with `status` and audited as `ws.denied` with `reason`. */
async function expectRefused(options: OpenOptions, status: number, reason: string): Promise<void> {
  let got = 0;
  const reasons = await deniedReasons(async () => {
    got = await refusalStatus(system.wsUrl, options);
  });
  expect(got).toBe(status);
  expect(reasons).toEqual([reason]);
}

async function expectOpens(options: OpenOptions): Promise<void> {
  const client = await openClient(system.wsUrl, options);
  const identity = await client.request({ type: 'whoami' });
  expect(identity).toMatchObject({ type: 'identity', username: 'alice' });
  await client.close();
}

describe('connecting with an access token', () => {
  it('accepts the token as subprotocol `jwt, <token>` and answers exactly `jwt`, never the token', async () => {
    const client = await openClient(system.wsUrl, { protocols: ['jwt', alice.token] });
    expect(client.protocol).toBe('jwt');
    expect(client.upgradeHeaders['sec-websocket-protocol']).toBe('jwt');
    expect(JSON.stringify(client.upgradeHeaders)).not.toContain(alice.token);
    expect(await client.request({ type: 'whoami' })).toMatchObject({ type: 'identity', sub: alice.sub });
    expect(system.audit.some((l) => l.event === 'ws.connect' && l.username === 'alice')).toBe(true);
    await client.close();
    await until('a ws.disconnect line', () =>
      system.audit.some((l) => l.event === 'ws.disconnect' && l.username === 'alice'),
    );
  });

  it('accepts the token in the query string `?token=` and selects no subprotocol', async () => {
    const client = await openClient(system.wsUrl, { query: { token: alice.token } });
    expect(client.protocol).toBe('');
    expect(client.upgradeHeaders['sec-websocket-protocol']).toBeUndefined();
    expect(await client.request({ type: 'whoami' })).toMatchObject({ sub: alice.sub });
    await client.close();
  });

  it('accepts `Authorization: Bearer` from a client that sends an allowed Origin', async () => {
    await expectOpens({ headers: { Authorization: `Bearer ${alice.token}` } });
  });

  it('reads the Origin and Authorization headers whatever the case of their names', async () => {
    await expectOpens({
      origin: null,
      headers: { ORIGIN: ALLOWED_ORIGIN, aUtHoRiZaTiOn: `bearer ${alice.token}` },
    });
  });

  it('accepts a single-use ticket `?ticket=` once, and refuses it the second time with 401', async () => {
    const { ticket } = await issueTicket(system.deps, claimsOfToken(alice.token));
    tokens.push(ticket);
    await expectOpens({ query: { ticket } });
    await expectRefused({ query: { ticket } }, 401, 'ticket_used');
  });

  it('refuses a ticket given as a token, and an access token given as a ticket, with 401', async () => {
    const { ticket } = await issueTicket(system.deps, claimsOfToken(alice.token));
    tokens.push(ticket);
    await expectRefused({ query: { token: ticket } }, 401, 'invalid_token');
    await expectRefused({ query: { ticket: alice.token } }, 401, 'invalid_token');
  });

  describe('takes the first credential in the order subprotocol, query, header', () => {
    it('refuses a bad subprotocol token even with a good query token (401)', async () => {
      await expectRefused(
        { protocols: ['jwt', 'not.a.token'], query: { token: alice.token } },
        401,
        'invalid_token',
      );
    });
    it('accepts a good subprotocol token over a bad query token', async () => {
      await expectOpens({ protocols: ['jwt', alice.token], query: { token: 'garbage' } });
    });
    it('refuses a bad query token even with a good Authorization header (401)', async () => {
      await expectRefused(
        { query: { token: 'garbage' }, headers: { Authorization: `Bearer ${alice.token}` } },
        401,
        'invalid_token',
      );
    });
    it('accepts a good query token over a bad Authorization header', async () => {
      await expectOpens({ query: { token: alice.token }, headers: { Authorization: 'Bearer garbage' } });
    });
    it('refuses a bad subprotocol token even with a good Authorization header (401)', async () => {
      await expectRefused(
        { protocols: ['jwt', 'garbage'], headers: { Authorization: `Bearer ${alice.token}` } },
        401,
        'invalid_token',
      );
    });
  });
});

describe('refusing a handshake with 401', () => {
  it('refuses a handshake without any token', async () => {
    await expectRefused({}, 401, 'missing_token');
  });

  it('refuses the `jwt` subprotocol offered without a token', async () => {
    await expectRefused({ protocols: ['jwt'] }, 401, 'missing_token');
  });

  const malformed: [string, (token: string) => OpenOptions][] = [
    ['an empty query token', () => ({ query: { token: '' } })],
    ['a query token that is not a JWT', () => ({ query: { token: 'hello' } })],
    ['three dots of nothing', () => ({ query: { token: 'a.b.c' } })],
    ['a subprotocol token that is not a JWT', () => ({ protocols: ['jwt', 'abc'] })],
    ['an Authorization header of another scheme', (t) => ({ headers: { Authorization: `Basic ${t}` } })],
    ['an Authorization header without a token', () => ({ headers: { Authorization: 'Bearer' } })],
    ['two query tokens, even good ones', (t) => ({ query: { token: [t, t] } })],
    [
      'two Authorization headers, even good ones',
      (t) => ({ headers: { Authorization: [`Bearer ${t}`, `Bearer ${t}`] } }),
    ],
  ];
  for (const [name, options] of malformed) {
    it(`refuses ${name}`, async () => {
      await expectRefused(options(alice.token), 401, 'invalid_token');
    });
  }

  it('refuses a forged token (our claims, another key, no kid of ours)', async () => {
    const foreign = await foreignKey();
    const token = await signEd25519(
      foreign.privateKey,
      { alg: 'EdDSA', typ: 'at+jwt', kid: foreign.kid },
      goodClaims(),
    );
    await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
  });

  it('refuses a revoked token (after POST /auth/logout)', async () => {
    const login = await system.request('POST', '/auth/login', {
      body: { username: 'alice', password: 'correct horse battery staple' },
    });
    const token = String(login.body.access_token);
    tokens.push(token, String(login.body.refresh_token));
    await expectOpens({ protocols: ['jwt', token] });
    expect((await system.request('POST', '/auth/logout', { token })).status).toBe(204);
    await expectRefused({ protocols: ['jwt', token] }, 401, 'revoked');
  });
});

describe('refusing a handshake with 403', () => {
  it('refuses a blocked user, and lets the user in again once the block is lifted', async () => {
    const bob = await registerAndLogin(system, 'bob_blocked');
    tokens.push(bob.access_token, bob.refresh_token);
    await putBlock(system.deps, blockId.user('bob_blocked'), 3600, 'test', 'test');
    await expectRefused({ protocols: ['jwt', bob.access_token] }, 403, 'blocked_user');
    // A block from the past no longer counts (DynamoDB TTL is late, so expiry is checked on read).
    await putBlock(system.deps, blockId.user('bob_blocked'), -1, 'test', 'test');
    const client = await openClient(system.wsUrl, { protocols: ['jwt', bob.access_token] });
    await client.close();
  });

  it('refuses a blocked IP, and lets it in again once unblocked', async () => {
    await putBlock(system.deps, blockId.ip('127.0.0.1'), 600, 'test', 'test');
    try {
      await expectRefused({ protocols: ['jwt', alice.token] }, 403, 'blocked_ip');
    } finally {
      await removeBlock(system.deps, blockId.ip('127.0.0.1'));
    }
    await expectOpens({ protocols: ['jwt', alice.token] });
  });

  it('refuses a token of ours that lacks the `user` role', async () => {
    const { token } = await issueAccessToken(system.deps, {
      sub: alice.sub,
      username: 'alice',
      roles: ['admin'],
      sid: alice.sid,
    });
    tokens.push(token);
    await expectRefused({ protocols: ['jwt', token] }, 403, 'no_role');
  });

  it('accepts a token of ours signed the same way with the `user` role (control for the test above)', async () => {
    const { token } = await issueAccessToken(system.deps, {
      sub: alice.sub,
      username: 'alice',
      roles: ['user', 'admin'],
      sid: alice.sid,
    });
    tokens.push(token);
    await expectOpens({ protocols: ['jwt', token] });
  });

  it('refuses a request without Origin (allowMissingOrigin is off)', async () => {
    await expectRefused({ origin: null, protocols: ['jwt', alice.token] }, 403, 'origin');
    await expectRefused({ origin: null, headers: { Authorization: `Bearer ${alice.token}` } }, 403, 'origin');
  });

  it('refuses two Origin headers, even if both are allowed', async () => {
    await expectRefused(
      {
        origin: null,
        protocols: ['jwt', alice.token],
        headers: { Origin: [ALLOWED_ORIGIN, ALLOWED_ORIGIN] },
      },
      403,
      'origin',
    );
  });

  it('refuses one Origin header holding two allowed origins', async () => {
    await expectRefused(
      { origin: `${ALLOWED_ORIGIN}, http://127.0.0.1:3000`, protocols: ['jwt', alice.token] },
      403,
      'origin',
    );
  });

  it('checks the Origin before the token: a foreign page learns nothing about a bad token', async () => {
    await expectRefused({ origin: 'https://evil.example', protocols: ['jwt', 'garbage'] }, 403, 'origin');
  });

  const lookAlike = 'http://l\u043ecalhost:3000'; // Cyrillic "о"
  const foreignOrigins: [string, string][] = [
    ['a suffix host', 'http://localhost:3000.evil.com'],
    ['a suffix domain', 'http://localhost.evil.com:3000'],
    ['a prefix host', 'http://evillocalhost:3000'],
    ['a sub-domain', 'http://a.localhost:3000'],
    ['another port', 'http://localhost:3001'],
    ['no port', 'http://localhost'],
    ['another scheme', 'https://localhost:3000'],
    ['the string null', 'null'],
    ['a trailing slash', 'http://localhost:3000/'],
    ['a path', 'http://localhost:3000/app'],
    ['user-info', 'http://alice@localhost:3000'],
    ['a trailing dot', 'http://localhost.:3000'],
    ['an IPv6 loopback', 'http://[::1]:3000'],
    ['a Cyrillic look-alike sent as UTF-8 bytes', Buffer.from(lookAlike, 'utf8').toString('latin1')],
    ['a Cyrillic look-alike as punycode', `http://${domainToASCII('l\u043ecalhost')}:3000`],
    ['a file origin', 'file://'],
  ];
  for (const [name, origin] of foreignOrigins) {
    it(`refuses an Origin with ${name} (${JSON.stringify(origin)})`, async () => {
      await expectRefused({ origin, protocols: ['jwt', alice.token] }, 403, 'origin');
    });
  }

  it('accepts the upper-case host of an allowed origin (hosts compare case-insensitively)', async () => {
    await expectOpens({ origin: 'http://LOCALHOST:3000', protocols: ['jwt', alice.token] });
  });

  it('accepts the second default origin http://127.0.0.1:3000', async () => {
    await expectOpens({ origin: 'http://127.0.0.1:3000', protocols: ['jwt', alice.token] });
  });
});

describe('verifier attacks through the handshake (all 401)', () => {
  it('accepts a token crafted here with our key and exactly our header and claims (control)', async () => {
    const token = await signEd25519(await ourPrivateKey(), await ourHeader(), goodClaims());
    tokens.push(token);
    await expectOpens({ protocols: ['jwt', token] });
  });

  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    it(`refuses alg "${alg}" with an empty signature`, async () => {
      const token = `${encodePart({ ...(await ourHeader()), alg })}.${encodePart(goodClaims())}.`;
      await expectRefused({ query: { token } }, 401, 'invalid_token');
    });
  }

  it('refuses alg "none" that keeps a real signature', async () => {
    const real = await signEd25519(await ourPrivateKey(), await ourHeader(), goodClaims());
    const [, payload, sig] = real.split('.');
    const token = `${encodePart({ ...(await ourHeader()), alg: 'none' })}.${payload}.${sig}`;
    await expectRefused({ query: { token } }, 401, 'invalid_token');
  });

  it('refuses HS256 signed with our public key bytes, in every form it is published', async () => {
    const jwk = await ourPublicJwk();
    const jwks = await system.request('GET', '/.well-known/jwks.json');
    const pem = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const secrets: Buffer[] = [
      Buffer.from(String(jwk.x), 'base64url'),
      Buffer.from(String(jwk.x)),
      Buffer.from(JSON.stringify(jwk)),
      Buffer.from(jwks.text),
      Buffer.from(pem),
    ];
    for (const secret of secrets) {
      for (const alg of ['HS256', 'HS512']) {
        const header = { ...(await ourHeader()), alg };
        const input = `${encodePart(header)}.${encodePart(goodClaims())}`;
        const hash = alg === 'HS256' ? 'sha256' : 'sha512';
        const token = `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
        await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
      }
    }
  });

  it('refuses a token signed with a foreign Ed25519 key under our kid', async () => {
    const foreign = await foreignKey();
    const token = await signEd25519(foreign.privateKey, await ourHeader(), goodClaims());
    await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
  });

  it('refuses a token that embeds its own key in a `jwk` header', async () => {
    const foreign = await foreignKey();
    for (const kid of [foreign.kid, (await ourHeader()).kid]) {
      const header = { alg: 'EdDSA', typ: 'at+jwt', kid, jwk: foreign.publicJwk };
      const token = await signEd25519(foreign.privateKey, header, goodClaims());
      await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
    }
  });

  it('refuses `jku` and `x5u` headers and never fetches them', async () => {
    const foreign = await foreignKey();
    const hits: string[] = [];
    const server: Server = createServer((req, res) => {
      hits.push(req.url ?? '');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [foreign.publicJwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    try {
      for (const extra of [{ jku: url }, { x5u: url }, { jku: url, kid: foreign.kid }]) {
        const header = { ...(await ourHeader()), ...extra };
        const token = await signEd25519(foreign.privateKey, header, goodClaims());
        await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
      }
      expect(hits).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  const injectedKids = ['../../../../../../dev/null', "x' OR '1'='1", '*', '', '{"kid":1}', '%00'];
  for (const kid of injectedKids) {
    it(`refuses kid injection ${JSON.stringify(kid)} (foreign key, empty HMAC key, and our own key)`, async () => {
      const foreign = await foreignKey();
      const claims = goodClaims();
      const withForeign = await signEd25519(foreign.privateKey, { alg: 'EdDSA', typ: 'at+jwt', kid }, claims);
      const hsInput = `${encodePart({ alg: 'HS256', typ: 'at+jwt', kid })}.${encodePart(claims)}`;
      const withEmptyHmac = `${hsInput}.${createHmac('sha256', '').update(hsInput).digest('base64url')}`;
      // Even our own key under a kid we never published: the kid picks the key, and none matches.
      const withOurs = await signEd25519(await ourPrivateKey(), { alg: 'EdDSA', typ: 'at+jwt', kid }, claims);
      for (const token of [withForeign, withEmptyHmac, withOurs]) {
        await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
      }
    });
  }

  it('refuses an unknown `crit` header, even signed with our key', async () => {
    const header = { ...(await ourHeader()), crit: ['x-policy'], 'x-policy': 'anything' };
    const token = await signEd25519(await ourPrivateKey(), header, goodClaims());
    await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
  });

  const tampering: [string, (c: Record<string, unknown>) => Record<string, unknown>][] = [
    ['an added role', (c) => ({ ...c, roles: ['user', 'admin'] })],
    ['another sub', (c) => ({ ...c, sub: 'someone-else' })],
    ['another username', (c) => ({ ...c, username: 'mallory' })],
    ['a later exp', (c) => ({ ...c, exp: Number(c.exp) + 3600 })],
  ];
  for (const [name, tamper] of tampering) {
    it(`refuses a real token whose claims were tampered with: ${name}`, async () => {
      const [header, payload, sig] = alice.token.split('.');
      const claims = JSON.parse(Buffer.from(String(payload), 'base64url').toString()) as Record<
        string,
        unknown
      >;
      const token = `${header}.${encodePart(tamper(claims))}.${sig}`;
      await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
    });
  }

  it('refuses a token whose header was tampered with (kid swapped, signature kept)', async () => {
    const [, payload, sig] = alice.token.split('.');
    const token = `${encodePart({ alg: 'EdDSA', typ: 'at+jwt', kid: 'other' })}.${payload}.${sig}`;
    await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
  });

  it('refuses a token with a flipped signature bit', async () => {
    const [header, payload, sig] = alice.token.split('.');
    const bytes = Buffer.from(String(sig), 'base64url');
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    const token = `${header}.${payload}.${bytes.toString('base64url')}`;
    await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
  });

  it('refuses a token from another deployment: its own key and kid, its own issuer and audience', async () => {
    const foreign = await foreignKey();
    const claims = { ...goodClaims(), iss: 'urn:jwt-realtime:other', aud: 'urn:jwt-realtime:other:clients' };
    const token = await signEd25519(
      foreign.privateKey,
      { alg: 'EdDSA', typ: 'at+jwt', kid: foreign.kid },
      claims,
    );
    await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
  });

  it('refuses a token signed with our key whose iat is older than the token lifetime (401 token_expired)', async () => {
    const claims = goodClaims();
    const token = await signEd25519(await ourPrivateKey(), await ourHeader(), {
      ...claims,
      iat: Number(claims.iat) - system.deps.settings.accessTokenTtlS - 3600,
    });
    await expectRefused({ protocols: ['jwt', token] }, 401, 'token_expired');
  });

  const wrongClaims: [string, (c: Record<string, unknown>) => Record<string, unknown>][] = [
    ['another issuer', (c) => ({ ...c, iss: 'urn:jwt-realtime:other' })],
    ['another audience', (c) => ({ ...c, aud: 'urn:jwt-realtime:other:clients' })],
    ['no exp', ({ exp: _exp, ...c }) => c],
    ['no jti', ({ jti: _jti, ...c }) => c],
    ['no sid', ({ sid: _sid, ...c }) => c],
    ['no iat', ({ iat: _iat, ...c }) => c],
    ['an iat in the future', (c) => ({ ...c, iat: Number(c.iat) + 3600, exp: Number(c.exp) + 3600 })],
    ['a sub of 200 characters', (c) => ({ ...c, sub: 'a'.repeat(200) })],
    ['a jti with a key separator', (c) => ({ ...c, jti: 'jti#x' })],
    ['roles that are a string', (c) => ({ ...c, roles: 'user' })],
  ];
  for (const [name, change] of wrongClaims) {
    it(`refuses a token signed with our key but with ${name}`, async () => {
      const token = await signEd25519(await ourPrivateKey(), await ourHeader(), change(goodClaims()));
      await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
    });
  }

  const wrongHeaders: [string, Record<string, unknown>][] = [
    ['no typ', { typ: undefined }],
    ['typ JWT', { typ: 'JWT' }],
    ['the ticket typ', { typ: 'wst+jwt' }],
    ['alg Ed25519 instead of the pinned EdDSA', { alg: 'Ed25519' }],
  ];
  for (const [name, change] of wrongHeaders) {
    it(`refuses a token signed with our key but with ${name} in its header`, async () => {
      const header = JSON.parse(JSON.stringify({ ...(await ourHeader()), ...change })) as Record<
        string,
        unknown
      >;
      const token = await signEd25519(await ourPrivateKey(), header, goodClaims());
      await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
    });
  }

  it('refuses a token longer than 4 KB, even one signed with our key', async () => {
    const token = await signEd25519(await ourPrivateKey(), await ourHeader(), {
      ...goodClaims(),
      pad: 'x'.repeat(4200),
    });
    expect(token.length).toBeGreaterThan(4096);
    await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
  });

  it('refuses five-part tokens (JWE-shaped)', async () => {
    for (const token of [
      `${alice.token}.AAAA.BBBB`,
      `${encodePart({ alg: 'dir', enc: 'A256GCM' })}..${encodePart('iv')}.${encodePart('ciphertext')}.${encodePart('tag')}`,
    ]) {
      await expectRefused({ protocols: ['jwt', token] }, 401, 'invalid_token');
    }
  });

  it('refuses a refresh token presented as an access token', async () => {
    const login = await system.request('POST', '/auth/login', {
      body: { username: 'alice', password: 'correct horse battery staple' },
    });
    tokens.push(String(login.body.access_token), String(login.body.refresh_token));
    const refresh = String(login.body.refresh_token);
    // A refresh token may hold characters a subprotocol cannot: send it where any string fits.
    await expectRefused({ headers: { Authorization: `Bearer ${refresh}` } }, 401, 'invalid_token');
  });
});

describe('with allowMissingOrigin', () => {
  let open: TestSystem;
  let token: string;
  beforeAll(async () => {
    open = await startTestSystem({ ALLOW_MISSING_ORIGIN: 'true' }, undefined, { sweeperTimer: false });
    token = (await registerAndLogin(open, 'carol')).access_token;
    tokens.push(token);
  });
  afterAll(async () => {
    await open.close();
  });

  it('accepts `Authorization: Bearer` from a non-browser client that sends no Origin', async () => {
    const client = await openClient(open.wsUrl, {
      origin: null,
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(await client.request({ type: 'whoami' })).toMatchObject({ username: 'carol' });
    await client.close();
  });

  it('still refuses an Origin outside the allowlist', async () => {
    expect(
      await refusalStatus(open.wsUrl, { origin: 'https://evil.example', protocols: ['jwt', token] }),
    ).toBe(403);
  });

  it('still refuses a request without Origin that has no token (401)', async () => {
    expect(await refusalStatus(open.wsUrl, { origin: null })).toBe(401);
  });
});

describe('maxConnectionsPerUser = 2', () => {
  let limited: TestSystem;
  let token: string;
  beforeAll(async () => {
    limited = await startTestSystem({ MAX_CONNECTIONS_PER_USER: '2' }, undefined, { sweeperTimer: false });
    token = (await registerAndLogin(limited, 'dave')).access_token;
    tokens.push(token);
  });
  afterAll(async () => {
    await limited.close();
  });

  it('refuses a third handshake with 403 (from $connect), and lets a new one in once a socket closes', async () => {
    const first = await openClient(limited.wsUrl, { protocols: ['jwt', token] });
    const second = await openClient(limited.wsUrl, { protocols: ['jwt', token] });
    const before = limited.audit.length;
    expect(await refusalStatus(limited.wsUrl, { protocols: ['jwt', token] })).toBe(403);
    expect(
      limited.audit.slice(before).some((l) => l.event === 'ws.denied' && l.reason === 'too_many_connections'),
    ).toBe(true);
    // The refused socket left no row behind: the two live ones still work.
    expect(await second.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    await first.close();
    const third = await openClient(limited.wsUrl, { protocols: ['jwt', token] });
    expect(await third.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    // And the limit holds again with two open.
    expect(await refusalStatus(limited.wsUrl, { protocols: ['jwt', token] })).toBe(403);
    await Promise.all([second.close(), third.close()]);
  });

  it('admits at most two of six overlapping handshakes, and every admitted socket works', async () => {
    const N = 6;
    // Make the six handshakes truly overlap, as under production latency: each $connect's lookup of
    // the user's sockets is held until all six have stored their rows (or 2 s have passed).
    let stored = 0;
    let lookups = 0;
    let release = () => {};
    const together = new Promise<void>((resolve) => {
      release = resolve;
    });
    const check = () => {
      if (stored >= N && lookups >= N) release();
    };
    const name = 'overlapHandshakes';
    limited.deps.db.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as {
          TableName?: string;
          IndexName?: string;
          Item?: { sk?: { S?: string } };
        };
        if (context.commandName === 'QueryCommand' && input.IndexName === 'byUser') {
          lookups++;
          check();
          await Promise.race([together, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
          return next(args);
        }
        const out = await next(args);
        const isSocketRow =
          context.commandName === 'PutItemCommand' &&
          input.TableName === limited.deps.tables.connections &&
          input.Item?.sk?.S === 'conn';
        if (isSocketRow) {
          stored++;
          check();
        }
        return out;
      },
      { step: 'initialize', name },
    );
    let attempts: PromiseSettledResult<Client>[];
    try {
      attempts = await Promise.allSettled(
        Array.from({ length: N }, () => openClient(limited.wsUrl, { protocols: ['jwt', token] })),
      );
    } finally {
      limited.deps.db.middlewareStack.remove(name);
    }
    const opened = attempts.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    const refused = attempts.flatMap((a) =>
      a.status === 'rejected' ? [a.reason as { status?: number }] : [],
    );
    expect(refused.map((r) => r.status)).toEqual(refused.map(() => 403));
    // A socket admitted without its row is closed on its first frame (closing token_revoked).
    const answers = await Promise.all(
      opened.map((c) => c.request({ type: 'ping' }).catch(() => c.received.at(-1))),
    );
    expect(opened.length).toBeGreaterThanOrEqual(1);
    expect({ opened: opened.length, answers: answers.map((a) => a?.type) }).toEqual({
      opened: Math.min(opened.length, 2),
      answers: answers.map(() => 'pong'),
    });
    await Promise.all(opened.map((c) => c.close()));
  });

  it('drops stale rows (sockets the gateway no longer knows) before counting', async () => {
    const claims = decodeJwt(token);
    await waitForSlots(limited, 'dave', 0);
    for (const connectionId of ['stale-1=', 'stale-2=']) {
      // A socket that vanished without $disconnect: its slot is still held.
      expect(
        await takeSlot(limited.deps, { username: 'dave', connectionId, connectedAt: Date.now() - 60_000 }, 2),
      ).toBe(true);
      await putSocketRow(limited.deps, {
        connectionId,
        sub: String(claims.sub),
        username: 'dave',
        roles: ['user'],
        jti: String(claims.jti),
        sid: String(claims.sid),
        exp: Number(claims.exp),
        iat: Number(claims.iat),
        ip: '127.0.0.1',
        // Older than the integration timeout: a younger row may be a handshake in progress.
        connectedAt: Date.now() - 60_000,
        rooms: [],
      });
    }
    const client = await openClient(limited.wsUrl, { protocols: ['jwt', token] });
    expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    // Both stale slots were given back, so a second socket fits too, and a third does not.
    expect((await slotHolders(limited.deps, 'dave')).map((h) => h.connectionId)).not.toContain('stale-1=');
    const second = await openClient(limited.wsUrl, { protocols: ['jwt', token] });
    expect(await refusalStatus(limited.wsUrl, { protocols: ['jwt', token] })).toBe(403);
    await Promise.all([client.close(), second.close()]);
  });

  it('keeps the slot of a young socket that GetConnection does not know yet (a handshake in progress)', async () => {
    const young = { username: 'dave', connectionId: 'young-1=', connectedAt: Date.now() - 1000 };
    await waitForSlots(limited, 'dave', 0);
    expect(await takeSlot(limited.deps, young, 2)).toBe(true);
    const client = await openClient(limited.wsUrl, { protocols: ['jwt', token] });
    expect(await refusalStatus(limited.wsUrl, { protocols: ['jwt', token] })).toBe(403);
    await releaseSlots(limited.deps, 'dave', [young]);
    await client.close();
  });
});

describe('maxConnectionsPerUser = 2, racing for a stale slot', () => {
  it('lets exactly one of five parallel handshakes take the one slot a vanished socket held', async () => {
    const racing = await startTestSystem({ MAX_CONNECTIONS_PER_USER: '2' }, undefined, {
      sweeperTimer: false,
    });
    try {
      const token = (await registerAndLogin(racing, 'racer')).access_token;
      tokens.push(token);
      const live = await openClient(racing.wsUrl, { protocols: ['jwt', token] });
      const vanished = { username: 'racer', connectionId: 'vanished=', connectedAt: Date.now() - 60_000 };
      expect(await takeSlot(racing.deps, vanished, 2)).toBe(true);
      const attempts = await Promise.allSettled(
        Array.from({ length: 5 }, () => openClient(racing.wsUrl, { protocols: ['jwt', token] })),
      );
      const opened = attempts.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
      expect(opened).toHaveLength(1);
      expect(
        attempts.filter((a) => a.status === 'rejected').map((a) => (a.reason as Refused).status),
      ).toEqual(Array(4).fill(403));
      const holders = (await slotHolders(racing.deps, 'racer')).map((h) => h.connectionId);
      expect(holders).toHaveLength(2);
      expect(holders).not.toContain('vanished=');
      await Promise.all([live.close(), ...opened.map((c) => c.close())]);
    } finally {
      await racing.close();
    }
  });
});

describe('maxConnectionsPerUser = 3 under parallel handshakes', () => {
  it('admits exactly 3 of 12 parallel handshakes of one user, round after round; the rest get 403', async () => {
    const capped = await startTestSystem({ MAX_CONNECTIONS_PER_USER: '3' }, undefined, {
      sweeperTimer: false,
    });
    try {
      const token = (await registerAndLogin(capped, 'para')).access_token;
      tokens.push(token);
      // Production latency: every store call waits a random 0-40 ms before and after, so the
      // handshakes' writes and reads interleave in every order.
      const jitter = () => new Promise((resolve) => setTimeout(resolve, Math.random() * 40));
      capped.deps.db.middlewareStack.add(
        (next) => async (args) => {
          await jitter();
          const out = await next(args);
          await jitter();
          return out;
        },
        { step: 'initialize', name: 'latency' },
      );
      for (let round = 0; round < 2; round++) {
        const attempts = await Promise.allSettled(
          Array.from({ length: 12 }, () => openClient(capped.wsUrl, { protocols: ['jwt', token] })),
        );
        const opened = attempts.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
        const refused = attempts.flatMap((a) =>
          a.status === 'rejected' ? [(a.reason as Refused).status] : [],
        );
        expect({ round, opened: opened.length, refused }).toEqual({
          round,
          opened: 3,
          refused: Array(9).fill(403),
        });
        for (const c of opened) expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
        expect((await allSocketRows(capped.deps)).filter((c) => c.username === 'para')).toHaveLength(3);
        await Promise.all(opened.map((c) => c.close()));
        // Each $disconnect gives its slot back.
        await waitForSlots(capped, 'para', 0);
      }
    } finally {
      await capped.close();
    }
  });
});

async function waitForSlots(system: TestSystem, username: string, count: number): Promise<void> {
  const deadline = Date.now() + 3000;
  while ((await slotHolders(system.deps, username)).length !== count) {
    if (Date.now() > deadline) throw new Error(`${username} never came down to ${count} slots`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('ipBlockAfterFailures = 3', () => {
  it('blocks an IP after three refused handshakes: then even a good token gets 403', async () => {
    const strict = await startTestSystem({ IP_BLOCK_AFTER_FAILURES: '3' }, undefined, {
      sweeperTimer: false,
    });
    try {
      const token = (await registerAndLogin(strict, 'erin')).access_token;
      tokens.push(token);
      const client = await openClient(strict.wsUrl, { protocols: ['jwt', token] });
      await client.close();
      for (let i = 0; i < 3; i++)
        expect(await refusalStatus(strict.wsUrl, { query: { token: 'bad' } })).toBe(401);
      const before = strict.audit.length;
      expect(await refusalStatus(strict.wsUrl, { protocols: ['jwt', token] })).toBe(403);
      expect(strict.audit.slice(before)).toContainEqual(
        expect.objectContaining({ event: 'ws.denied', reason: 'blocked_ip' }),
      );
      expect(strict.audit).toContainEqual(expect.objectContaining({ event: 'ip.blocked', ip: '127.0.0.1' }));
    } finally {
      await strict.close();
    }
  });
});

describe('audit', () => {
  it('never writes a token into an audit line', () => {
    expect(tokens.length).toBeGreaterThan(5);
    for (const line of [...system.auditText]) {
      for (const token of tokens) expect(line).not.toContain(token);
    }
  });
});

// --- token crafting -------------------------------------------------------------------------------

async function ourPrivateKey(): Promise<CryptoKey> {
  return (await system.deps.keys.signingKey()).privateKey;
}

async function ourHeader(): Promise<{ alg: string; typ: string; kid: string }> {
  return { alg: 'EdDSA', typ: 'at+jwt', kid: (await system.deps.keys.signingKey()).kid };
}

async function ourPublicJwk(): Promise<JWK> {
  const [jwk] = await system.deps.keys.publicKeys();
  if (!jwk) throw new Error('no public key');
  return jwk;
}

async function foreignKey(): Promise<{ kid: string; privateKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = `foreign-${randomUUID().slice(0, 8)}`;
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' } };
}

/** Claims exactly like the ones we issue, for alice, valid now. */
function goodClaims(): Record<string, unknown> {
  const iat = nowS(system.clock);
  return {
    iss: system.deps.settings.tokenIssuer,
    aud: system.deps.settings.tokenAudience,
    sub: alice.sub,
    username: 'alice',
    roles: ['user'],
    sid: alice.sid,
    jti: randomUUID(),
    iat,
    exp: iat + system.deps.settings.accessTokenTtlS,
  };
}
