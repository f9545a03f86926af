import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, registerAndLogin, startTestSystem, type TestSystem } from '../kit/system.ts';

let system: TestSystem;

beforeAll(async () => {
  system = await startTestSystem({
    LOGIN_MAX_FAILURES: '3',
    LOGIN_MAX_FAILURES_PER_IP: '8',
    ACCESS_TOKEN_TTL_S: '300',
  });
});
afterAll(async () => {
  await system.close();
});

describe('POST /auth/register', () => {
  it('creates a user, lower-casing the name', async () => {
    const res = await system.request('POST', '/auth/register', {
      body: { username: 'Reg.User_1', password: PASSWORD },
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ username: 'reg.user_1' });
    expect(system.audit.some((l) => l.event === 'auth.register' && l.username === 'reg.user_1')).toBe(true);
  });

  it('refuses a taken name with 409 conflict, whatever its case', async () => {
    await system.request('POST', '/auth/register', { body: { username: 'taken', password: PASSWORD } });
    const res = await system.request('POST', '/auth/register', {
      body: { username: 'TAKEN', password: PASSWORD },
    });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('conflict');
    // The first account still logs in with its own password.
    const login = await system.request('POST', '/auth/login', {
      body: { username: 'taken', password: PASSWORD },
    });
    expect(login.status).toBe(200);
  });

  const bad: [string, unknown][] = [
    ['a too-short username', { username: 'ab', password: PASSWORD }],
    ['a too-long username', { username: 'a'.repeat(33), password: PASSWORD }],
    ['a username with a space', { username: 'bad name', password: PASSWORD }],
    ['a username with a non-ASCII letter', { username: 'аlice', password: PASSWORD }],
    ['a username that is not a string', { username: 12345, password: PASSWORD }],
    ['a missing password', { username: 'valid_name' }],
    ['an 11-character password', { username: 'valid_name', password: 'x'.repeat(11) }],
    ['a 257-character password', { username: 'valid_name', password: 'x'.repeat(257) }],
    ['a password that is not a string', { username: 'valid_name', password: ['x'.repeat(20)] }],
    ['an array body', [1, 2]],
    ['a null body', null],
  ];
  for (const [name, body] of bad) {
    it(`refuses ${name} with 400 invalid_request`, async () => {
      const res = await system.request('POST', '/auth/register', { body });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
      expect(typeof res.body.message).toBe('string');
    });
  }

  it('refuses malformed JSON with 400 and keeps serving', async () => {
    const res = await system.request('POST', '/auth/register', {
      rawBody: '{"username": "x",',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect((await system.request('GET', '/health')).status).toBe(200);
  });

  it('refuses a body over 16 KiB with 413', async () => {
    const res = await system.request('POST', '/auth/register', {
      body: { username: 'big_body', password: PASSWORD, pad: 'x'.repeat(17 * 1024) },
    });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('invalid_request');
  });
});

describe('POST /auth/login', () => {
  it('returns a Bearer pair with an EdDSA access token carrying the spec claims', async () => {
    const pair = await registerAndLogin(system, 'login_ok');
    expect(pair.expires_in).toBe(300);
    expect(typeof pair.refresh_token).toBe('string');
    const header = decodeProtectedHeader(pair.access_token);
    expect(header).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' });
    expect(typeof header.kid).toBe('string');
    const claims = decodeJwt(pair.access_token);
    expect(claims).toMatchObject({ username: 'login_ok', roles: ['user'], iss: 'urn:jwt-realtime:local' });
    for (const c of ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'sid']) expect(claims[c]).toBeDefined();
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300);
  });

  it('gives an unknown user and a wrong password the same 401 body', async () => {
    await registerAndLogin(system, 'same_body');
    const wrong = await system.request('POST', '/auth/login', {
      body: { username: 'same_body', password: 'not the password!' },
    });
    const unknown = await system.request('POST', '/auth/login', {
      body: { username: 'nobody_here', password: 'not the password!' },
    });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'invalid_credentials', message: expect.any(String) });
    expect(unknown.body).toEqual(wrong.body);
  });

  it('refuses a body without username or password with 400', async () => {
    const res = await system.request('POST', '/auth/login', { body: { username: 'x' } });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
  });

  it('throttles one username after loginMaxFailures failures, even with the right password, then lets it in after the window', async () => {
    await registerAndLogin(system, 'throttled');
    for (let i = 0; i < 3; i++) {
      const res = await system.request('POST', '/auth/login', {
        body: { username: 'throttled', password: 'wrong password!!' },
      });
      expect(res.status).toBe(401);
    }
    const limited = await system.request('POST', '/auth/login', {
      body: { username: 'throttled', password: PASSWORD },
    });
    expect(limited.status).toBe(429);
    expect(limited.body.error).toBe('rate_limited');
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(900);
    // Another user from the same IP is not held back by this username's failures.
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'login_ok', password: PASSWORD } }))
        .status,
    ).toBe(200);
    system.clock.advance(retryAfter);
    expect(
      (await system.request('POST', '/auth/login', { body: { username: 'throttled', password: PASSWORD } }))
        .status,
    ).toBe(200);
  });

  it('resets a username failure count on success', async () => {
    await registerAndLogin(system, 'resets');
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 2; i++) {
        await system.request('POST', '/auth/login', {
          body: { username: 'resets', password: 'wrong password!!' },
        });
      }
      expect(
        (await system.request('POST', '/auth/login', { body: { username: 'resets', password: PASSWORD } }))
          .status,
      ).toBe(200);
    }
  });
});

describe('failed logins cannot lock a user out from elsewhere', () => {
  const login = (sys: TestSystem, username: string, password: string, from?: string) =>
    sys.request('POST', '/auth/login', { body: { username, password }, ...(from ? { from } : {}) });

  it('locks the username only for the address the failures came from; elsewhere the right password gets in', async () => {
    const sys = await startTestSystem({ LOGIN_MAX_FAILURES: '3' });
    try {
      await registerAndLogin(sys, 'victim');
      // Five wrong passwords from one address, as in a lock-out attack.
      for (let i = 0; i < 5; i++) await login(sys, 'victim', 'wrong password!!', '127.0.0.2');
      const attacker = await login(sys, 'victim', PASSWORD, '127.0.0.2');
      expect(attacker.status).toBe(429);
      // The user, from their own address, is not locked out.
      expect((await login(sys, 'victim', PASSWORD)).status).toBe(200);
      expect((await login(sys, 'victim', PASSWORD, '127.0.0.3')).status).toBe(200);
    } finally {
      await sys.close();
    }
  });

  it('slows a username down to one password check per second once it has failed from many addresses', async () => {
    const sys = await startTestSystem({ LOGIN_MAX_FAILURES: '3' });
    try {
      await registerAndLogin(sys, 'sprayed');
      // Failures spread over addresses, none of which reaches its own lock.
      for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'])
        expect((await login(sys, 'sprayed', 'wrong password!!', from)).status).toBe(401);
      // (The fourth took the slowdown's turn already.)
      sys.clock.advance(1);
      // A new address gets one check per second, whatever it sends, racing or not.
      const burst = await Promise.all(
        Array.from({ length: 4 }, () => login(sys, 'sprayed', 'wrong password!!', '127.0.0.6')),
      );
      expect(burst.map((r) => r.status).sort()).toEqual([401, 429, 429, 429]);
      const slowed = burst.find((r) => r.status === 429);
      expect(slowed?.headers.get('retry-after')).toBe('1');
      expect(slowed?.body.error).toBe('rate_limited');
      sys.clock.advance(1);
      expect((await login(sys, 'sprayed', PASSWORD, '127.0.0.7')).status).toBe(200);
    } finally {
      await sys.close();
    }
  });

  it('exempts an address the user has logged in from before, and the right password clears the slowdown', async () => {
    const sys = await startTestSystem({ LOGIN_MAX_FAILURES: '3' });
    try {
      await registerAndLogin(sys, 'regular');
      for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'])
        await login(sys, 'regular', 'wrong password!!', from);
      // The user's usual address (127.0.0.1, where they registered and logged in) never waits.
      for (let i = 0; i < 3; i++) expect((await login(sys, 'regular', PASSWORD)).status).toBe(200);
      // Their success cleared the username's count: a new address is not slowed down.
      const burst = await Promise.all(
        Array.from({ length: 2 }, () => login(sys, 'regular', 'wrong password!!', '127.0.0.6')),
      );
      expect(burst.map((r) => r.status)).toEqual([401, 401]);
    } finally {
      await sys.close();
    }
  });
});

describe('per-IP login throttling', () => {
  it('throttles an IP after loginMaxFailuresPerIp failures across usernames', async () => {
    const ipSystem = await startTestSystem({ LOGIN_MAX_FAILURES: '100', LOGIN_MAX_FAILURES_PER_IP: '4' });
    try {
      await registerAndLogin(ipSystem, 'ip_victim');
      for (let i = 0; i < 3; i++) {
        await ipSystem.request('POST', '/auth/login', {
          body: { username: `spray_${i}`, password: 'wrong password!!' },
        });
      }
      expect(
        (
          await ipSystem.request('POST', '/auth/login', {
            body: { username: 'ip_victim', password: PASSWORD },
          })
        ).status,
      ).toBe(200);
      await ipSystem.request('POST', '/auth/login', {
        body: { username: 'spray_x', password: 'wrong password!!' },
      });
      const res = await ipSystem.request('POST', '/auth/login', {
        body: { username: 'ip_victim', password: PASSWORD },
      });
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      await ipSystem.close();
    }
  });

  it('blocks the IP after ipBlockAfterFailures failures when that is on', async () => {
    const ipSystem = await startTestSystem({ IP_BLOCK_AFTER_FAILURES: '3', LOGIN_MAX_FAILURES: '100' });
    try {
      await registerAndLogin(ipSystem, 'ip_block_me');
      for (let i = 0; i < 3; i++) {
        await ipSystem.request('POST', '/auth/login', {
          body: { username: 'ip_block_me', password: 'wrong password!!' },
        });
      }
      const res = await ipSystem.request('POST', '/auth/login', {
        body: { username: 'ip_block_me', password: PASSWORD },
      });
      expect(res.status).toBe(403);
      expect(res.body.error).toBe('forbidden');
      expect(ipSystem.audit.some((l) => l.event === 'ip.blocked' && l.ip === '127.0.0.1')).toBe(true);
      ipSystem.clock.advance(3601);
      expect(
        (
          await ipSystem.request('POST', '/auth/login', {
            body: { username: 'ip_block_me', password: PASSWORD },
          })
        ).status,
      ).toBe(200);
    } finally {
      await ipSystem.close();
    }
  });
});

describe('registration throttle per IP', () => {
  it('admits exactly registerMaxPerIp registrations of a parallel burst from one IP, then 429 with Retry-After', async () => {
    const regSystem = await startTestSystem({ REGISTER_MAX_PER_IP: '3', LOGIN_FAILURE_WINDOW_S: '600' });
    try {
      const burst = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          regSystem.request('POST', '/auth/register', {
            body: { username: `burst_${i}`, password: PASSWORD },
          }),
        ),
      );
      const statuses = burst.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 201)).toHaveLength(3);
      expect(statuses.filter((s) => s === 429)).toHaveLength(9);
      for (const r of burst.filter((x) => x.status === 429)) {
        expect(r.body.error).toBe('rate_limited');
        const retryAfter = Number(r.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(600);
      }
      // Another address is not held back by this one.
      const other = await regSystem.request('POST', '/auth/register', {
        body: { username: 'elsewhere', password: PASSWORD },
        from: '127.0.0.2',
      });
      expect(other.status).toBe(201);
      // The window passes: the address may register again.
      regSystem.clock.advance(Number(burst.find((r) => r.status === 429)?.headers.get('retry-after')));
      const later = await regSystem.request('POST', '/auth/register', {
        body: { username: 'later_on', password: PASSWORD },
      });
      expect(later.status).toBe(201);
      expect(
        regSystem.audit.filter((l) => l.event === 'auth.denied' && l.reason === 'rate_limited'),
      ).toHaveLength(1);
    } finally {
      await regSystem.close();
    }
  });
});

describe('POST /auth/refresh', () => {
  it('rotates: the new pair works and the old refresh token is spent', async () => {
    const first = await registerAndLogin(system, 'rotator');
    const res = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: first.refresh_token },
    });
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('Bearer');
    expect(res.body.refresh_token).not.toBe(first.refresh_token);
    expect(decodeJwt(res.body.access_token as string).sid).toBe(decodeJwt(first.access_token).sid);
    const me = await system.request('GET', '/auth/me', { token: res.body.access_token as string });
    expect(me.status).toBe(200);
  });

  it('revokes the whole family, access tokens included, when a spent refresh token comes back', async () => {
    const first = await registerAndLogin(system, 'victim');
    const second = (
      await system.request('POST', '/auth/refresh', { body: { refresh_token: first.refresh_token } })
    ).body;
    const replay = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: first.refresh_token },
    });
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('invalid_token');
    expect(system.audit.some((l) => l.event === 'auth.refresh_reuse' && l.username === 'victim')).toBe(true);
    // The thief's (or the victim's) newer tokens of that family are dead too.
    expect(
      (await system.request('POST', '/auth/refresh', { body: { refresh_token: second.refresh_token } }))
        .status,
    ).toBe(401);
    expect((await system.request('GET', '/auth/me', { token: second.access_token as string })).status).toBe(
      401,
    );
    expect((await system.request('GET', '/auth/me', { token: first.access_token })).status).toBe(401);
    // Other sessions of the user are untouched.
    const other = await system.request('POST', '/auth/login', {
      body: { username: 'victim', password: PASSWORD },
    });
    expect(
      (await system.request('GET', '/auth/me', { token: other.body.access_token as string })).status,
    ).toBe(200);
  });

  it('lets only one of two concurrent refreshes with the same token win', async () => {
    const pair = await registerAndLogin(system, 'racer');
    const results = await Promise.all(
      [0, 1].map(() =>
        system.request('POST', '/auth/refresh', { body: { refresh_token: pair.refresh_token } }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
  });

  const badTokens: [string, unknown][] = [
    ['a missing token', undefined],
    ['a number', 42],
    ['garbage', 'not-a-token'],
    ['an access token', 'eyJhbGciOiJFZERTQSJ9.e30.sig'],
    [
      'a well-formed token for an unknown family',
      `rt1.00000000-0000-4000-8000-000000000000.${'A'.repeat(43)}`,
    ],
  ];
  for (const [name, token] of badTokens) {
    it(`refuses ${name} with 401 invalid_token`, async () => {
      const res = await system.request('POST', '/auth/refresh', { body: { refresh_token: token } });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_token');
    });
  }

  it('refuses a forged secret for a real family without revoking it', async () => {
    const pair = await registerAndLogin(system, 'forged_rt');
    const sid = decodeJwt(pair.access_token).sid as string;
    const forged = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: `rt1.${sid}.${'B'.repeat(43)}` },
    });
    expect(forged.status).toBe(401);
    expect(
      (await system.request('POST', '/auth/refresh', { body: { refresh_token: pair.refresh_token } })).status,
    ).toBe(200);
  });

  it('refuses a refresh token after its lifetime', async () => {
    const pair = await registerAndLogin(system, 'rt_expiry');
    system.clock.advance(7 * 86_400 + 1);
    const res = await system.request('POST', '/auth/refresh', {
      body: { refresh_token: pair.refresh_token },
    });
    expect(res.status).toBe(401);
  });
});

describe('POST /auth/logout and GET /auth/me', () => {
  it('answers /auth/me with the token identity', async () => {
    const pair = await registerAndLogin(system, 'whoami');
    const res = await system.request('GET', '/auth/me', { token: pair.access_token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      sub: decodeJwt(pair.access_token).sub,
      username: 'whoami',
      roles: ['user'],
      exp: decodeJwt(pair.access_token).exp,
    });
  });

  it('revokes the access token and its refresh family on logout', async () => {
    const pair = await registerAndLogin(system, 'leaver');
    const out = await system.request('POST', '/auth/logout', { token: pair.access_token });
    expect(out.status).toBe(204);
    expect(out.text).toBe('');
    const me = await system.request('GET', '/auth/me', { token: pair.access_token });
    expect(me.status).toBe(401);
    expect(me.body.error).toBe('invalid_token');
    expect(
      (await system.request('POST', '/auth/refresh', { body: { refresh_token: pair.refresh_token } })).status,
    ).toBe(401);
    expect((await system.request('POST', '/auth/logout', { token: pair.access_token })).status).toBe(401);
    expect(system.audit).toContainEqual(
      expect.objectContaining({
        event: 'auth.denied',
        route: 'GET /auth/me',
        reason: 'invalid_token',
        ip: '127.0.0.1',
      }),
    );
    const lines = system.audit.filter((l) => l.username === 'leaver').map((l) => l.event);
    expect(lines).toEqual(expect.arrayContaining(['auth.logout', 'token.revoked']));
  });

  it('says token_expired, not invalid_token, for an expired token so that clients refresh', async () => {
    const pair = await registerAndLogin(system, 'expiring');
    system.clock.advance(300 + 31);
    const res = await system.request('GET', '/auth/me', { token: pair.access_token });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('token_expired');
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });

  const badAuth: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['a Basic scheme', { authorization: 'Basic YTpi' }],
    ['an empty Bearer', { authorization: 'Bearer ' }],
    ['a garbage token', { authorization: 'Bearer abc.def.ghi' }],
  ];
  for (const [name, headers] of badAuth) {
    it(`refuses ${name} with 401 invalid_token on /auth/me and /auth/logout`, async () => {
      for (const [method, path] of [
        ['GET', '/auth/me'],
        ['POST', '/auth/logout'],
      ] as const) {
        const res = await system.request(method, path, { headers });
        expect(res.status).toBe(401);
        expect(res.body.error).toBe('invalid_token');
      }
    });
  }

  it('accepts the Bearer scheme in any case', async () => {
    const pair = await registerAndLogin(system, 'bearer_case');
    const res = await system.request('GET', '/auth/me', {
      headers: { authorization: `bearer ${pair.access_token}` },
    });
    expect(res.status).toBe(200);
  });
});

describe('public endpoints', () => {
  it('serves the JWKS with public members only, and its key verifies our tokens', async () => {
    const res = await system.request('GET', '/.well-known/jwks.json');
    expect(res.status).toBe(200);
    const keys = res.body.keys as Record<string, unknown>[];
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
      expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    }
    const pair = await registerAndLogin(system, 'jwks_user');
    expect(keys.map((k) => k.kid)).toContain(decodeProtectedHeader(pair.access_token).kid);
  });

  it('answers /health', async () => {
    const res = await system.request('GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it("answers an unknown route with API Gateway's 404", async () => {
    const res = await system.request('GET', '/auth/nowhere');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ message: 'Not Found' });
    expect((await system.request('GET', '/auth/login')).status).toBe(404);
  });
});

describe('audit log', () => {
  it('never contains a token or a password', async () => {
    const pair = await registerAndLogin(system, 'secretive');
    await system.request('POST', '/auth/refresh', { body: { refresh_token: pair.refresh_token } });
    await system.request('POST', '/auth/login', {
      body: { username: 'secretive', password: 'wrong password!!' },
    });
    const all = system.auditText.join('\n');
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain('wrong password!!');
    expect(all).not.toContain(pair.access_token.split('.')[2]);
    expect(all).not.toContain(pair.refresh_token.split('.')[2]);
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    for (const line of system.audit) {
      expect(line).toMatchObject({
        level: expect.any(String),
        event: expect.any(String),
        time: expect.any(String),
      });
    }
  });
});
